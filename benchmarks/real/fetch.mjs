#!/usr/bin/env node
// Fetch the large real WASI programs used by benchmarks/real/run.ts into benchmarks/build/real/ (gitignored).
// Idempotent: a package already unpacked is not fetched again. Uses `npm pack` (the npm registry is the only
// source these machines reach); nothing is added to package.json.
//
//   node benchmarks/real/fetch.mjs            # fetch + prepare, print a summary
//
// What it prepares:
//   yosys.wasm    @yowasp/yosys gen/yosys.core.wasm: Yosys (C++), a plain WASI preview1 command module (`_start`).
//   yosys-share/  Yosys' share/ directory (techmap.v, …) taken from the package's resources-yosys.js, to be
//                 mounted at /share (yosys' `synth` reads +/techmap.v from there).
//   ruby.wasm     @ruby/3.3-wasm-wasi dist/ruby.debug+stdlib.wasm (CRuby 3.3 built with Asyncify, a WASI *reactor*)
//                 turned into a command module by ruby-command.mjs (see there).
//   ruby-fixed.wasm  ruby.wasm with its functions asyncify_* renamed in the name section (vm/namesection.ts; vm/instrument.ts now does this itself).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { rubyCommand } from './ruby-command.mjs';
import { renameFunctionNames } from '../../dist/vm/namesection.js';

const here = dirname(fileURLToPath(import.meta.url));
export const REAL_DIR = join(here, '..', 'build', 'real');

const PACKAGES = [
  { pkg: '@yowasp/yosys', version: '0.55.944' },
  { pkg: '@ruby/3.3-wasm-wasi', version: '2.10.1' },
];

function unpacked(pkg, version) {
  return join(REAL_DIR, `${pkg.replace(/^@/, '').replace('/', '-')}-${version}`);
}

function fetchPackage({ pkg, version }) {
  const dir = unpacked(pkg, version);
  if (existsSync(join(dir, 'package', 'package.json'))) return { dir, fetched: false };
  const tgzDir = join(REAL_DIR, 'tgz');
  mkdirSync(tgzDir, { recursive: true });
  const out = execFileSync('npm', ['pack', '--silent', `${pkg}@${version}`], { cwd: tgzDir, encoding: 'utf8' }).trim().split('\n').pop();
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xzf', join(tgzDir, out), '-C', dir]);
  return { dir, fetched: true };
}

function writeTree(root, tree) {
  let n = 0;
  for (const [name, v] of Object.entries(tree)) {
    const p = join(root, name);
    if (typeof v === 'string' || v instanceof Uint8Array) {
      mkdirSync(root, { recursive: true });
      if (!existsSync(p)) writeFileSync(p, v);
      n++;
    } else if (v && typeof v === 'object') {
      n += writeTree(p, v);
    }
  }
  return n;
}

/** Function count and a few facts read straight from the binary (no binaryen: quick). */
export function moduleFacts(bytes) {
  const m = new WebAssembly.Module(bytes);
  const imports = WebAssembly.Module.imports(m);
  const exports = WebAssembly.Module.exports(m);
  // count defined functions from the function section (id 3)
  let p = 8;
  let defined = 0;
  const leb = () => {
    let r = 0, s = 0, b;
    do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80);
    return r >>> 0;
  };
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = leb();
    if (id === 3) { const q = p; defined = leb(); p = q; }
    p += size;
  }
  return {
    bytes: bytes.length,
    definedFunctions: defined,
    importedFunctions: imports.filter((i) => i.kind === 'function').length,
    importModules: [...new Set(imports.map((i) => i.module))],
    hasStart: exports.some((e) => e.name === '_start'),
    asyncifyExports: exports.filter((e) => e.name.startsWith('asyncify_')).map((e) => e.name),
  };
}

export async function fetchReal({ quiet = false } = {}) {
  mkdirSync(REAL_DIR, { recursive: true });
  const log = quiet ? () => {} : (s) => console.log(s);
  const [yosysPkg, rubyPkg] = PACKAGES.map((p) => {
    const r = fetchPackage(p);
    log(`${p.pkg}@${p.version}: ${r.fetched ? 'fetched' : 'already here'} (${r.dir})`);
    return r.dir;
  });

  // yosys
  const yosysCore = join(yosysPkg, 'package', 'gen', 'yosys.core.wasm');
  const yosys = join(REAL_DIR, 'yosys.wasm');
  if (!existsSync(yosys)) writeFileSync(yosys, readFileSync(yosysCore));
  const share = join(REAL_DIR, 'yosys-share');
  if (!existsSync(join(share, 'techmap.v'))) {
    const res = await import(pathToFileURL(join(yosysPkg, 'package', 'gen', 'resources-yosys.js')).href);
    const n = writeTree(share, res.filesystem.share);
    log(`yosys share/: ${n} files`);
  }

  // ruby: reactor -> command
  const rubyIn = join(rubyPkg, 'package', 'dist', 'ruby.debug+stdlib.wasm');
  const ruby = join(REAL_DIR, 'ruby.wasm');
  if (!existsSync(ruby) || statSync(ruby).mtimeMs < statSync(join(here, 'ruby-command.mjs')).mtimeMs) {
    const r = await rubyCommand(rubyIn, ruby);
    log(`ruby: reactor -> command, stubbed ${r.stubs.length} JS-binding imports`);
  }

  // ruby-fixed: the same module with its own asyncify_* *functions* renamed in the name section (the proposed fix
  // for vm/instrument.ts, applied here so that the rest of gridvm can be measured on CRuby)
  const rubyFixed = join(REAL_DIR, 'ruby-fixed.wasm');
  if (!existsSync(rubyFixed) || statSync(rubyFixed).mtimeMs < statSync(ruby).mtimeMs) {
    const r = renameFunctionNames(new Uint8Array(readFileSync(ruby)), (n) => (n.startsWith('asyncify_') ? `__inner_${n}` : undefined));
    writeFileSync(rubyFixed, r.bytes);
    log(`ruby-fixed: renamed functions ${r.renamed.join(', ')}`);
  }

  const programs = { yosys, ruby, 'ruby-fixed': rubyFixed };
  for (const [name, path] of Object.entries(programs)) {
    const f = moduleFacts(new Uint8Array(readFileSync(path)));
    log(`${name}: ${(f.bytes / 2 ** 20).toFixed(1)} MiB, ${f.definedFunctions} functions (+${f.importedFunctions} imported), ` +
      `imports from ${f.importModules.join(', ')}, _start: ${f.hasStart}, own asyncify exports: ${f.asyncifyExports.length}`);
  }
  return { programs, yosysShare: share, dir: REAL_DIR, files: readdirSync(REAL_DIR) };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await fetchReal();
