import { ProcExit, SYSCALLS, Trap, type GridCall, type GridResult, type HostFn, type Process, type ProcessState } from '../kernel/index.js';
import { BUDGET_GLOBAL, DIRTY_BASE_GLOBAL, DIRTY_SPILL, MEMLIMIT_GLOBAL, TICK_FLOOR_GLOBAL } from './names.js';
import type { CompiledJob } from './compiled.js';
import { LinkError, SnapshotError } from './errors.js';
import type { PageEngine } from './pages.js';
import { PAGE_SIZE } from './pages.js';
import { guestStackFromError } from './trapstack.js';
import { createMemory, limitsCompatible, memoryLimits, memoryPages } from './mempool.js';
import { memoryImportLimits } from './wasmbin.js';
import type { InstancePool, PooledInstance } from './instances.js';

/** What the job does at a yield point: go on, checkpoint then go on, or checkpoint and stop. */
export type YieldAction = 'continue' | 'checkpoint' | 'suspend';

/** What a Machine needs to know about a compiled module, worked out once per module (not per instance). */
interface ModuleFacts {
  imports: WebAssembly.ModuleImportDescriptor[];
  functionImports: WebAssembly.ModuleImportDescriptor[];
  /** "ns.name" of every function import: only these are linked */
  used: ReadonlySet<string>;
  importsMemory: boolean;
  memoryLimits: ReturnType<typeof memoryImportLimits>;
  /** instrumented with dirty-page tracking: the memory has the map's page on top of the job's */
  dirty: boolean;
  /** an instance can run another job after a clean exit (InstrumentInfo.reusable, and the memory is imported) */
  reusable: boolean;
  /** gridvm's unwind asks to widen its window (gridvm.unwind_window): a re-entry backs up only what it covers */
  window: boolean;
  /**
   * A Machine of this module in this process has made all the default tier-up re-entries: V8 shares a module's
   * optimised code between its instances, so later Machines start in it and skip them (see MachineOptions.reenterAt).
   */
  warm: boolean;
  /**
   * Default tier-up re-entries pay: the module's stack capture is Asyncify's (one version of each function), or
   * gridvm's with clean copies of the loops that hold sites. gridvm's unwind without them (modules flattened by
   * native wasm-opt: yosys, CRuby) leaves a re-entered job running its main loops in the resume versions, every
   * statement guarded: yosys's first run took 7.6-10 s with the default re-entries against 4.0-4.9 s without.
   */
  reentryPays: boolean;
}
const moduleFacts = new WeakMap<WebAssembly.Module, ModuleFacts>();

function reentryPays(unwind: { by: string; cleanLoops?: number } | undefined): boolean {
  return !(unwind?.by === 'gridvm' && !unwind.cleanLoops);
}

function factsOf(job: CompiledJob): ModuleFacts {
  let f = moduleFacts.get(job.module);
  if (!f) {
    const imports = WebAssembly.Module.imports(job.module);
    const importsMemory = imports.some((i) => i.kind === 'memory' && i.module === 'gridvm' && i.name === 'memory');
    const dirty = WebAssembly.Module.exports(job.module).some((e) => e.name === DIRTY_BASE_GLOBAL);
    f = {
      imports,
      functionImports: imports.filter((i) => i.kind === 'function'),
      used: new Set(imports.filter((i) => i.kind === 'function').map((i) => `${i.module}.${i.name}`)),
      importsMemory,
      memoryLimits: memoryImportLimits(job.bytes),
      dirty,
      reusable: !!job.info.reusable && importsMemory && !dirty,
      window: imports.some((i) => i.kind === 'function' && i.module === 'gridvm' && i.name === 'unwind_window'),
      warm: false,
      reentryPays: reentryPays(job.info.stats?.unwind),
    };
    moduleFacts.set(job.module, f);
  }
  return f;
}

/** Control word values (Int32Array over a SharedArrayBuffer) that another thread may store to steer a job. */
export const Control = { NONE: 0, CHECKPOINT: 1, SUSPEND: 2, KILL: 3 } as const;

export interface MachineOptions {
  pages: PageEngine;
  /** monotonic milliseconds (for timeouts and checkpoint intervals) */
  now: () => number;
  /** stop with a 'fuel' trap once this many budget units are used */
  fuel?: number;
  /** stop with a 'timeout' trap after this much wall time (ms) spent running */
  timeoutMs?: number;
  /** the job's memory may not grow beyond this many bytes */
  maxMemoryBytes?: number;
  /** budget units between two yields (default 200k) */
  slice?: number;
  /** asked at every yield, after limits are checked */
  policy?: (m: Machine) => YieldAction;
  /**
   * Where a capture copies memory (the snapshot's `memory` is then a view of it): return a buffer of at least
   * `bytes` bytes, or undefined for the page engine's work area (the default; encodeSnapshot hashes it in place).
   * A runner that hands a suspended job's memory to another thread passes a buffer it can transfer, saving a copy.
   * With dirty-page tracking it is still called when a capture starts, but the capture goes into the Machine's own
   * copy of memory (updated page by page) and the buffer is not used.
   */
  captureBuffer?: (action: CaptureAction, bytes: number) => Uint8Array | undefined;
  /**
   * With a captureBuffer that is used: the copy into it goes in chunks of CAPTURE_CHUNK bytes from offset 0, and
   * this is called after each with the bytes copied so far (the last call with all of them), so another thread can
   * read the copied part while the rest is copied (a migration streaming memory to its target).
   */
  captureProgress?: (copied: number) => void;
  /**
   * Instead of a copy: somewhere the live memory is stored at the safe point (a file, for a suspension that leaves
   * through one), which then serves as the backup for Asyncify's window. Asked at the start of each capture of a
   * module without dirty-page tracking (after captureBuffer); return undefined for the usual copy. With a sink, the
   * sink receives all of memory before the unwind, gives the window's bytes back after it, and the snapshot's
   * `memory` is a view of the job's own memory (repaired, so the same bytes), valid until that memory is reused.
   * If `write` throws, the capture falls back to the copy (the sink is not used again).
   */
  captureSink?: (action: CaptureAction, bytes: number) => CaptureSink | undefined;
  /** receives every checkpoint; the snapshot's memory view is only valid during the call */
  onCheckpoint?: (s: Snapshot) => void;
  /** a control word another thread may set (see Control); reset to NONE when acted upon */
  control?: Int32Array;
  /**
   * Re-enter the job through an unwind/rewind at these elapsed times (ms) and then every `reenterEvery`:
   * V8 has no on-stack replacement for Wasm, so a long-running `main` stays in baseline code until re-entered.
   * Default: 50, 150 and 450 ms, until a Machine of the same module in this process has made all three; later ones
   * (a node running the module again) make none: V8 shares a module's optimised code between its instances, and a
   * re-entered job runs on in its resume versions' clean loop copies, which measured 6-7% slower than the fast
   * versions (nbody, malloc_churn, warm module). None for a module whose resume versions have no clean loop copies
   * (ModuleFacts.reentryPays).
   */
  reenterAt?: number[];
  reenterEvery?: number;
  /**
   * The memory to run the job in (linked as the module's `gridvm.memory` import), e.g. from a MemoryPool: at least
   * `job.info.memory.initial` pages, with the same maximum and sharedness as the module declares. For a fresh start
   * it must be all zero and exactly `initial` pages long; for restore() at most the snapshot's page count (restore
   * grows it; a memory cannot shrink, and the job would see the difference). Default: a new memory of `initial` pages.
   * With `instances`, a supplied memory goes to the pool with the instance made in it.
   */
  memory?: WebAssembly.Memory;
  /**
   * Reuse instances of reusable modules (InstrumentInfo.reusable): without `memory`, take an idle instance of the
   * module from the pool if it has one (its memory comes with it); otherwise instantiate one that release() can put
   * back. Ignored for other modules.
   */
  instances?: InstancePool;
  /**
   * Gather up to this many bytes of the job's stdout/stderr between safe points and hand them to the Process's
   * sinks as one write (Process.bufferOutput): at every yield and tick (so every ~`slice` units of work), when run()
   * returns, before a read of stdin or a sleep, and in the order written. Default 64 KiB; 0 writes each fd_write
   * through at once. wasi-libc line-buffers stdout, so without this a job printing lines makes a host write per line.
   */
  outputBuffer?: number;
}

/** Where a capture stores memory instead of copying it (MachineOptions.captureSink). */
export interface CaptureSink {
  /** store all of `memory` (the job's live memory at the safe point, before the unwind; valid during the call) */
  write(memory: Uint8Array): void;
  /** fill `dst` with the stored bytes [0, dst.length): the window the unwind borrowed at offset 0 */
  readBack(dst: Uint8Array): void;
}

/** The whole state of a job at a safe point (before encoding). */
export interface Snapshot {
  moduleHash: string;
  /** memory at the safe point. For a live capture this is a view of the page engine's area (valid until the
   * next capture), of MachineOptions.captureBuffer's, of the mirror (dirty-page tracking) or, with a capture sink,
   * of the job's own memory (valid until it runs again or is reused); for a decoded snapshot it is owned. */
  memory: Uint8Array;
  pages: number;
  globals: GlobalValue[];
  asyncify: Uint8Array;
  kernel: ProcessState;
  fuelUsed: number;
  stdoutBytes: number;
  stderrBytes: number;
  /** sequence number of this checkpoint within the run */
  seq: number;
  /**
   * Set when the snapshot was taken at a blocking grid call (spawn, fork, wait): the job continues only after
   * `restore(s)` and `resolveBlocked(answer)`.
   */
  blocked?: GridCall;
  /**
   * Set by a Machine running a module with dirty-page tracking: which pages changed at which capture of this
   * Machine, so that encodeSnapshot can make a delta against an earlier capture of the same Machine without
   * scanning memory. Valid until the next capture, like `memory`.
   */
  tracking?: DirtyTracking;
}

/** Page-change bookkeeping of one Machine with dirty-page tracking (see Snapshot.tracking). */
export interface DirtyTracking {
  /** unique per Machine: captures of different Machines cannot be compared */
  epoch: string;
  /** this capture's number within the Machine (from 1) */
  capture: number;
  /** for each page, the number of the capture at which it last changed */
  changedAt: Uint32Array;
}

let epochCounter = 0;
const epochPrefix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

export type GlobalValue = number | bigint;

export type RunOutcome =
  | { kind: 'exit'; code: number }
  | { kind: 'trap'; trap: Trap }
  | { kind: 'suspended'; snapshot: Snapshot }
  /** the job made a blocking grid call: answer it (resolveBlocked) and run again, here or from the snapshot elsewhere */
  | { kind: 'blocked'; snapshot: Snapshot; call: GridCall };

/** What a capture is for: the policy's actions, or a blocking grid call. */
export type CaptureAction = YieldAction | 'block';

const enum State {
  Idle,
  Running,
  Unwinding,
  Rewinding,
}

interface AsyncifyExports {
  asyncify_start_unwind(p: number): void;
  asyncify_stop_unwind(): void;
  asyncify_start_rewind(p: number): void;
  asyncify_stop_rewind(): void;
}

const DEFAULT_SLICE = 200_000;
/** Tier-up re-entries (ms of running) for the first Machines of a module in a process (MachineOptions.reenterAt). */
const DEFAULT_REENTER_AT: readonly number[] = [50, 150, 450];
const NO_REENTRIES: readonly number[] = [];
/** The unwind window a tier-up re-entry backs up first (widened on demand: Machine.onUnwindWindow). */
const INITIAL_WINDOW = 64 * 1024;
/** MachineOptions.captureProgress: bytes per chunk of the capture copy (64 pages) */
export const CAPTURE_CHUNK = 4 * 1024 * 1024;

/**
 * One job instance: a Wasm instance of an instrumented module, linked to its kernel process. Runs synchronously
 * until the job exits, traps, or is suspended to a snapshot.
 */
export class Machine {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  private readonly ax: AsyncifyExports;
  private readonly entry: () => void;
  private readonly budget: WebAssembly.Global;
  private readonly tickFloor: WebAssembly.Global;
  private readonly globals: WebAssembly.Global[];
  private state = State.Idle;
  private inRun = false;
  private action: CaptureAction = 'continue';
  private pendingAction: YieldAction | 'reenter' | undefined;
  private fuelBase = 0;
  private armed = 0;
  private readonly slice: number;
  private runStart = 0;
  private elapsedBefore = 0;
  private nextReenter = Infinity;
  private reenterIdx = 0;
  private pending: { blob: Uint8Array; backup: Uint8Array } | undefined;
  private capture: Snapshot | undefined;
  /** the capture in progress went to a sink, which repairs the window (undefined: from the snapshot's copy) */
  private sink: CaptureSink | undefined;
  private seq = 0;
  private started = false;
  /** the limits the module imports gridvm.memory with (undefined: it defines its own memory) */
  private readonly memoryDecl: { initial: number; maximum?: number; shared?: boolean } | undefined;
  private restored = false;
  /** the grid call the job is blocked in (restored from a blocked snapshot, or just made), until answered */
  private awaiting: GridCall | undefined;
  private answer: GridResult | undefined;
  /** the rewind stopped at a blocking import, which now runs again and must reach onBlock */
  private resuming = false;
  /** the job entered a function that never returns (gridvm.nounwind): it is exiting and is not unwound any more */
  private noUnwind = false;
  /** dirty-page tracking (the module has DIRTY_BASE_GLOBAL): the map's address, and a copy of memory as of the
   * last capture (its map page zeroed), updated page by page */
  private readonly dirtyBase: WebAssembly.Global | undefined;
  private mirror: Uint8Array | undefined;
  private mirrorPages = 0;
  private changedAt = new Uint32Array(0);
  private captureNo = 0;
  private readonly epoch: string = `${epochPrefix}-${++epochCounter}`;
  /** the pooled instance this Machine runs in (MachineOptions.instances), until release() */
  private pooled: PooledInstance | undefined;
  /** the last run() ended in an exit with the instance in its normal state (it may be reused) */
  private cleanExit = false;
  private released = false;
  private readonly facts: ModuleFacts;
  /** the module widens its unwind window on demand (ModuleFacts.window) */
  private readonly smallWindow: boolean = false;
  /**
   * A tier-up re-entry's backup of the bytes its unwind window covers ([0, window end)), grown as the window is
   * widened; undefined when the capture copied all of memory (checkpoints, suspensions, Asyncify modules).
   */
  private windowBackup: Uint8Array | undefined;
  private windowBytes = 0;
  checkpoints = 0;
  /** tier-up re-entries made, and how often their unwind window was widened (see onUnwindWindow) */
  reentries = 0;
  windowWidenings = 0;
  memoryPeak = 0;
  memoryLimitHit: { requestedPages: number } | undefined;

  constructor(readonly job: CompiledJob, readonly proc: Process, readonly opts: MachineOptions) {
    const facts = factsOf(job);
    const pool = facts.reusable ? opts.instances : undefined;
    const moduleImports = facts.imports;
    const imports = proc.imports({
      yield: () => this.onYield(),
      tick: () => this.onTick(),
      memory_limit: (delta: number) => this.onMemoryLimit(delta),
      nounwind: () => {
        this.noUnwind = true;
      },
      block: (call: GridCall) => this.onBlock(call),
      unwind_window: (end: number) => this.onUnwindWindow(end),
    }, facts.used);
    this.smallWindow = facts.window;
    this.facts = facts;
    const ns = imports as Record<string, Record<string, HostFn>>;
    for (const s of SYSCALLS) if (s.blocking && ns[s.ns]?.[s.name]) ns[s.ns]![s.name] = this.blockingImport(ns[s.ns]![s.name]!);
    // The job's memory is imported as gridvm.memory (instrumentation version 7+): ours, or the one supplied. It is
    // added here, not in the syscall table, which holds functions only.
    const importsMemory = facts.importsMemory;
    let memory: WebAssembly.Memory | undefined;
    if (importsMemory) {
      // the module's own declaration is the truth (an InstrumentInfo may be stale or hand-made); the info's copy is
      // for hosts that size memories before they have the bytes
      const lim = facts.memoryLimits ?? job.info.memory;
      if (!lim) throw new Error('the module imports gridvm.memory, but neither it nor its InstrumentInfo says with which limits');
      this.memoryDecl = lim;
      this.pooled = pool && !opts.memory ? pool.take(job.module) : undefined;
      memory = this.pooled?.memory ?? opts.memory ?? createMemory(lim);
      if (opts.memory) {
        const have = memoryLimits(opts.memory);
        if (memoryPages(opts.memory) < lim.initial) throw new RangeError(`MachineOptions.memory has ${memoryPages(opts.memory)} pages; the module needs at least ${lim.initial}`);
        if (have && !limitsCompatible(have, lim)) {
          throw new RangeError(`MachineOptions.memory was created with maximum ${have.maximum ?? 'none'}${have.shared ? ', shared' : ''}; the module declares maximum ${lim.maximum ?? 'none'}${lim.shared ? ', shared' : ''}`);
        }
      }
      // dirty-page tracking: a fresh memory gets the map's page now, before instantiation (a start function's stores
      // mark it); a restore's memory is grown to the snapshot's pages, which include it
      if (facts.dirty && memoryPages(memory) === lim.initial) {
        if (lim.maximum !== undefined && lim.maximum <= lim.initial) throw new RangeError(`the module's memory cannot grow (maximum ${lim.maximum} pages = initial), so it has no room for the dirty-page map`);
        memory.grow(1);
      }
      (imports.gridvm ??= {}).memory = memory;
    } else if (opts.memory) {
      throw new Error('MachineOptions.memory: this module defines its own memory (it was instrumented by an older gridvm), so a memory cannot be supplied');
    }
    const missing: string[] = [];
    for (const imp of moduleImports) {
      if (imports[imp.module]?.[imp.name] === undefined) missing.push(`${imp.module}.${imp.name}`);
    }
    if (missing.length) throw new LinkError(missing);
    if (this.pooled) pool!.bind(this.pooled, imports);
    else if (pool) this.pooled = pool.instantiate(job.module, facts.functionImports, imports, memory!, job.info.dataPages ?? []);
    this.instance = this.pooled?.instance ?? new WebAssembly.Instance(job.module, imports);
    const ex = this.instance.exports;
    this.memory = memory ?? (ex[job.info.memoryExport] as WebAssembly.Memory);
    this.entry = ex[job.info.entry] as () => void;
    this.budget = ex[BUDGET_GLOBAL] as WebAssembly.Global;
    this.tickFloor = ex[TICK_FLOOR_GLOBAL] as WebAssembly.Global;
    this.ax = ex as unknown as AsyncifyExports;
    this.globals = job.info.globals.map((n) => ex[n] as WebAssembly.Global);
    this.slice = opts.slice ?? DEFAULT_SLICE;
    this.dirtyBase = ex[DIRTY_BASE_GLOBAL] as WebAssembly.Global | undefined;
    const limitPages = Math.min(65536, Math.floor((opts.maxMemoryBytes ?? 2 ** 32) / PAGE_SIZE));
    // with dirty-page tracking the map's page comes on top of what the job may use
    (ex[MEMLIMIT_GLOBAL] as WebAssembly.Global).value = Math.min(65536, limitPages + (this.dirtyBase ? 1 : 0));
    if (this.memory.buffer.byteLength > (limitPages + (this.dirtyBase ? 1 : 0)) * PAGE_SIZE) {
      throw new Trap('memory-limit', `the job's initial memory (${mib(this.memory.buffer.byteLength)}) is larger than the memory limit (${mib(limitPages * PAGE_SIZE)})`);
    }
    proc.setMemory(this.memory);
    proc.bufferOutput(opts.outputBuffer ?? 64 * 1024);
    if (this.dirtyBase) proc.memory.onWrite = (ptr, len) => this.markHostWrite(ptr, len);
    this.memoryPeak = this.memory.buffer.byteLength;
    this.armBudget(0);
  }

  /** Budget units used so far: the job's deterministic CPU measure. */
  get fuelUsed(): number {
    // after release() the budget global belongs to the pool (reset, then another job's): the count was kept
    if (this.released) return this.fuelBase;
    return this.fuelBase + (this.armed - (this.budget.value as number));
  }

  /** Wall time spent running this job, ms (across restores only if the caller carries it in). */
  get elapsedMs(): number {
    return this.elapsedBefore + (this.inRun ? this.opts.now() - this.runStart : 0);
  }

  /** Prepare to continue from a snapshot: copy memory and globals now, rewind when run() is called. */
  restore(s: Snapshot, memoryImage?: (dst: Uint8Array) => void): void {
    if (s.moduleHash !== this.job.hash) {
      throw new SnapshotError(`the checkpoint is for module ${s.moduleHash.slice(0, 16)}…, not for this one (${this.job.hash.slice(0, 16)}…)`);
    }
    const have = this.memory.buffer.byteLength / PAGE_SIZE;
    if (have > s.pages) {
      throw new SnapshotError(`the job's memory has ${have} pages, more than the checkpoint's ${s.pages}: a memory cannot shrink, and the job would see the difference (take one of at most ${s.pages} pages)`);
    }
    if (s.pages > have) this.memory.grow(s.pages - have);
    const dst = new Uint8Array(this.memory.buffer);
    if (memoryImage) memoryImage(dst);
    else dst.set(s.memory.subarray(0, s.pages * PAGE_SIZE));
    if (s.globals.length !== this.globals.length) throw new SnapshotError(`the checkpoint has ${s.globals.length} globals, the module ${this.globals.length}`);
    this.globals.forEach((g, i) => (g.value = s.globals[i]));
    this.fuelBase = s.fuelUsed;
    this.armed = 0;
    this.budget.value = 0;
    this.seq = s.seq;
    this.memoryPeak = Math.max(this.memoryPeak, this.memory.buffer.byteLength);
    this.pending = { blob: s.asyncify, backup: new Uint8Array(0) };
    this.awaiting = s.blocked;
    this.answer = undefined;
    this.restored = true;
    this.mirrorPages = 0;
  }

  /** The grid call the job is blocked in (after a 'blocked' outcome or restoring a blocked snapshot), if any. */
  get blockedCall(): GridCall | undefined {
    return this.awaiting;
  }

  /**
   * Answer the grid call the job is blocked in; the next run() returns it to the job (for `wait`, `status` is written
   * at the job's status pointer). Needed after restoring a blocked snapshot, or after a 'blocked' outcome (then
   * restoring is optional on this same Machine).
   */
  resolveBlocked(result: GridResult): void {
    if (!this.awaiting) throw new Error('resolveBlocked: the job is not blocked in a grid call (restore a blocked snapshot first)');
    if (typeof result?.value !== 'bigint') throw new TypeError('resolveBlocked: result.value must be a bigint (a GPID or a negative errno)');
    this.answer = { value: result.value, ...(result.status !== undefined ? { status: result.status } : {}) };
  }

  /** Run until exit, trap, suspension or a blocking grid call. */
  run(): RunOutcome {
    if (this.released) throw new Error('run: this Machine released its instance (release())');
    this.cleanExit = false;
    if (this.awaiting && !this.answer) {
      throw new Error(`the job is blocked in a grid ${this.awaiting.op} call: call resolveBlocked(result) before run()`);
    }
    const decl = this.memoryDecl;
    const want = decl ? decl.initial + (this.dirtyBase ? 1 : 0) : 0;
    if (!this.started && !this.restored && this.opts.memory && decl && memoryPages(this.memory) !== want) {
      throw new RangeError(`a fresh start needs a memory of exactly ${decl.initial} pages (the module's initial size); MachineOptions.memory has ${memoryPages(this.memory) - (this.dirtyBase ? 1 : 0)}`);
    }
    this.started = true;
    this.runStart = this.opts.now();
    this.inRun = true;
    const at = this.reenterPoints();
    this.nextReenter = at.length ? at[0]! : (this.opts.reenterEvery ?? Infinity);
    this.reenterIdx = 0;
    try {
      for (;;) {
        if (this.pending) this.beginRewind(this.pending);
        else this.state = State.Running;
        try {
          this.entry();
        } catch (e) {
          return this.failure(e);
        }
        if (this.state !== State.Unwinding) {
          this.cleanExit = this.state === State.Running;
          return { kind: 'exit', code: this.proc.exitCode ?? 0 };
        }
        const snap = this.finishUnwind();
        if (this.action === 'suspend') return { kind: 'suspended', snapshot: snap };
        if (this.action === 'block') {
          // this instance can go on too, once answered (restore is then optional)
          this.awaiting = snap.blocked;
          this.answer = undefined;
          this.action = 'continue';
          this.pending = { blob: snap.asyncify, backup: new Uint8Array(0) };
          return { kind: 'blocked', snapshot: snap, call: snap.blocked! };
        }
        if (this.action === 'checkpoint') {
          this.checkpoints++;
          this.opts.onCheckpoint?.(snap);
        }
        this.action = 'continue';
        this.pending = { blob: snap.asyncify, backup: new Uint8Array(0) };
      }
    } finally {
      this.proc.flushOutput();
      // memory grows between safe points too (a job that never reaches one, a memory bomb): count it at the end
      this.memoryPeak = Math.max(this.memoryPeak, this.memory.buffer.byteLength);
      this.elapsedBefore += this.opts.now() - this.runStart;
      this.inRun = false;
      this.state = State.Idle;
    }
  }

  /**
   * The job is over and nothing will read its memory again: with MachineOptions.instances, put the instance back in
   * the pool (memory and globals reset as instantiation left them) if the job exited cleanly, its memory is still
   * the initial size, and the pool has room. Returns true if it went back: its memory then belongs to the pool
   * (do not give it to a MemoryPool). Returns false otherwise, and the memory stays the caller's. Call it once; the
   * Machine cannot run afterwards either way.
   */
  release(): boolean {
    if (this.released) return false;
    this.fuelBase = this.fuelUsed;
    this.armed = 0;
    this.released = true;
    const p = this.pooled;
    this.pooled = undefined;
    if (!p || !this.cleanExit || this.inRun) return false;
    return this.opts.instances!.give(p);
  }

  private failure(e: unknown): RunOutcome {
    if (e instanceof ProcExit) {
      this.cleanExit = this.state === State.Running;
      return { kind: 'exit', code: e.code };
    }
    if (e instanceof Trap) {
      if (!e.guestStack.length) e.guestStack = guestStackFromError(e);
      return { kind: 'trap', trap: e };
    }
    if (e instanceof WebAssembly.RuntimeError) {
      const stack = guestStackFromError(e);
      const t = new Trap('trap', `wasm trap: ${(e as Error).message}${stack.length ? ` in ${stack[0]}` : ''}`, { cause: e });
      t.guestStack = stack;
      return { kind: 'trap', trap: t };
    }
    if (e instanceof RangeError && /call stack/i.test((e as Error).message)) {
      const t = new Trap('stack-overflow', 'the job overflowed the host call stack (recursion too deep)', { cause: e });
      t.guestStack = guestStackFromError(e);
      return { kind: 'trap', trap: t };
    }
    throw e;
  }

  private armBudget(units: number): void {
    this.fuelBase = this.fuelUsed;
    this.armed = units;
    this.budget.value = units;
    this.tickFloor.value = 0;
  }

  /**
   * An unwind is due but the budget ran out in a function that cannot unwind: arm the budget at 0 so the next
   * unwindable check (`budget < 0`) yields at once, and lower the floor of ticking checks (`budget < floor`) so
   * leaves and nested loops run on at full speed, ticking again only after `slice` more units (for limits).
   */
  private armPending(): void {
    this.armBudget(0);
    this.tickFloor.value = -Math.max(1, Math.min(this.slice, this.nextSlice()));
  }

  private onMemoryLimit(delta: number): void {
    const cur = this.memory.buffer.byteLength;
    const want = cur + delta * PAGE_SIZE;
    this.memoryLimitHit = { requestedPages: delta };
    throw new Trap(
      'memory-limit',
      `memory limit exceeded: the job tried to grow its memory from ${mib(cur)} to ${mib(want)}, above the limit of ${mib(this.opts.maxMemoryBytes ?? 2 ** 32)} (--max-memory)`,
    );
  }

  /** Fuel, time and kill: checked whenever the budget runs out, in leaf functions too. Throws a Trap. */
  private checkLimits(): void {
    const bytes = this.memory.buffer.byteLength;
    if (bytes > this.memoryPeak) this.memoryPeak = bytes;
    if (this.opts.fuel !== undefined && this.fuelUsed >= this.opts.fuel) {
      throw new Trap('fuel', `fuel exhausted: the job used its ${this.opts.fuel} units of fuel (--fuel)`);
    }
    if (this.opts.timeoutMs !== undefined && this.elapsedMs > this.opts.timeoutMs) {
      throw new Trap('timeout', `timeout: the job ran for more than ${this.opts.timeoutMs} ms (--timeout)`);
    }
  }

  /** What to do at this budget exhaustion: the policy, the control word, and tier-up re-entry. */
  private decide(): YieldAction | 'reenter' {
    let action: YieldAction = this.opts.policy ? this.opts.policy(this) : 'continue';
    const c = this.opts.control;
    if (c) {
      const v = Atomics.exchange(c, 0, Control.NONE);
      if (v === Control.KILL) throw new Trap('killed', 'the job was killed');
      if (v === Control.SUSPEND) action = 'suspend';
      else if (v === Control.CHECKPOINT && action === 'continue') action = 'checkpoint';
    }
    if (action === 'continue' && this.elapsedMs - this.elapsedBefore >= this.nextReenter) {
      this.scheduleNextReenter();
      return 'reenter';
    }
    return action;
  }

  /**
   * `gridvm.tick`: the budget ran out in a leaf function (one that calls no other function of the job). Leaves
   * are not Asyncify-instrumented, so they cannot unwind; limits are enforced here, and an unwind that is due is
   * left pending until the next unwindable check reaches `gridvm.yield` (see armPending).
   */
  private onTick(): void {
    this.proc.flushOutput();
    this.checkLimits();
    if (this.pendingAction === undefined) {
      const a = this.decide();
      if (a === 'continue') {
        this.armBudget(this.nextSlice());
        return;
      }
      this.pendingAction = a;
    }
    this.armPending();
  }

  /** `gridvm.yield`: the budget ran out in a function that can unwind (and once more at the end of a rewind). */
  private onYield(): void {
    if (this.state === State.Rewinding) {
      if (this.awaiting) throw new SnapshotError(`the snapshot says the job is blocked in a grid ${this.awaiting.op} call, but its call stack ends at a yield`);
      this.finishRewind();
      return;
    }
    // before a checkpoint captures stdoutBytes/stderrBytes, the sinks have them all
    this.proc.flushOutput();
    this.checkLimits();
    if (this.noUnwind) {
      // on its way out (exit, abort, panic) through functions that cannot unwind: limits and kill only
      this.decide();
      this.armBudget(this.nextSlice());
      return;
    }
    const a = this.pendingAction ?? this.decide();
    this.pendingAction = undefined;
    if (a === 'continue') {
      this.armBudget(this.nextSlice());
      return;
    }
    this.beginUnwind(a === 'reenter' ? 'continue' : a);
  }

  /** The rewind reached its end (the import it was captured in): stop it and give the window's bytes back. */
  private finishRewind(): void {
    this.ax.asyncify_stop_rewind();
    const p = this.pending!;
    new Uint8Array(this.memory.buffer).set(p.backup, 0);
    this.pending = undefined;
    this.state = State.Running;
    this.armBudget(this.nextSlice());
  }

  /**
   * Wrap a blocking grid import (spawn/fork/wait). When a rewind reaches it, stop the rewind and restore the window
   * first, so the ABI decodes its arguments from the job's real memory and its hook (onBlock) returns the answer.
   */
  private blockingImport(f: HostFn): HostFn {
    return (...args: unknown[]) => {
      if (this.noUnwind && this.state !== State.Rewinding) {
        throw new Trap('trap', 'the job made a blocking grid call (spawn/fork/wait) while exiting (in a function that never returns): not supported');
      }
      if (this.state !== State.Rewinding) return f(...args);
      const call = this.awaiting;
      if (!call) throw new SnapshotError('the checkpoint\'s call stack ends in a blocking grid call, but the snapshot does not say it is blocked');
      this.finishRewind();
      this.resuming = true;
      try {
        const v = f(...args);
        if (this.resuming) throw new Trap('trap', `the job was resumed in its blocked grid ${call.op} call, but the call failed before reaching the host (grid identity missing?)`);
        return v;
      } finally {
        this.resuming = false;
      }
    };
  }

  /**
   * The `block` hook of the grid calls: the first time, capture a snapshot (as a suspension) and unwind; when resumed
   * at the call (see blockingImport), return the answer given to resolveBlocked.
   */
  private onBlock(call: GridCall): GridResult | undefined {
    if (this.resuming) {
      this.resuming = false;
      const want = this.awaiting!;
      const r = this.answer!;
      this.awaiting = undefined;
      this.answer = undefined;
      if (want.op !== call.op) throw new Trap('trap', `the job was resumed in a grid ${call.op} call, but the snapshot was blocked in ${want.op}`);
      return r;
    }
    if (this.state !== State.Running) throw new Trap('trap', `grid ${call.op} called while the VM is not running the job`);
    this.beginUnwind('block', call);
    return undefined;
  }

  private scheduleNextReenter(): void {
    const at = this.reenterPoints();
    this.reenterIdx++;
    this.nextReenter = this.reenterIdx < at.length ? at[this.reenterIdx]! : this.nextReenter + (this.opts.reenterEvery ?? Infinity);
    // the last default re-entry is due: from the next Machine of this module on, its code is optimised from the start
    if (this.opts.reenterAt === undefined && this.reenterIdx >= at.length) this.facts.warm = true;
  }

  /** The re-entry times of this run: MachineOptions.reenterAt, else the defaults unless the module is warm. */
  private reenterPoints(): readonly number[] {
    return this.opts.reenterAt ?? (this.facts.warm || !this.facts.reentryPays ? NO_REENTRIES : DEFAULT_REENTER_AT);
  }

  private nextSlice(): number {
    let n = this.slice;
    if (this.opts.fuel !== undefined) n = Math.max(0, Math.min(n, this.opts.fuel - this.fuelUsed - 1));
    return n;
  }

  /**
   * Start capturing: copy all of memory first (the checkpoint needs it, and it lets us repair whatever the unwind
   * writes) — or store it in the capture sink, which then gives the window's bytes back — then borrow the whole
   * memory from offset 0 as Asyncify's data window.
   */
  private beginUnwind(action: CaptureAction, blocked?: GridCall): void {
    const mem = new Uint8Array(this.memory.buffer);
    let area: Uint8Array;
    this.sink = undefined;
    this.windowBackup = undefined;
    if (action === 'continue') this.reentries++;
    /** where the unwind window ends: all of memory, unless only the window is backed up */
    let windowEnd = mem.length;
    if (action === 'continue' && this.smallWindow && !this.dirtyBase) {
      // a tier-up re-entry keeps nothing of memory: back up only the window the frames are written to, widened as
      // they need (onUnwindWindow). A full copy here cost a fresh process ~2.8 ms per MiB of job memory (the page
      // engine's area faulted in page by page), 180 ms for 64 MiB at the first re-entry.
      windowEnd = Math.min(mem.length, INITIAL_WINDOW);
      this.windowBackup = mem.slice(0, windowEnd);
      this.windowBytes = windowEnd;
      area = new Uint8Array(0);
    } else if (this.dirtyBase) {
      // told, for its timing, but the capture goes into the Machine's own copy
      this.opts.captureBuffer?.(action, mem.length);
      area = this.captureDirty(mem);
    } else {
      const own = this.opts.captureBuffer?.(action, mem.length);
      const sink = this.opts.captureSink?.(action, mem.length);
      if (sink) {
        try {
          sink.write(mem);
          this.sink = sink;
        } catch {
          // could not store it there (e.g. no space): copy as usual
        }
      }
      // with a sink, the job's memory is the snapshot's once the window is repaired from the sink
      if (this.sink) area = mem;
      else if (own && own.length >= mem.length && this.opts.captureProgress) {
        area = own;
        const progress = this.opts.captureProgress;
        for (let at = 0; at < mem.length; ) {
          const end = Math.min(mem.length, at + CAPTURE_CHUNK);
          area.set(mem.subarray(at, end), at);
          at = end;
          progress(at);
        }
      } else {
        area = own && own.length >= mem.length ? own : this.opts.pages.area(mem.length);
        area.set(mem);
      }
    }
    const fuelUsed = this.fuelUsed;
    this.capture = {
      moduleHash: this.job.hash,
      memory: area.subarray(0, mem.length),
      pages: mem.length / PAGE_SIZE,
      globals: this.globals.map((g) => g.value as GlobalValue),
      asyncify: new Uint8Array(0),
      // a tier-up re-entry ('continue') discards the capture: only a checkpoint needs the kernel's state
      kernel: action === 'continue' ? (null as unknown as ProcessState) : this.proc.saveState(),
      fuelUsed,
      stdoutBytes: this.proc.stdoutBytes,
      stderrBytes: this.proc.stderrBytes,
      seq: action === 'continue' ? this.seq : ++this.seq,
      ...(blocked ? { blocked } : {}),
      ...(this.dirtyBase ? { tracking: { epoch: this.epoch, capture: this.captureNo, changedAt: this.changedAt.subarray(0, mem.length / PAGE_SIZE) } } : {}),
    };
    const dv = new DataView(this.memory.buffer);
    dv.setUint32(0, 8, true);
    dv.setUint32(4, windowEnd, true);
    this.action = action;
    this.state = State.Unwinding;
    this.ax.asyncify_start_unwind(0);
  }

  /**
   * Dirty-page tracking: bring the mirror up to date with the pages the map says were written since the last
   * capture (all of memory the first time, or after a restore), clear the map, and return the mirror.
   */
  private captureDirty(mem: Uint8Array): Uint8Array {
    const bytes = mem.length;
    const n = bytes / PAGE_SIZE;
    let mirror = this.mirror;
    if (mirror && mirror.buffer.byteLength === 0) mirror = undefined; // handed to another thread
    if (!mirror) this.mirrorPages = 0;
    if (!mirror || mirror.length < bytes) {
      const grown = new Uint8Array(bytes);
      if (mirror && this.mirrorPages) grown.set(mirror.subarray(0, this.mirrorPages * PAGE_SIZE));
      mirror = grown;
    }
    this.mirror = mirror;
    if (this.changedAt.length < n) {
      const c = new Uint32Array(n);
      c.set(this.changedAt);
      this.changedAt = c;
    }
    const changed = this.changedAt;
    const cap = ++this.captureNo;
    const base = (this.dirtyBase!.value as number) >>> 0;
    const map = mem.subarray(base, base + Math.min(n, PAGE_SIZE));
    const known = this.mirrorPages;
    if (!known) {
      mirror.set(mem);
      changed.fill(cap, 0, n);
    } else {
      for (let p = 0; p < n; p++) {
        const o = p * PAGE_SIZE;
        if (p >= known || map[p]) {
          mirror.set(mem.subarray(o, o + PAGE_SIZE), o);
          changed[p] = cap;
        } else if (p > 0 && map[p - 1] && o !== base && !sameBytes(mem, mirror, o, DIRTY_SPILL)) {
          // a mark covers the start of the next page too (stores at small offsets from a pointer on the page before)
          mirror.set(mem.subarray(o, o + PAGE_SIZE), o);
          changed[p] = cap;
        }
      }
    }
    // the map's own page is not job state: zero in every snapshot
    mirror.fill(0, base, base + PAGE_SIZE);
    map.fill(0);
    this.mirrorPages = n;
    return mirror.subarray(0, bytes);
  }

  /** A write by the kernel (fd_read, random_get, ...) into the job's memory: mark its pages in the dirty map. */
  private markHostWrite(ptr: number, len: number): void {
    if (len <= 0) return;
    const mem = new Uint8Array(this.memory.buffer);
    const base = (this.dirtyBase!.value as number) >>> 0;
    const last = ((ptr >>> 0) + len - 1) >>> 16;
    for (let p = (ptr >>> 0) >>> 16; p <= last; p++) mem[base + p] = 1;
  }

  private finishUnwind(): Snapshot {
    const dv = new DataView(this.memory.buffer);
    const current = dv.getUint32(0, true);
    if (current > dv.getUint32(4, true)) dv.setUint32(4, current, true);
    this.ax.asyncify_stop_unwind();
    const snap = this.capture!;
    this.capture = undefined;
    const mem = new Uint8Array(this.memory.buffer);
    snap.asyncify = mem.slice(8, current);
    const sink = this.sink;
    this.sink = undefined;
    const backup = this.windowBackup;
    this.windowBackup = undefined;
    if (backup) mem.set(backup.subarray(0, current), 0);
    else if (sink) sink.readBack(mem.subarray(0, current));
    else mem.set(snap.memory.subarray(0, current), 0);
    this.state = State.Idle;
    return snap;
  }

  /**
   * `gridvm.unwind_window`: a frame being saved would end at `end`, past the window. With a re-entry's backup, widen
   * the window (at least doubling it) after backing up the bytes it newly covers; otherwise (the whole of memory
   * was the window) the frames do not fit.
   */
  private onUnwindWindow(end: number): void {
    const mem = new Uint8Array(this.memory.buffer);
    const backup = this.windowBackup;
    if (this.state !== State.Unwinding || !backup || end > mem.length) {
      throw new Trap('trap', `the job's call stack does not fit in its memory for a capture (${end} bytes of frames, ${mem.length} bytes of memory)`);
    }
    const from = this.windowBytes;
    const to = Math.min(mem.length, Math.max(end, from * 2));
    let b = backup;
    if (b.length < to) {
      b = new Uint8Array(Math.min(mem.length, Math.max(to, b.length * 2)));
      b.set(backup.subarray(0, from));
      this.windowBackup = b;
    }
    b.set(mem.subarray(from, to), from);
    this.windowBytes = to;
    this.windowWidenings++;
    new DataView(this.memory.buffer).setUint32(4, to, true);
  }

  /** Write the call-stack blob into a window at offset 0 (saving its bytes) and start the rewind. */
  private beginRewind(p: { blob: Uint8Array; backup: Uint8Array }): void {
    const mem = new Uint8Array(this.memory.buffer);
    const end = 8 + p.blob.length;
    if (end > mem.length) throw new SnapshotError('the checkpoint call stack does not fit in the job memory');
    p.backup = mem.slice(0, end);
    mem.set(p.blob, 8);
    const dv = new DataView(this.memory.buffer);
    dv.setUint32(0, end, true);
    dv.setUint32(4, end, true);
    this.state = State.Rewinding;
    this.ax.asyncify_start_rewind(0);
  }
}

/** Whether a and b hold the same `len` bytes at offset o (both views start at a 4-byte aligned address). */
function sameBytes(a: Uint8Array, b: Uint8Array, o: number, len: number): boolean {
  const x = new Int32Array(a.buffer, a.byteOffset + o, len >> 2);
  const y = new Int32Array(b.buffer, b.byteOffset + o, len >> 2);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function mib(bytes: number): string {
  const m = bytes / (1024 * 1024);
  return `${Number.isInteger(m) ? m : m.toFixed(1)} MiB`;
}
