// Native `wasm-opt` (Debian's binaryen package) for the Asyncify step of instrumentation, on Node when it is
// installed: binaryen.js runs in a wasm32 heap capped at 4 GiB and on one core, which large real programs exhaust
// (benchmarks/real/RESULTS-real.md: CRuby at -O1 did not finish in binaryen.js within 7 minutes; native wasm-opt
// instrumented it in 266 s). The rest of instrumentation stays in binaryen.js (vm/instrument.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, sep } from 'node:path';
import { InstrumentError, type AsyncifyRunner, type InstrumentOptions } from '../vm/runtime.js';
import { functionBodies, joinParts, modulePart, partition } from '../vm/wasmcode.js';
import { readBytes } from './files.js';

/** The Wasm features gridvm's engines accept (vm/instrument.ts ENGINE_FEATURES), as wasm-opt flags. */
const FEATURES = [
  '--enable-mutable-globals', '--enable-nontrapping-float-to-int', '--enable-simd', '--enable-bulk-memory', '--enable-sign-ext',
  '--enable-reference-types', '--enable-multivalue', '--enable-exception-handling', '--enable-tail-call', '--enable-extended-const',
];

/** Modules at least this big (bytes) use native wasm-opt when it is installed (GRIDVM_WASM_OPT=always|never overrides). */
export const NATIVE_ASYNCIFY_MIN_BYTES = 4 * 1024 * 1024;

/**
 * The largest module (MiB, after gridvm's unwind) that native wasm-opt optimises: it has needed 30-80x the module's
 * size in memory (yosys at INSTRUMENT_VERSION 22, 202 MiB: ~6 GB; CRuby at version 13, 166 MiB: 13.7 GB), and these
 * machines have 24 GiB. Bigger ones run unoptimised. GRIDVM_WASM_OPT_MAX_MIB overrides it (and is part of the cache
 * key). Raised from 192 in version 22, when unrolling yosys' tiny loops took it to 202 MiB: optimised, it ran 1.24x
 * its original (best against best, 12 warm rounds), unoptimised 1.31x.
 */
export const NATIVE_OPTIMIZE_MAX_MIB = 256;

let found: { path: string; version: string } | null | undefined;

/**
 * Passes of wasm-opt's -O<level> that work on the whole module (they remove, merge or renumber functions, globals,
 * imports; or need every body): left out when a module is optimised a part at a time.
 */
const MODULE_PASSES = new Set([
  'duplicate-function-elimination', 'duplicate-import-elimination', 'memory-packing', 'once-reduction', 'simplify-globals',
  'simplify-globals-optimizing', 'remove-unused-module-elements', 'remove-unused-nonfunction-module-elements', 'directize',
  'dae', 'dae-optimizing', 'inlining', 'inlining-optimizing', 'global-refining', 'gto', 'gsi', 'cfp', 'type-refining',
  'signature-pruning', 'signature-refining', 'remove-unused-types', 'reorder-functions', 'merge-similar-functions',
  'propagate-globals-globally', 'abstract-type-refining', 'monomorphize', 'global-effects', 'generate-global-effects',
]);
/** Function passes as -O<level> runs them, read from the tool itself (`--debug` on an empty module), by level. */
const functionPasses = new Map<number, string[]>();

/**
 * The first `name` on PATH that is not in a node_modules/.bin: npm scripts put the npm package binaryen's own
 * `wasm-opt` there, binaryen.js behind a command line (one core, 4 GiB, a Node start per call), not the native tool.
 */
function onPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir || dir.split(sep).includes('node_modules')) continue;
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return name;
}

/** The installed wasm-opt and its version, or undefined. */
export function findWasmOpt(): { path: string; version: string } | undefined {
  if (found === undefined) {
    const path = process.env.GRIDVM_WASM_OPT_PATH || onPath('wasm-opt');
    const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = r.status === 0 ? /version\s+(\d+)/.exec(r.stdout) : null;
    found = m ? { path, version: m[1]! } : null;
  }
  return found ?? undefined;
}

/**
 * Native wasm-opt: -O<level> of a module gridvm's unwind has made, or Asyncify and -O<level> for the modules that
 * unwind does not handle; undefined when it is not installed. With `parts` (GRIDVM_WASM_OPT_PARTS=1), a module over
 * the size limit is optimised a part at a time (memory bounded by the part) instead of left unoptimised: off by
 * default, because on yosys (284 MiB after the unwind, 5 parts) it took 11 more minutes and the workload ran no
 * faster (benchmarks/real/RESULTS-real.md); it serves a machine whose memory needs a lower limit
 * (GRIDVM_WASM_OPT_MAX_MIB) for modules the optimiser does speed up (CRuby: 1.27x unoptimised, 1.17x at -O1).
 */
export function nativeAsyncify(opts: { parts?: boolean } = { parts: process.env.GRIDVM_WASM_OPT_PARTS === '1' }): AsyncifyRunner | undefined {
  const w = findWasmOpt();
  if (!w) return undefined;
  const wasmOpt = (bytes: Uint8Array, step: string, passes: (dir: string) => string[]): Uint8Array => {
    const dir = mkdtempSync(join(tmpdir(), 'gridvm-wasm-opt-'));
    try {
      const input = join(dir, 'in.wasm');
      const output = join(dir, 'out.wasm');
      writeFileSync(input, bytes);
      const args = [input, ...FEATURES, ...passes(dir), '-g', '-o', output];
      const r = spawnSync(w.path, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (r.status !== 0) {
        const why = r.error ? r.error.message : `${r.signal ?? `exit ${r.status}`}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`;
        throw new InstrumentError(`native wasm-opt failed in the ${step} step (${why}); GRIDVM_WASM_OPT=never uses binaryen.js instead`);
      }
      return readBytes(output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  /** -O<level>'s function passes, in its order, without the whole-module ones */
  const passesOf = (level: number): string[] => {
    let list = functionPasses.get(level);
    if (!list) {
      const dir = mkdtempSync(join(tmpdir(), 'gridvm-wasm-opt-'));
      try {
        writeFileSync(join(dir, 'empty.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
        const r = spawnSync(w.path, [join(dir, 'empty.wasm'), `-O${level}`, '--debug', '-o', join(dir, 'out.wasm')], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
        list = [...`${r.stdout}\n${r.stderr}`.matchAll(/^\[PassRunner\] {3}running pass: ([\w-]+)/gm)].map((x) => x[1]!).filter((x) => !MODULE_PASSES.has(x));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      if (!list.length) throw new InstrumentError(`native wasm-opt did not list the passes of -O${level}`);
      functionPasses.set(level, list);
    }
    return list;
  };
  const asked = Number(process.env.GRIDVM_WASM_OPT_MAX_MIB ?? NATIVE_OPTIMIZE_MAX_MIB);
  const maxMiB = Number.isFinite(asked) && asked >= 0 ? asked : NATIVE_OPTIMIZE_MAX_MIB;
  return {
    id: `wasmopt${w.version}${maxMiB === NATIVE_OPTIMIZE_MAX_MIB ? '' : `-max${maxMiB}m`}${opts.parts ? '-parts' : ''}`,
    maxOptimizeBytes: maxMiB * 1024 * 1024,
    run(bytes, passArgs, optimizeLevel) {
      return wasmOpt(bytes, 'Asyncify', (dir) => {
        const args = ['--asyncify'];
        for (const [k, v] of Object.entries(passArgs)) {
          // long lists (thousands of function names) go through a response file: `KEY@@FILE`
          if (v.length > 4096) {
            const list = join(dir, `${k}.txt`);
            writeFileSync(list, v);
            args.push(`--pass-arg=${k}@@${list}`);
          } else args.push(`--pass-arg=${k}@${v}`);
        }
        if (optimizeLevel > 0) args.push(`-O${optimizeLevel}`);
        return args;
      });
    },
    passes(bytes, flags) {
      return wasmOpt(bytes, flags.join(' '), () => flags);
    },
    optimizeInParts: opts.parts ? (bytes, level, partBytes, onPart) => {
      // a part is the whole module with only its own bodies: its peak is that of a module of about the part's size
      const bodies = functionBodies(bytes);
      const ranges = partition(bodies, partBytes);
      const flags = ['--optimize-level', String(level), ...passesOf(level).map((p) => `--${p}`)];
      const outs = ranges.map(([from, to], k) => {
        onPart(k / ranges.length);
        return wasmOpt(modulePart(bytes, bodies, from, to), `-O${level} function passes, part ${k + 1} of ${ranges.length}`, () => flags);
      });
      const joined = joinParts(bytes, ranges, outs);
      if (!WebAssembly.validate(joined as Uint8Array<ArrayBuffer>)) throw new InstrumentError('the module optimised in parts does not validate');
      return { bytes: joined, parts: ranges.length };
    } : undefined,
  };
}

/**
 * The instrumentation options for a module on this host: `base`, plus native wasm-opt for the Asyncify step when it
 * is installed and the module is large (or GRIDVM_WASM_OPT=always; never with GRIDVM_WASM_OPT=never).
 */
export function hostInstrumentOptions(bytes: Uint8Array, base: InstrumentOptions = {}): InstrumentOptions {
  if (base.asyncify) return base;
  const mode = process.env.GRIDVM_WASM_OPT ?? 'auto';
  if (mode === 'never' || (mode !== 'always' && bytes.length < NATIVE_ASYNCIFY_MIN_BYTES)) return base;
  const native = nativeAsyncify();
  return native ? { ...base, asyncify: native } : base;
}
