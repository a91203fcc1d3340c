#!/usr/bin/env node
// Builds the guest jobs used by tests and benchmarks (see test/guests/README.md):
//   test/guests/c/NAME.c   -> test/guests/build/NAME.wasm   (clang --target=wasm32-wasi --sysroot=/usr -O2)
//                          -> test/guests/build/NAME.native (gcc -O2, the reference for output comparisons;
//                             not for sources with a `// native: none` line, e.g. guests that use sdk/c/gridvm.h)
//   test/guests/as/NAME.ts -> test/guests/build/NAME.wasm   (AssemblyScript, test/guests/as/asconfig.json)
// Incremental: a target is skipped when it is newer than its inputs and this script. Outputs are written to a
// temporary name and renamed, so a concurrent reader never sees half a file.
// Without clang for wasm32-wasi (or gcc) the C guests are skipped with a warning, unless CI=true: then it fails.
// Options: --force (rebuild everything), --quiet (only warnings, errors and a summary), NAME... (only these guests).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = join(dirname(self), '..');
const cDir = join(root, 'test/guests/c');
const asDir = join(root, 'test/guests/as');
const sdkCDir = join(root, 'sdk/c');
const sdkAsDir = join(root, 'sdk/assemblyscript');
const outDir = join(root, 'test/guests/build');
const ascJs = join(root, 'node_modules/assemblyscript/bin/asc.js');

const argv = process.argv.slice(2);
const force = argv.includes('--force');
const quiet = argv.includes('--quiet');
const only = new Set(argv.filter((a) => !a.startsWith('--')));
const ci = /^(1|true|yes)$/i.test(process.env.CI ?? '');

const WASM_CC = ['--target=wasm32-wasi', '--sysroot=/usr'];
// the gridvm SDK header (grid calls): wasm builds only, there is no native implementation
const WASM_INCLUDES = ['-I', sdkCDir];
const CFLAGS = ['-O2', '-Wall'];
// gcc: never contract a*b+c into an FMA, so doubles match wasm (which has no FMA) bit for bit on any host.
const NATIVE_CFLAGS = ['-O2', '-Wall', '-ffp-contract=off'];

const log = (msg) => { if (!quiet) console.log(msg); };
const warn = (msg) => console.warn(`guests: warning: ${msg}`);

const mtime = (p) => { try { return statSync(p).mtimeMs; } catch { return -1; } };
const filesIn = (dir, ext) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(ext)).sort().map((f) => join(dir, f)) : [];
const listRecursive = (dir) => {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listRecursive(join(dir, e.name)) : [join(dir, e.name)]);
};

/**
 * Per-guest flags from comment lines in the C source: `// cflags: ...`, `// wasm-ldflags: ...`, `// native-ldflags: ...`,
 * and `// native: none` (no native reference: the guest imports gridvm calls).
 */
function directives(src) {
  const text = readFileSync(src, 'utf8');
  const get = (key) => [...text.matchAll(new RegExp(`^//\\s*${key}:\\s*(.*)$`, 'gm'))]
    .flatMap((m) => m[1].trim().split(/\s+/).filter(Boolean));
  return { cflags: get('cflags'), wasmLdflags: get('wasm-ldflags'), nativeLdflags: get('native-ldflags'),
    native: !get('native').includes('none') };
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', (err) => resolve({ code: -1, out: `${out}${err.message}\n` }));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

let clangProbe;
/** Whether clang can compile and link a wasm32-wasi program (clang, lld and wasi-libc all present). */
function clangWorks() {
  if (clangProbe !== undefined) return clangProbe;
  const dir = join(tmpdir(), `gridvm-clang-probe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('clang', [...WASM_CC, '-x', 'c', '-', '-o', join(dir, 'probe.wasm')], {
    input: '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n', encoding: 'utf8',
  });
  rmSync(dir, { recursive: true, force: true });
  clangProbe = r.status === 0 ? true : (r.error ? r.error.message : r.stderr.trim().split('\n').slice(-3).join(' | '));
  return clangProbe;
}
const gccWorks = () => spawnSync('gcc', ['--version']).status === 0;

/** Builds one output through a temporary file; returns null on success or the tool's output on failure. */
async function produce(out, steps) {
  const tmp = `${out}.tmp-${process.pid}`;
  for (const [cmd, args, opts] of steps(tmp)) {
    const r = await run(cmd, args, opts);
    if (r.code !== 0) { rmSync(tmp, { force: true }); return r.out || `${cmd} exited with ${r.code}`; }
    if (r.out.trim() && !quiet) process.stderr.write(r.out);
  }
  renameSync(tmp, out);
  return null;
}

function cTargets() {
  const sources = filesIn(cDir, '.c');
  if (sources.length === 0) return [];
  const scriptTime = Math.max(mtime(self), ...filesIn(sdkCDir, '.h').map(mtime));
  const targets = [];
  for (const src of sources) {
    const name = basename(src, '.c');
    if (only.size && !only.has(name)) continue;
    const d = directives(src);
    const newest = Math.max(mtime(src), scriptTime);
    const wasm = join(outDir, `${name}.wasm`);
    const native = join(outDir, `${name}.native`);
    if (force || mtime(wasm) <= newest) {
      targets.push({
        name, kind: 'c', out: wasm, needs: 'clang',
        // Compile and link separately: a `clang -O2` link step would run wasm-opt when it is on PATH, which strips the
        // "name" section (needed for trap stacks) and makes the output depend on the machine.
        steps: (tmp) => [
          ['clang', [...WASM_CC, ...WASM_INCLUDES, ...CFLAGS, ...d.cflags, '-c', src, '-o', `${tmp}.o`]],
          ['clang', [...WASM_CC, `${tmp}.o`, '-o', tmp, '-Wl,--strip-debug', ...d.wasmLdflags]],
          ['rm', ['-f', `${tmp}.o`]],
        ],
      });
    }
    if (d.native && (force || mtime(native) <= newest)) {
      targets.push({
        name, kind: 'native', out: native, needs: 'gcc',
        steps: (tmp) => [['gcc', [...NATIVE_CFLAGS, ...d.cflags, src, '-o', tmp, ...d.nativeLdflags, '-lm']]],
      });
    }
  }
  return targets;
}

function asTargets() {
  const sources = filesIn(asDir, '.ts');
  // Every AS guest depends on the shared library files and the config too.
  const shared = [...listRecursive(asDir).filter((f) => !sources.includes(f)), ...listRecursive(sdkAsDir)];
  const newestShared = Math.max(mtime(self), ...shared.map(mtime));
  const targets = [];
  for (const src of sources) {
    const name = basename(src, '.ts');
    if (only.size && !only.has(name)) continue;
    const wasm = join(outDir, `${name}.wasm`);
    if (!force && mtime(wasm) > Math.max(mtime(src), newestShared)) continue;
    targets.push({
      name, kind: 'as', out: wasm, needs: 'asc',
      // cwd is test/guests/as so that its asconfig.json (not the repository's) applies and `--use abort=lib/wasi/...`
      // resolves.
      steps: (tmp) => [[process.execPath,
        [ascJs, basename(src), '--config', 'asconfig.json', '--target', 'release', '-o', tmp], { cwd: asDir }]],
    });
  }
  return targets;
}

async function main() {
  const t0 = Date.now();
  mkdirSync(outDir, { recursive: true });
  let targets = [...cTargets(), ...asTargets()];
  const skipped = [];
  if (targets.some((t) => t.needs === 'clang')) {
    const ok = clangWorks();
    if (ok !== true) {
      const msg = `clang cannot build wasm32-wasi programs (${ok}). Install clang, lld, wasi-libc and ` +
        'libclang-rt-dev-wasm32 (Debian/Ubuntu: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32).';
      if (ci) { console.error(`guests: error: ${msg}`); process.exit(1); }
      warn(`${msg} Skipping the C guests.`);
      skipped.push(...targets.filter((t) => t.needs === 'clang' || t.needs === 'gcc').map((t) => t.name));
      targets = targets.filter((t) => t.needs !== 'clang' && t.needs !== 'gcc');
    }
  }
  if (targets.some((t) => t.needs === 'gcc') && !gccWorks()) {
    const msg = 'gcc not found: cannot build the native reference binaries (*.native).';
    if (ci) { console.error(`guests: error: ${msg}`); process.exit(1); }
    warn(`${msg} Skipping them.`);
    targets = targets.filter((t) => t.needs !== 'gcc');
  }
  if (targets.some((t) => t.needs === 'asc') && !existsSync(ascJs)) {
    console.error(`guests: error: AssemblyScript compiler not found at ${relative(root, ascJs)}; run npm ci.`);
    process.exit(1);
  }

  const failures = [];
  let built = 0;
  const queue = [...targets];
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const start = Date.now();
      const err = await produce(t.out, t.steps);
      if (err) { failures.push(t); console.error(`guests: FAILED ${basename(t.out)} (${t.kind})\n${err.trimEnd()}`); }
      else { built++; log(`guests: built ${basename(t.out)} (${t.kind}, ${Date.now() - start} ms)`); }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(cpus().length, 4)) }, worker));
  const summary = !targets.length && !skipped.length ? 'guests: up to date' : `guests: ${built} built, ${failures.length} failed` +
    (skipped.length ? `, ${new Set(skipped).size} C guests skipped` : '') + ` (${Date.now() - t0} ms)`;
  if (targets.length || skipped.length || !quiet) console.log(summary);
  if (failures.length) process.exit(1);
}

await main();
