import binaryen from 'binaryen';
import { walkFunction, unknownKinds } from './walk.js';
import { canCacheBudget, insertCachedChecks, insertPreCallChecks, lowerTailCalls } from './budget.js';
import { noreturnFunctions } from './noreturn.js';
import { recursiveFunctions } from './callgraph.js';
import { renameFunctionNames } from './namesection.js';
import { activeDataPages, exportMemory, hasStartSection } from './wasmbin.js';
import { InstrumentError } from './errors.js';
import { addDirtyTracking } from './dirty.js';
import { unrollSelfRecursion } from './recursion.js';
import { addUnwind, UNWIND_PREPARE, UnwindUnsupported, type UnwindStats } from './unwind.js';
import { SYSCALLS } from '../kernel/index.js';
import { BUDGET_GLOBAL, DIRTY_BASE_GLOBAL, GLOBAL_EXPORT_PREFIX, MEMLIMIT_GLOBAL, TICK_FLOOR_GLOBAL } from './names.js';

import { INSTRUMENT_VERSION } from './version.js';
import { unrollLoopsOf } from './unroll.js';
export { INSTRUMENT_VERSION };

const YIELD_FN = '__gridvm_yield';
const TICK_FN = '__gridvm_tick';
const NOUNWIND_FN = '__gridvm_nounwind';
const LIMIT_FN = '__gridvm_memory_limit';
const GROW_CHECK_FN = '__gridvm_grow_check';

/**
 * The imports that may suspend a job (Asyncify's `asyncify-imports`): the yield check, and the syscall table's
 * blocking calls (gridvm.spawn/fork/wait). Only those a module imports cost anything. Keep this list small.
 */
export const SUSPENDING_IMPORTS: readonly string[] = Object.freeze([
  'gridvm.yield',
  ...SYSCALLS.filter((s) => s.blocking).map((s) => `${s.ns}.${s.name}`),
]);

export interface InstrumentInfo {
  version: number;
  /** export names of every mutable global of the job, in a stable order (the snapshot stores values in it) */
  globals: string[];
  /** the name under which the job's memory is exported (also imported as `gridvm.memory`: see `memory`) */
  memoryExport: string;
  /**
   * The job's memory, in 64 KiB pages: the instrumented module imports it as `gridvm.memory` with these limits (the
   * module's own), so a host can supply a pooled, pre-grown memory (MachineOptions.memory). Absent for modules
   * instrumented before version 7 (their memory is defined in the module; the Machine then uses the export).
   */
  memory?: {
    initial: number;
    maximum?: number;
    /** a shared memory (threads): the supplied memory must be shared too */
    shared?: boolean;
    /** where the original module imported its memory from (`env.memory`), if it did */
    importedFrom?: string;
  };
  /**
   * The pages that the active data segments write when the module is instantiated (into whatever memory it is given).
   * A restore into a memory prepared before instantiation must write these pages again afterwards (applyChain's
   * `prepared` option does). Absent when `memory` is.
   */
  dataPages?: number[];
  entry: string;
  /**
   * Instrumented with dirty-page tracking (InstrumentOptions.dirtyPages): the module marks the pages it writes in
   * a map at the top of its memory (vm/dirty.ts), and runs with one page more than the job sees.
   */
  dirtyPages?: boolean;
  /**
   * After a clean exit, an instance of this module can run another job once its memory (still at the initial size)
   * and its mutable globals are put back as they were after instantiation: the module has no start function, no
   * data.drop, table.set or table.grow (nor expression kinds the analysis does not know), and no dirty-page
   * tracking. Hosts keep such instances in an InstancePool (vm/instances.ts) instead of instantiating per job.
   */
  reusable?: boolean;
  stats: {
    functions: number;
    loops: number;
    /** recursive functions with budget checks (at their entry, or before their recursive calls: preCallChecks) */
    entryChecks: number;
    /** checks placed before calls that may recurse instead of at a recursive function's entry (vm/budget.ts) */
    preCallChecks?: number;
    /** functions with loops whose checks cannot unwind (leaves: see `gridvm.tick`) */
    leafFunctions: number;
    /** functions whose checks count down a local copy of the budget (vm/budget.ts) */
    cachedFunctions?: number;
    /** functions that never touch the budget (down their call tree), called without a write-back and reload */
    budgetFreeFunctions?: number;
    /** functions that never return, run with unwinding off and left out of Asyncify (see `gridvm.nounwind`) */
    coldFunctions?: number;
    /** loops unrolled by two, so their check runs once per two iterations (vm/loops.ts) */
    unrolledLoops?: number;
    /** self-recursive functions unrolled by one level (InstrumentOptions.unrollRecursion), and the calls inlined */
    unrolledRecursion?: { functions: number; calls: number };
    grows: number;
    tries: number;
    unknownExpressionKinds: number;
    renamedAsyncifyExports: string[];
    /**
     * How the stack is captured: gridvm's own unwind (vm/unwind.ts: a fast and a resume version of each function
     * that may suspend), or Binaryen's Asyncify (modules unwind.ts does not handle).
     */
    unwind?: { by: 'gridvm'; functions: number; sites: number; cleanLoops?: number; sharedFrames?: number } | { by: 'asyncify' };
    /**
     * The final optimisation was left out: the module after the unwind was bigger than the native tool's
     * `maxOptimizeBytes` (its bytes) and the tool cannot optimise it in parts (or failed to). It runs correctly,
     * somewhat slower.
     */
    unoptimizedBytes?: number;
    /** why it was not optimised in parts either */
    unoptimizedWhy?: string;
    /**
     * The module after the unwind was bigger than the native tool's `maxOptimizeBytes`: it was optimised in this
     * many parts (the function passes of -O<level> on each part's bodies; the whole-module passes left out).
     */
    optimizedInParts?: number;
    /** stores (and bulk memory operations) that mark the dirty-page map, with dirty-page tracking */
    dirtyStores?: number;
    /** stores whose page an earlier store through the same pointer marked (no mark of their own) */
    dirtySharedMarks?: number;
  };
}

/**
 * Runs the optimiser (and Asyncify, for the modules gridvm's own unwind does not handle) outside binaryen.js.
 * runtime-node supplies native `wasm-opt` this way for large modules (no 4 GiB wasm32 heap, both cores).
 */
export interface AsyncifyRunner {
  /** names the tool and version: part of the cache key (another tool makes another module) */
  id: string;
  /**
   * Asyncify, then -O<level>: given the module right before Asyncify, Binaryen pass arguments (`asyncify-imports`,
   * `asyncify-removelist`) and the optimise level, returns the module after them.
   */
  run(bytes: Uint8Array, passArgs: Record<string, string>, optimizeLevel: number): Uint8Array;
  /** the module after the given passes, as the tool's flags (`--flatten`, `-O1`) */
  passes(bytes: Uint8Array, flags: string[]): Uint8Array;
  /**
   * Modules bigger than this after gridvm's unwind are not optimised: the tool's memory grows with the module
   * (wasm-opt -O1 on CRuby's 166 MiB: 13.7 GB, 342 s). A runner names a non-default limit in `id`.
   */
  maxOptimizeBytes?: number;
  /**
   * -O<level>'s function passes on a module bigger than `maxOptimizeBytes`, parts of at most `partBytes` of its
   * bodies at a time (vm/wasmcode.ts), so that the tool's memory follows the part's size instead of the module's.
   * `onPart` gets the fraction done. Throws if the parts cannot be put back together.
   */
  optimizeInParts?(bytes: Uint8Array, optimizeLevel: number, partBytes: number, onPart: (fraction: number) => void): { bytes: Uint8Array; parts: number };
}

export interface InstrumentOptions {
  /** Binaryen optimisation level after Asyncify (default 1: -O2 inlines, which loses function names from trap stacks and measured no faster). */
  optimizeLevel?: number;
  /**
   * Dirty-page tracking (vm/dirty.ts): every store also marks its page, so checkpoints copy and ship only the
   * pages written since the previous one (delta checkpoints and pre-copy migration in time proportional to what
   * changed, not to memory size), at the price of the marks on every store. A different module (and module hash).
   */
  dirtyPages?: boolean;
  /**
   * How to capture the stack: 'gridvm' (default) uses vm/unwind.ts where it can and Binaryen's Asyncify where it
   * cannot; 'asyncify' always uses Asyncify (to compare the two). With `asyncify` (a runner) Asyncify is used.
   */
  unwind?: 'gridvm' | 'asyncify';
  /**
   * Unroll small loops by two so that their budget check runs once per two iterations (vm/loops.ts). Default: true,
   * but only the tiny loops (unrolled by four) with `asyncify` (the native tool, used for large modules: copies of
   * all small loops took yosys past binaryen.js's 4 GiB). The same output either way; fuel counts checks, so it is
   * lower with unrolling. `'tiny'`: only the loops unrolled by four.
   */
  unrollLoops?: boolean | 'tiny';
  /**
   * Unroll small self-recursive functions by one level (vm/recursion.ts): each call to itself becomes a copy of its
   * body, so one activation does two levels' work and pays one budget check. Default: as `unrollLoops`. The same
   * output either way; fuel is lower with it.
   */
  unrollRecursion?: boolean;
  /** run Asyncify (and the optimiser) with this instead of binaryen.js */
  asyncify?: AsyncifyRunner;
  onProgress?: (stage: string, fraction: number) => void;
}

export interface InstrumentOutput {
  bytes: Uint8Array;
  info: InstrumentInfo;
}

const WASI_NS = 'wasi_snapshot_preview1';
const F = binaryen.Features;
/**
 * The Wasm features the engines we target (V8 in Node 20 and current browsers) accept, and that real toolchains
 * emit. `Features.All` would make Binaryen emit encodings V8 11 rejects (compact imports, custom page sizes).
 */
const ENGINE_FEATURES =
  F.MVP | F.MutableGlobals | F.NontrappingFPToInt | F.SIMD128 | F.BulkMemory | F.BulkMemoryOpt | F.SignExt |
  F.ReferenceTypes | F.Multivalue | F.ExceptionHandling | F.TailCall | F.ExtendedConst;
/**
 * Expressions in a self-recursive function unrolled by one level (vm/recursion.ts): its body grows by a copy per
 * self-call (fib's two: 3x), so only small ones, where a check per call weighs most.
 */
const UNROLL_RECURSION_MAX = 80;
/** Expression-class accessors that binaryen.js has but its type declarations omit. */
const X = binaryen as unknown as {
  Loop: { getBody(e: number): number; setBody(e: number, body: number): void };
  Function: { getBody(f: number): number; setBody(f: number, body: number): void };
  MemoryGrow: { getDelta(e: number): number; setDelta(e: number, d: number): void };
};

/**
 * A program's main loop must be able to unwind even when it calls nothing (`int main() { for (;;) work; }`):
 * these functions (by name-section name) are never treated as low (ticking) functions.
 */
const MAIN_NAMES = new Set(['_start', 'main', '__main_void', '__main_argc_argv', '__original_main', '~start', 'start']);

const LOW_NEEDS_CALL_FREE_LOOPS = false;

const ASYNCIFY_EXPORTS = ['asyncify_start_unwind', 'asyncify_stop_unwind', 'asyncify_start_rewind', 'asyncify_stop_rewind', 'asyncify_get_state'];

/**
 * Instrument a WASI command module so that it can be preempted and its stack captured:
 * 1. a budget check at every loop header and at the entry of every function that can recurse (a cycle in the
 *    call graph, indirect calls included); at zero it calls `gridvm.yield`. The budget doubles as fuel.
 * 2. every memory.grow goes through a check against `__gridvm_mem_limit` (pages) that reports to
 *    `gridvm.memory_limit` before the limit is passed.
 * 3. every mutable global is exported (`__stack_pointer` above all).
 * 4. Asyncify, limited to SUSPENDING_IMPORTS (`gridvm.yield` and the blocking grid calls).
 */
export function instrument(original: Uint8Array, opts: InstrumentOptions = {}): InstrumentOutput {
  const progress = opts.onProgress ?? (() => {});
  progress('parse', 0);
  let m: binaryen.Module;
  // functions already named like Asyncify's own (a module built with Asyncify) would clash with our pass
  const pre = renameFunctionNames(original, (n) => (ASYNCIFY_EXPORTS.includes(n) ? `__inner_${n}` : undefined));
  // a memory without an export (an imported one, typically) gets one, so that Binaryen's API can name it
  let input = pre.bytes;
  try {
    input = exportMemory(pre.bytes);
  } catch {
    // malformed: readBinary below says so
  }
  try {
    m = binaryen.readBinary(input);
  } catch (e) {
    throw new InstrumentError(`not a valid WebAssembly module: ${(e as Error).message}`, { cause: e });
  }
  const owned = { m, disposed: false };
  try {
    return instrumentModule(owned, opts, progress, hasStartSection(original));
  } catch (e) {
    if (e instanceof InstrumentError) throw e;
    const msg = e instanceof Error ? e.message : typeof e === 'object' ? JSON.stringify(e) : String(e);
    throw new InstrumentError(`Binaryen failed while instrumenting the module: ${msg}`, { cause: e });
  } finally {
    if (!owned.disposed) m.dispose();
  }
}

function instrumentModule(owned: { m: binaryen.Module; disposed: boolean }, opts: InstrumentOptions, progress: (s: string, f: number) => void, hasStart: boolean): InstrumentOutput {
  const m = owned.m;
  m.setFeatures(ENGINE_FEATURES);
  binaryen.setDebugInfo(true);

  // ---- what kind of module is this?
  const exports = new Map<string, binaryen.ExportInfo>();
  for (let i = 0; i < m.getNumExports(); i++) {
    const e = binaryen.getExportInfo(m.getExportByIndex(i));
    exports.set(e.name, e);
  }
  const imports: string[] = [];
  const noreturnImports: string[] = [];
  const nFuncs = m.getNumFunctions();
  for (let i = 0; i < nFuncs; i++) {
    const f = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
    if (f.module) imports.push(`${f.module}.${f.base}`);
    if (f.module === WASI_NS && f.base === 'proc_exit') noreturnImports.push(f.name);
  }
  for (const ns of ['gridvm']) {
    const clash = imports.filter((n) => n.startsWith(`${ns}.`) && !n.startsWith('gridvm.'));
    if (clash.length) throw new InstrumentError(`module imports reserved names: ${clash.join(', ')}`);
  }
  const entry = exports.has('_start') ? '_start' : undefined;
  if (!entry) {
    const wasi = imports.some((n) => n.startsWith(`${WASI_NS}.`));
    if (!wasi) throw new InstrumentError('not a WASI command module: it exports no `_start` and imports nothing from wasi_snapshot_preview1');
    throw new InstrumentError('not a WASI command module: it exports no `_start` (WASI reactors with `_initialize` are not supported yet)');
  }
  const memExport = [...exports.values()].find((e) => e.kind === binaryen.ExternalMemory);
  if (!m.hasMemory() || !memExport) throw new InstrumentError('the module has no memory: a WASI command must define (or import) and export `memory`');
  const mem = m.getMemoryInfo(memExport.value);
  if (mem.is64) throw new InstrumentError('the module uses a 64-bit memory (memory64): gridvm runs wasm32 modules only');
  for (const n of exports.keys()) {
    if (n.startsWith('__gridvm_')) throw new InstrumentError(`the module already exports ${n}: was it instrumented by gridvm already? Pass the original module`);
  }

  // A module that was already built with Asyncify (some toolchains ship such builds): rename its own controls so
  // our Asyncify pass can add ours. Its internal use of them keeps working.
  const renamed: string[] = [];
  for (const n of ASYNCIFY_EXPORTS) {
    const e = exports.get(n);
    if (!e) continue;
    m.removeExport(n);
    if (e.kind === binaryen.ExternalFunction) m.addFunctionExport(e.value, `__inner_${n}`);
    renamed.push(n);
  }
  for (const n of ['asyncify_data', '__asyncify_data', '__asyncify_state']) {
    if (m.getGlobal(n)) {
      // binaryen names its own globals `__asyncify_state` / `__asyncify_data`; a second pass would clash
      throw new InstrumentError(`the module already contains Asyncify globals (${n}); this build cannot be instrumented again`);
    }
  }

  // ---- export every mutable global: they are state
  const globals: string[] = [];
  const exportedGlobal = new Map<string, string>();
  for (const e of exports.values()) if (e.kind === binaryen.ExternalGlobal) exportedGlobal.set(e.value, e.name);
  const nGlobals = m.getNumGlobals();
  for (let i = 0; i < nGlobals; i++) {
    const g = binaryen.getGlobalInfo(m.getGlobalByIndex(i));
    if (!g.mutable) continue;
    if (g.module) throw new InstrumentError(`the module imports mutable global ${g.module}.${g.base}; gridvm cannot checkpoint host-owned state`);
    let name = exportedGlobal.get(g.name);
    if (!name) {
      name = `${GLOBAL_EXPORT_PREFIX}${i}`;
      m.addGlobalExport(g.name, name);
    }
    globals.push(name);
  }

  // ---- the memory becomes an import, `gridvm.memory`, with the module's own limits (a module that imported its
  // memory, from `env.memory` say, now imports it from gridvm): the host creates it, or supplies a pooled one.
  // Binaryen's addMemoryImport on an existing memory only sets its module and base; limits, `shared` and the
  // export stay. Data segments still initialise it at instantiation.
  const importedFrom = mem.module ? `${mem.module}.${mem.base}` : undefined;
  m.addMemoryImport(memExport.value, 'gridvm', 'memory', mem.shared);

  // ---- our globals and imports
  m.addGlobal(BUDGET_GLOBAL, binaryen.i32, true, m.i32.const(0));
  m.addGlobal(MEMLIMIT_GLOBAL, binaryen.i32, true, m.i32.const(65536));
  m.addGlobal(TICK_FLOOR_GLOBAL, binaryen.i32, true, m.i32.const(0));
  m.addGlobalExport(BUDGET_GLOBAL, BUDGET_GLOBAL);
  m.addGlobalExport(TICK_FLOOR_GLOBAL, TICK_FLOOR_GLOBAL);
  m.addGlobalExport(MEMLIMIT_GLOBAL, MEMLIMIT_GLOBAL);
  m.addFunctionImport(YIELD_FN, 'gridvm', 'yield', binaryen.none, binaryen.none);
  m.addFunctionImport(TICK_FN, 'gridvm', 'tick', binaryen.none, binaryen.none);
  m.addFunctionImport(LIMIT_FN, 'gridvm', 'memory_limit', binaryen.i32, binaryen.none);
  m.addFunctionImport(NOUNWIND_FN, 'gridvm', 'nounwind', binaryen.none, binaryen.none);
  m.addFunction(
    GROW_CHECK_FN,
    binaryen.i32,
    binaryen.i32,
    [],
    m.block(null, [
      m.if(
        m.i32.gt_u(m.local.get(0, binaryen.i32), m.i32.sub(m.global.get(MEMLIMIT_GLOBAL, binaryen.i32), m.memory.size())),
        m.call(LIMIT_FN, [m.local.get(0, binaryen.i32)], binaryen.none),
      ),
      m.local.get(0, binaryen.i32),
    ], binaryen.i32),
  );

  // ---- walk every defined function
  progress('analyse', 0);
  const funcs: Array<{ ref: binaryen.FunctionRef; name: string; body: number; results: number }> = [];
  const edges = new Map<string, Set<string>>();
  const indirectCallers = new Set<string>();
  const addressTaken = new Set<string>();
  const loopsByFunc = new Map<string, number[]>();
  const depthByFunc = new Map<string, number[]>();
  const loopCalls = new Map<string, boolean>();
  const growsAll: number[] = [];
  const growers = new Set<string>();
  let loops = 0;
  let tries = 0;
  let throws = 0;
  let stateOps = 0;
  const unknownBefore = unknownTotal();
  // not for the large modules the native tool handles, as unrollLoops
  const unrollRecursion = opts.unrollRecursion ?? unrollLoopsOf(opts) === true;
  const unrolledRecursion = { functions: 0, calls: 0 };
  for (let i = 0; i < nFuncs; i++) {
    const ref = m.getFunctionByIndex(i);
    const f = binaryen.getFunctionInfo(ref);
    if (f.module) continue;
    let facts = walkFunction(f.body);
    if (facts.tailCalls) {
      if (!lowerTailCalls(m, ref)) throw new InstrumentError(`function ${f.name} uses tail calls (return_call) in code gridvm cannot rewrite; Asyncify does not support tail calls: build without -mtail-call`);
      facts = walkFunction(binaryen.getFunctionInfo(ref).body);
    }
    if (unrollRecursion && !facts.loops.length && facts.calls.has(f.name)) {
      const n = unrollSelfRecursion(m, ref, f.name, UNROLL_RECURSION_MAX);
      if (n) {
        unrolledRecursion.functions++;
        unrolledRecursion.calls += n;
        facts = walkFunction(X.Function.getBody(ref));
      }
    }
    funcs.push({ ref, name: f.name, body: binaryen.getFunctionInfo(ref).body, results: f.results });
    edges.set(f.name, facts.calls);
    if (facts.indirect) indirectCallers.add(f.name);
    for (const r of facts.refFuncs) addressTaken.add(r);
    loopsByFunc.set(f.name, facts.loops);
    depthByFunc.set(f.name, facts.loopDepth);
    loopCalls.set(f.name, facts.loopCalls);
    growsAll.push(...facts.grows);
    if (facts.grows.length) growers.add(f.name);
    loops += facts.loops.length;
    tries += facts.tries;
    throws += facts.throws;
    stateOps += facts.stateOps;
    if (i % 2048 === 0) progress('analyse', i / nFuncs);
  }
  const nSeg = m.getNumElementSegments();
  for (let i = 0; i < nSeg; i++) {
    const seg = binaryen.getElementSegmentInfo(m.getElementSegmentByIndex(i));
    for (const n of seg.data) addressTaken.add(n);
  }
  const recursiveAll = recursiveFunctions(edges, indirectCallers, addressTaken);
  // the program's main functions, by name, and whatever function `_start` exports (names may be stripped)
  const mains = new Set([...MAIN_NAMES, exports.get(entry)!.value]);

  // Cold functions: they never return (exit, abort, an AssemblyScript abort handler, a panic) and have no loop of
  // their own. They sit on the error path of nearly every function, so if they could unwind, Asyncify would
  // instrument nearly everything. Instead each one starts with `gridvm.nounwind` (from then on the job does not
  // unwind: it is exiting) and Asyncify is told they do not unwind (asyncify-removelist). Not with exceptions (a
  // "never returning" throw continues in a catch) nor with expression kinds the walker does not know.
  const cold = new Set<string>();
  const allKnown = unknownTotal() === unknownBefore;
  const reusable = allKnown && stateOps === 0 && !hasStart && !opts.dirtyPages;
  if (!tries && !throws && allKnown) {
    const never = noreturnFunctions(funcs, noreturnImports);
    for (const f of funcs) {
      if (never.has(f.name) && !mains.has(f.name) && !loopsByFunc.get(f.name)!.length && asyncifyListName(f.name)) cold.add(f.name);
    }
  }

  // ---- insert the checks
  progress('preempt', 0);
  const checkTo = (target: string): number =>
    m.block(null, [
      m.global.set(BUDGET_GLOBAL, m.i32.sub(m.global.get(BUDGET_GLOBAL, binaryen.i32), m.i32.const(1))),
      m.if(
        m.i32.lt_s(m.global.get(BUDGET_GLOBAL, binaryen.i32), target === TICK_FN ? m.global.get(TICK_FLOOR_GLOBAL, binaryen.i32) : m.i32.const(0)),
        m.call(target, [], binaryen.none),
      ),
    ], binaryen.none);
  // A leaf calls no function of the job (imports only, no indirect calls): its checks call the non-suspending
  // `gridvm.tick`, so Asyncify leaves it alone — hot inner kernels (memcpy, malloc, numeric loops) run unmodified
  // but for the budget. Unwinding happens at the next check in a non-leaf.
  // Recursion as the job runs it: a cycle through a cold function is entered once, on the way out. Calls to cold
  // functions count like imports; a cold function on a cycle keeps its (ticking) entry check, for the limits.
  const recursive = cold.size
    ? new Set([
      ...recursiveFunctions(
        new Map([...edges].map(([k, v]) => [k, new Set([...v].filter((c) => !cold.has(c)))])),
        indirectCallers,
        new Set([...addressTaken].filter((n) => !cold.has(n))),
      ),
      ...[...cold].filter((c) => recursiveAll.has(c)),
    ])
    : recursiveAll;
  const defined = new Set(funcs.map((f) => f.name));
  let entryChecks = 0;
  let preCallChecks = 0;
  let leafFunctions = 0;
  let cachedFunctions = 0;
  let unrolledLoops = 0;
  // the large modules the native tool handles get their tiny loops unrolled only: copies of every small loop took
  // yosys past binaryen.js's 4 GiB when emitting; its tiny inner loops were where its checks cost most
  const unrollLoops = unrollLoopsOf(opts);
  // Height 0: calls no function of the job. Height 1: not recursive, no indirect calls, calls only height-0
  // functions. Both run in time bounded by their own loops, so their checks tick instead of yielding: a due
  // checkpoint waits for such a call to return (their callers can unwind).
  const calleesOf = (n: string) => [...edges.get(n)!].filter((c) => defined.has(c) && !cold.has(c));
  const height0 = new Set(funcs.filter((f) => !indirectCallers.has(f.name) && calleesOf(f.name).length === 0).map((f) => f.name));
  const low = new Set([...height0].filter((n) => !mains.has(n)));
  for (const f of funcs) {
    if (height0.has(f.name) || recursive.has(f.name) || indirectCallers.has(f.name) || mains.has(f.name)) continue;
    if (LOW_NEEDS_CALL_FREE_LOOPS && loopCalls.get(f.name)) continue;
    if (calleesOf(f.name).every((c) => height0.has(c))) low.add(f.name);
  }
  // Functions that never touch the budget: no loops, no checks (not recursive), no indirect calls, no memory.grow
  // (its check calls an import), calling only such functions (no imports: the host reads the budget at every import).
  // A function that holds its budget in a local calls them without writing it back and reading it again.
  const budgetFree = new Set(funcs.filter((f) => !loopsByFunc.get(f.name)!.length && !recursive.has(f.name) && !indirectCallers.has(f.name) &&
    !growers.has(f.name) && !cold.has(f.name)).map((f) => f.name));
  for (let changed = true; changed;) {
    changed = false;
    for (const n of budgetFree) {
      for (const c of edges.get(n)!) {
        if (budgetFree.has(c)) continue;
        budgetFree.delete(n);
        changed = true;
        break;
      }
    }
  }
  for (const f of funcs) {
    const leaf = low.has(f.name) || cold.has(f.name);
    if (leaf && loopsByFunc.get(f.name)!.length) leafFunctions++;
    const depths = depthByFunc.get(f.name)!;
    const loopsOf = loopsByFunc.get(f.name)!;
    if (loopsOf.length && canCacheBudget(f.ref)) {
      const checks = loopsOf.map((loop, li) => {
        const tick = leaf || depths[li]! > 0;
        return { loop, tick, target: tick ? TICK_FN : YIELD_FN };
      });
      unrolledLoops += insertCachedChecks(m, f.ref, checks, recursive.has(f.name) ? (cold.has(f.name) ? { target: TICK_FN, tick: true } : { target: YIELD_FN, tick: false }) : undefined, budgetFree, unrollLoops).unrolled;
      if (recursive.has(f.name)) entryChecks++;
      cachedFunctions++;
      continue;
    }
    for (let li = 0; li < loopsOf.length; li++) {
      const loop = loopsOf[li]!;
      // Only outermost loops of non-leaves can unwind; nested loops tick. Asyncify then guards a nested loop as one
      // block instead of instrumenting its body, and a due checkpoint waits at most one outer iteration.
      const check = () => checkTo(leaf || depths[li]! > 0 ? TICK_FN : YIELD_FN);
      const body = X.Loop.getBody(loop);
      X.Loop.setBody(loop, m.block(null, [check(), body], binaryen.getExpressionType(body)));
    }
    if (recursive.has(f.name)) {
      entryChecks++;
      // before the calls that may recurse (see insertPreCallChecks), else at the entry
      const recurses = (call: number) => binaryen.getExpressionId(call) !== binaryen.CallId || recursive.has((binaryen.getExpressionInfo(call) as binaryen.CallInfo).target);
      const pre = cold.has(f.name) ? undefined : insertPreCallChecks(f.ref, recurses, () => checkTo(YIELD_FN), m);
      if (pre !== undefined) {
        preCallChecks += pre;
        continue;
      }
      const body = X.Function.getBody(f.ref);
      X.Function.setBody(f.ref, m.block(null, [checkTo(cold.has(f.name) ? TICK_FN : YIELD_FN), body], binaryen.getExpressionType(body)));
    }
  }
  for (const f of funcs) {
    if (!cold.has(f.name)) continue;
    const body = X.Function.getBody(f.ref);
    X.Function.setBody(f.ref, m.block(null, [m.call(NOUNWIND_FN, [], binaryen.none), body], binaryen.getExpressionType(body)));
  }
  for (const g of growsAll) {
    const delta = X.MemoryGrow.getDelta(g);
    X.MemoryGrow.setDelta(g, m.call(GROW_CHECK_FN, [delta], binaryen.i32));
  }
  let dirtyStores: number | undefined;
  let dirtyShared: number | undefined;
  if (opts.dirtyPages) {
    if (mem.initial >= 65536 || (mem.max !== undefined && mem.max <= mem.initial)) {
      throw new InstrumentError(`dirty-page tracking needs one memory page above the module's initial ${mem.initial} pages for its page map, but the memory cannot grow (maximum ${mem.max ?? 65536} pages): run it without dirty-page tracking (--track-dirty, --precopy)`);
    }
    progress('dirty', 0);
    const st = addDirtyTracking(m, funcs, mem.initial);
    dirtyStores = st.stores + st.bulk;
    dirtyShared = st.shared;
    globals.push(DIRTY_BASE_GLOBAL);
  }

  // ---- stack capture: gridvm's unwind (vm/unwind.ts) or Asyncify, limited to the suspending imports
  const level = opts.optimizeLevel ?? 1;
  const passArgs: Record<string, string> = { 'asyncify-imports': SUSPENDING_IMPORTS.join(',') };
  if (cold.size) passArgs['asyncify-removelist'] = [...cold].join(',');
  let bytes: Uint8Array;
  let unwind: (UnwindStats & { by: 'gridvm' }) | undefined;
  /** the size of a module left unoptimised (over the native tool's maxOptimizeBytes) */
  let unoptimized: number | undefined;
  let inParts: number | undefined;
  let unoptimizedWhy: string | undefined;
  const suspending = (mod: binaryen.Module): Set<string> => {
    const names = new Set<string>();
    for (let i = 0; i < mod.getNumFunctions(); i++) {
      const f = binaryen.getFunctionInfo(mod.getFunctionByIndex(i));
      if (f.module && SUSPENDING_IMPORTS.includes(`${f.module}.${f.base}`)) names.add(f.name);
    }
    return names;
  };
  if (opts.asyncify) {
    // Native: the tool flattens every function (both cores, no 4 GiB heap: in binaryen.js, one function at a time,
    // this was most of the time on large modules), binaryen.js adds gridvm's unwind to the flat module and the
    // tool optimises the result; or, for modules that unwind does not handle, the tool runs Asyncify.
    const runner = opts.asyncify;
    progress(opts.unwind === 'asyncify' ? `asyncify (${runner.id})` : `flatten (${runner.id})`, 0);
    const pre = m.emitBinary();
    // binaryen.js's heap is 4 GiB: the flat module below needs the room (yosys ran out of it)
    m.dispose();
    owned.disposed = true;
    let done: Uint8Array | undefined;
    let prepared: Uint8Array | undefined;
    if (opts.unwind !== 'asyncify') {
      try {
        prepared = runner.passes(pre, UNWIND_PREPARE.map((p) => `--${p}`));
      } catch {
        // the tool could not flatten this module: its Asyncify below (which fails clearly if it cannot either)
      }
    }
    if (prepared) {
      const flat = binaryen.readBinary(prepared);
      try {
        flat.setFeatures(ENGINE_FEATURES);
        progress('unwind', 0);
        unwind = ownUnwind(flat, suspending(flat), cold, (f) => progress('unwind', f), true);
        if (unwind) {
          progress(`optimize (${runner.id})`, 0);
          done = flat.emitBinary();
        }
      } finally {
        flat.dispose();
      }
    }
    if (done) {
      bytes = done;
      if (level > 0 && done.length <= (runner.maxOptimizeBytes ?? Infinity)) bytes = runner.passes(done, [`-O${level}`]);
      else if (level > 0) {
        try {
          if (!runner.optimizeInParts) throw new Error(`${runner.id} cannot optimise a module in parts`);
          // a part's peak is about that of a whole module of its size: a third of the limit leaves room
          const partBytes = Math.max(1, Math.floor((runner.maxOptimizeBytes ?? done.length) / 3));
          const r = runner.optimizeInParts(done, level, partBytes, (f) => progress(`optimize (${runner.id})`, f));
          bytes = r.bytes;
          inParts = r.parts;
        } catch (e) {
          // runs correctly unoptimised: the stats say so, and why
          unoptimized = done.length;
          unoptimizedWhy = e instanceof Error ? e.message : String(e);
        }
      }
    } else {
      progress(`asyncify (${runner.id})`, 0);
      try {
        bytes = runner.run(pre, passArgs, level);
      } catch (e) {
        // an older tool may not handle what binaryen.js does (wasm-opt 108's Asyncify aborts on exception
        // handling): binaryen.js's own Asyncify, which a module too big for it fails in turn
        if (!(e instanceof InstrumentError)) throw e;
        progress('asyncify', 0);
        try {
          bytes = asyncifyHere(pre, passArgs, level);
        } catch (e2) {
          throw new InstrumentError(`${e.message}; binaryen.js's Asyncify failed too: ${e2 instanceof Error ? e2.message : String(e2)}`, { cause: e2 });
        }
      }
    }
  } else {
    // the levels first: the unwind's preparation runs passes too (the same module whatever ran before)
    binaryen.clearPassArguments();
    binaryen.setOptimizeLevel(level);
    binaryen.setShrinkLevel(0);
    progress('unwind', 0);
    unwind = opts.unwind === 'asyncify' ? undefined : ownUnwind(m, suspending(m), cold, (f) => progress('unwind', f));
    if (!unwind) {
      progress('asyncify', 0);
      runAsyncify(m, passArgs);
    }
    if (level > 0) {
      progress('optimize', 0);
      m.optimize();
    }
    progress('emit', 0);
    bytes = m.emitBinary();
  }
  const dataPages = activeDataPages(bytes, mem.initial);
  progress('done', 1);
  return {
    bytes,
    info: {
      version: INSTRUMENT_VERSION,
      globals,
      memoryExport: memExport.name,
      memory: {
        initial: mem.initial,
        ...(mem.max !== undefined ? { maximum: mem.max } : {}),
        ...(mem.shared ? { shared: true } : {}),
        ...(importedFrom ? { importedFrom } : {}),
      },
      dataPages,
      entry,
      ...(opts.dirtyPages ? { dirtyPages: true } : {}),
      ...(reusable ? { reusable: true } : {}),
      stats: {
        functions: funcs.length,
        loops,
        entryChecks,
        preCallChecks,
        grows: growsAll.length,
        leafFunctions,
        cachedFunctions,
        budgetFreeFunctions: budgetFree.size,
        coldFunctions: cold.size,
        unrolledLoops,
        unrolledRecursion,
        tries,
        unknownExpressionKinds: unknownTotal(),
        renamedAsyncifyExports: renamed,
        unwind: unwind ?? { by: 'asyncify' },
        ...(unoptimized !== undefined ? { unoptimizedBytes: unoptimized, unoptimizedWhy } : {}),
        ...(inParts !== undefined ? { optimizedInParts: inParts } : {}),
        ...(dirtyStores !== undefined ? { dirtyStores, dirtySharedMarks: dirtyShared! } : {}),
      },
    },
  };
}

/** Binaryen's Asyncify and -O<level> in binaryen.js, on a module (as emitted right before the stack capture). */
function asyncifyHere(bytes: Uint8Array, passArgs: Record<string, string>, level: number): Uint8Array {
  const m = binaryen.readBinary(bytes);
  try {
    m.setFeatures(ENGINE_FEATURES);
    binaryen.setOptimizeLevel(level);
    binaryen.setShrinkLevel(0);
    runAsyncify(m, passArgs);
    if (level > 0) m.optimize();
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** binaryen.js's Asyncify pass on `m` with these pass arguments (cleared again afterwards, whatever happens). */
function runAsyncify(m: binaryen.Module, passArgs: Record<string, string>): void {
  binaryen.clearPassArguments();
  try {
    for (const [k, v] of Object.entries(passArgs)) binaryen.setPassArgument(k, v);
    m.runPasses(['asyncify']);
  } finally {
    binaryen.clearPassArguments();
  }
}

/** gridvm's own unwind (vm/unwind.ts), or undefined when the module needs Binaryen's Asyncify. */
function ownUnwind(m: binaryen.Module, suspending: ReadonlySet<string>, cold: ReadonlySet<string>, progress: (fraction: number) => void, prepared = false): (UnwindStats & { by: 'gridvm' }) | undefined {
  try {
    return { by: 'gridvm', ...addUnwind(m, suspending, cold, progress, prepared) };
  } catch (e) {
    if (e instanceof UnwindUnsupported) return undefined;
    throw e;
  }
}

/** Expressions of kinds the walker does not know, met so far in this process (walk.ts counts them). */
function unknownTotal(): number {
  return [...unknownKinds.values()].reduce((a, c) => a + c, 0);
}

/** Whether Binaryen's Asyncify lists can name this function (comma-separated, no escapes): plain names only. */
function asyncifyListName(name: string): boolean {
  return /^[A-Za-z0-9_$.~/:<>#@+\-[\]]+$/.test(name);
}

