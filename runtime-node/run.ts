import { readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { Process, Trap, type MountSpec, type ProcessOptions } from '../kernel/index.js';
import {
  applyChain,
  concatChunks,
  compileInstrumented,
  createPageEngine,
  Machine,
  MemoryPool,
  InstancePool,
  snapshotFromChain,
  type CompiledJob,
  type InstrumentOptions,
  type MachineOptions,
  type PageEngine,
  type RunOutcome,
  type Snapshot,
} from '../vm/runtime.js';
import { prepareJob } from '../vm/job.js';
import { DiskModuleCache } from './cache.js';
import { CheckpointWriter, loadChain, resolveCheckpointPath, type CheckpointMeta } from './checkpoints.js';
import { nodePlatform } from './platform.js';
import { hostInstrumentOptions } from './wasm-opt.js';
import { readBytes } from './files.js';

/**
 * Memories for fresh starts in this process: creating a WebAssembly.Memory costs ~15-25 µs (V8 reserves its address
 * space), a large part of a tiny job. A finished job's memory comes back here and is cleared for the next job of the
 * same size (MemoryPool `zeroed`); bounded so that jobs which grew large do not keep their memory.
 */
const freshMemories = new MemoryPool({ maxBytes: 64 * 1024 * 1024, maxCount: 8 });
/** Idle instances of reusable modules (InstrumentInfo.reusable) for the next fresh start of the same module. */
const instances = new InstancePool();

export type OutputSink = 'inherit' | 'buffer' | 'ignore' | ((bytes: Uint8Array) => void);

export interface RunOptions {
  /** argv[1..]; argv[0] is `name` (default: the file name) */
  args?: string[];
  name?: string;
  env?: Record<string, string> | string[];
  /** host directories: `--dir HOST::GUEST`; readonly refuses writes */
  dirs?: Array<{ host: string; guest: string; readonly?: boolean }>;
  /** in-memory directories (their contents are part of every checkpoint) */
  memDirs?: string[];
  stdin?: Uint8Array | 'inherit' | ((max: number) => Uint8Array | null);
  stdout?: OutputSink;
  stderr?: OutputSink;
  maxMemoryBytes?: number;
  fuel?: number;
  timeoutMs?: number;
  /** take a checkpoint at this interval of running time */
  checkpointEveryMs?: number;
  /** take a checkpoint at the first yield after each of these fuel values (tests, reproducible spreads) */
  checkpointAtFuel?: number[];
  checkpointDir?: string;
  /** write checkpoints after the first as deltas (a full one every `fullEvery`, default 16) */
  delta?: boolean;
  fullEvery?: number;
  /** keep only the newest chain of checkpoints in checkpointDir */
  keepLatest?: boolean;
  /** receive every checkpoint (encoded file chunks are only valid during the call) */
  onCheckpoint?: (c: { seq: number; path?: string; snapshot: Snapshot }) => void;
  /** suspend (checkpoint and stop) at the first checkpoint point instead of continuing */
  suspendAtCheckpoint?: boolean;
  /** a control word (Int32Array over a SharedArrayBuffer) another thread may use (vm Control) */
  control?: Int32Array;
  /** use the on-disk module cache (default true) */
  cache?: boolean;
  instrument?: InstrumentOptions;
  slice?: number;
  /** tier-up re-entries (ms of running); default: MachineOptions.reenterAt's */
  reenterAt?: number[];
}

export interface RunResult {
  /** the job's exit code, or null when it trapped or was suspended */
  exitCode: number | null;
  trap?: { reason: string; message: string; stack: string[] };
  suspended?: boolean;
  stdout: Uint8Array;
  stderr: Uint8Array;
  fuelUsed: number;
  checkpoints: number;
  lastCheckpoint?: string;
  memoryPeakBytes: number;
  elapsedMs: number;
  moduleHash: string;
  instrumentCached: boolean;
  /** final contents of in-memory directories: guest path -> file bytes */
  memFiles?: Record<string, Uint8Array>;
}

const engines = new Map<string, PageEngine>();
function engine(): PageEngine {
  let e = engines.get('auto');
  if (!e) engines.set('auto', (e = createPageEngine('auto')));
  return e;
}

function sink(s: OutputSink | undefined, fd: number, into: Uint8Array[]): (b: Uint8Array) => void {
  // the kernel hands every sink its own copy of the bytes (ProcessOptions.stdout: "the callee may keep it")
  if (s === undefined || s === 'buffer') return (b) => void into.push(b);
  if (s === 'ignore') return ignore;
  if (s === 'inherit') return fd === 1 ? inheritStdout : inheritStderr;
  return s;
}
const ignore = (): void => {};
const inheritStdout = (b: Uint8Array): void => writeAllSync(1, b);
const inheritStderr = (b: Uint8Array): void => writeAllSync(2, b);

export function writeAllSync(fd: number, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) {
    try {
      off += writeSync(fd, b, off, b.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

function stdinSource(s: RunOptions['stdin']): ((max: number) => Uint8Array | null) | undefined {
  if (s === undefined) return undefined;
  if (typeof s === 'function') return s;
  if (s === 'inherit') {
    return (max) => {
      const buf = new Uint8Array(Math.min(max, 65536));
      for (;;) {
        try {
          const n = readSyncFd(0, buf);
          return n === 0 ? null : buf.subarray(0, n);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') continue;
          if (code === 'EOF') return null;
          throw e;
        }
      }
    };
  }
  let off = 0;
  const data = s;
  return (max) => {
    if (off >= data.length) return null;
    const out = data.subarray(off, Math.min(data.length, off + max));
    off += out.length;
    return out;
  };
}

function readSyncFd(fd: number, buf: Uint8Array): number {
  return readSync(fd, buf, 0, buf.length, null);
}

function envList(env: RunOptions['env']): string[] {
  if (!env) return [];
  return Array.isArray(env) ? env : Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

function mountsOf(o: RunOptions): MountSpec[] {
  const mounts: MountSpec[] = [];
  if (o.dirs) for (const d of o.dirs) mounts.push({ guest: d.guest, kind: 'host', host: resolvePath(d.host), readonly: !!d.readonly });
  if (o.memDirs) for (const g of o.memDirs) mounts.push({ guest: g, kind: 'memory' });
  return mounts;
}

/** Run a WASI job in this thread on gridvm's kernel. `wasm` is a path or the module's bytes. */
export async function run(wasm: string | Uint8Array, o: RunOptions = {}): Promise<RunResult> {
  // a memoised module is found without a promise of its own; the job still starts after the caller goes on, as when
  // it was loaded
  let job = memoised(wasm, o);
  if (job) await undefined;
  else job = await loadJob(wasm, o);
  const name = o.name ?? (typeof wasm === 'string' ? wasm.slice(wasm.lastIndexOf('/') + 1) : 'job.wasm');
  const args = [name];
  if (o.args) for (const a of o.args) args.push(a);
  return execute(job, o, mountsOf(o), args, envList(o.env));
}

/**
 * Jobs already prepared in this process, by file and by bytes object: running the same module again skips reading
 * and hashing it (only the default instrumentation options are memoised). A file's entry is checked by a stat at
 * every call: size, mtime, ctime, inode and device must all be unchanged (ctime catches a copy that kept the mtime,
 * the inode a file replaced by a rename). A file whose timestamps are too recent to tell a later write in the same
 * clock tick apart (file systems stamp with a coarse clock; some with 1-2 s granularity) is not memoised until
 * they are RACY_MS old, so such a write can never leave the old module in place.
 */
interface PathMemo {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  job: CompiledJob;
}
const byPath = new Map<string, PathMemo>();
const byBytes = new WeakMap<Uint8Array, CompiledJob>();
const RACY_MS = 3000;
function memoised(wasm: string | Uint8Array, o: RunOptions): CompiledJob | undefined {
  if (o.instrument) return undefined;
  if (typeof wasm !== 'string') return byBytes.get(wasm);
  const m = byPath.get(wasm);
  if (!m) return undefined;
  const st = statSync(wasm);
  if (st.size === m.size && st.mtimeMs === m.mtimeMs && st.ctimeMs === m.ctimeMs && st.ino === m.ino && st.dev === m.dev) return m.job;
  byPath.delete(wasm);
  return undefined;
}

async function loadJob(wasm: string | Uint8Array, o: RunOptions): Promise<CompiledJob> {
  const memo = !o.instrument;
  let st: { size: number; mtimeMs: number; ctimeMs: number; ino: number; dev: number } | undefined;
  let readAt = 0;
  if (memo && typeof wasm === 'string') {
    readAt = Date.now();
    st = statSync(wasm);
  }
  const bytes = typeof wasm === 'string' ? readBytes(wasm) : wasm;
  const instrument = hostInstrumentOptions(bytes, o.instrument);
  const job = await prepareJob(bytes, {
    ...(o.cache === false ? {} : { cache: new DiskModuleCache() }),
    ...(Object.keys(instrument).length ? { instrument } : {}),
  });
  if (memo) {
    if (typeof wasm === 'string' && st) {
      // the stat was taken before the read: a write after it changes the stat unless it came in the same timestamp
      // tick, which only a recent file can still see
      if (Math.max(st.mtimeMs, st.ctimeMs) < readAt - RACY_MS) {
        byPath.set(wasm, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, job: { ...job, cached: true } });
      }
    } else if (typeof wasm !== 'string') byBytes.set(wasm, { ...job, cached: true });
  }
  return job;
}

/** Continue a job from a checkpoint file (or a checkpoint directory's latest). Prints only what follows it. */
export async function resume(checkpoint: string, o: Omit<RunOptions, 'args' | 'env' | 'name'> = {}): Promise<RunResult> {
  const e = engine();
  const chain = loadChain(checkpoint, e);
  const last = chain[chain.length - 1]!.header;
  const meta = last.meta as unknown as CheckpointMeta;
  const file = resolveCheckpointPath(checkpoint);
  const modBytes = new Uint8Array(readFileSync(join(dirname(file), meta.moduleFile)));
  const job = await compileInstrumented(modBytes, meta.info);
  const snap = snapshotFromChain(chain);
  const limits = {
    ...(meta.limits.maxMemoryBytes !== undefined ? { maxMemoryBytes: meta.limits.maxMemoryBytes } : {}),
    ...(meta.limits.fuel !== undefined ? { fuel: meta.limits.fuel } : {}),
    ...(meta.limits.timeoutMs !== undefined ? { timeoutMs: meta.limits.timeoutMs } : {}),
  };
  return execute(job, { ...limits, ...o }, meta.mounts, [], [], { snap, apply: (dst) => applyChain(chain, dst), elapsedMs: meta.elapsedMs });
}

/** Run a prepared job to its end (synchronous: the job runs in this thread). */
function execute(
  job: CompiledJob,
  o: RunOptions,
  mounts: MountSpec[],
  args: string[],
  env: string[],
  from?: { snap: Snapshot; apply: (dst: Uint8Array) => void; elapsedMs: number },
): RunResult {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const procOpts: ProcessOptions = { args, env, mounts, platform: nodePlatform(), stdout: sink(o.stdout, 1, out), stderr: sink(o.stderr, 2, err) };
  const stdin = stdinSource(o.stdin);
  if (stdin) procOpts.stdin = stdin;
  const proc = new Process(procOpts, from?.snap.kernel);
  const pages = engine();
  const writer = o.checkpointDir ? new CheckpointWriter(o.checkpointDir, pages, { delta: !!o.delta, ...(o.fullEvery ? { fullEvery: o.fullEvery } : {}), ...(o.keepLatest ? { keep: 1 } : {}) }) : undefined;
  const moduleFile = writer ? writer.saveModule(job.hash, job.bytes) : '';
  const fuelPoints = o.checkpointAtFuel?.length ? [...o.checkpointAtFuel].sort((a, b) => a - b) : undefined;
  let nextCkptAt = o.checkpointEveryMs ?? Infinity;
  let lastCheckpoint: string | undefined;
  const elapsedBase = from?.elapsedMs ?? 0;
  const onCheckpoint = (s: Snapshot): void => {
    let path: string | undefined;
    if (writer) {
      const meta: CheckpointMeta = {
        moduleFile,
        info: job.info,
        mounts,
        limits: {
          ...(o.maxMemoryBytes !== undefined ? { maxMemoryBytes: o.maxMemoryBytes } : {}),
          ...(o.fuel !== undefined ? { fuel: o.fuel } : {}),
          ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
        },
        elapsedMs: elapsedBase + machine.elapsedMs,
      };
      path = writer.write(s, meta).path;
      lastCheckpoint = path;
    }
    o.onCheckpoint?.({ seq: s.seq, ...(path ? { path } : {}), snapshot: s });
  };
  // a fresh start of a module that imports its memory (instrumentation v7+) gets a pooled one, zeroed
  const memDecl = !from && job.info.memory ? job.info.memory : undefined;
  // ... or, for a reusable module, an idle instance of it with its memory (instantiating is most of a tiny job)
  const reuse = !!memDecl && instances.ready(job.module);
  const pooled = memDecl && !reuse ? freshMemories.take(memDecl.initial, memDecl, { zeroed: true }) : undefined;
  const mo: MachineOptions = {
    pages,
    now,
    policy: (m) => {
      let due = false;
      if (fuelPoints) {
        while (fuelPoints.length && m.fuelUsed >= fuelPoints[0]!) {
          fuelPoints.shift();
          due = true;
        }
      }
      if (m.elapsedMs >= nextCkptAt) {
        due = true;
        while (nextCkptAt <= m.elapsedMs) nextCkptAt += o.checkpointEveryMs!;
      }
      if (!due) return 'continue';
      return o.suspendAtCheckpoint ? 'suspend' : 'checkpoint';
    },
    onCheckpoint,
  };
  if (pooled) mo.memory = pooled;
  if (memDecl) mo.instances = instances;
  if (o.fuel !== undefined) mo.fuel = o.fuel;
  if (o.timeoutMs !== undefined) mo.timeoutMs = Math.max(0, o.timeoutMs - elapsedBase);
  if (o.maxMemoryBytes !== undefined) mo.maxMemoryBytes = o.maxMemoryBytes;
  if (o.slice !== undefined) mo.slice = o.slice;
  if (o.reenterAt !== undefined) mo.reenterAt = o.reenterAt;
  if (o.control) mo.control = o.control;
  const machine: Machine = new Machine(job, proc, mo);
  if (from) machine.restore(from.snap, from.apply);
  let outcome: RunOutcome;
  try {
    outcome = machine.run();
  } catch (e) {
    if (e instanceof Trap) outcome = { kind: 'trap', trap: e };
    else throw e;
  }
  if (outcome.kind === 'suspended') {
    // a suspension is a checkpoint that stops the job
    const s = outcome.snapshot;
    machine.checkpoints++;
    onCheckpoint(s);
  }
  // the job is over (its snapshots are copies): its instance, or else its memory, serves the next fresh start
  if (!machine.release() && memDecl) freshMemories.give(machine.memory);
  const result: RunResult = {
    exitCode: outcome.kind === 'exit' ? outcome.code : null,
    stdout: concat(out),
    stderr: concat(err),
    fuelUsed: machine.fuelUsed,
    checkpoints: machine.checkpoints,
    memoryPeakBytes: machine.memoryPeak,
    elapsedMs: elapsedBase + machine.elapsedMs,
    moduleHash: job.hash,
    instrumentCached: job.cached,
  };
  if (lastCheckpoint) result.lastCheckpoint = lastCheckpoint;
  if (outcome.kind === 'trap') result.trap = { reason: outcome.trap.reason, message: outcome.trap.message, stack: outcome.trap.guestStack };
  if (outcome.kind === 'suspended') result.suspended = true;
  if (mounts.length) {
    const memFiles = memFilesOf(proc, mounts);
    if (memFiles) result.memFiles = memFiles;
  }
  return result;
}

const now = (): number => performance.now();

/** The files of in-memory mounts after the run: "/guest/dir/file" -> bytes (directories and symlinks left out). */
function memFilesOf(proc: Process, mounts: MountSpec[]): Record<string, Uint8Array> | undefined {
  if (!mounts.some((m) => m.kind === 'memory')) return undefined;
  const out: Record<string, Uint8Array> = {};
  for (const m of proc.vfs.mounts) {
    if (!m.memfs) continue;
    const st = m.memfs.save();
    const byIno = new Map(st.nodes.map((n) => [n.ino, n]));
    const walk = (ino: number, prefix: string): void => {
      const n = byIno.get(ino);
      if (!n) return;
      if (n.kind === 'file') out[prefix] = n.data ?? new Uint8Array(0);
      else if (n.kind === 'dir') for (const [name, child] of n.entries ?? []) walk(child, `${prefix}/${name}`);
    };
    walk(st.root, m.guest.replace(/\/$/, ''));
  }
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  // (an empty Uint8Array from an empty array is ~5x cheaper than new Uint8Array(0) in Node 20's V8)
  if (chunks.length === 0) return new Uint8Array([]);
  return chunks.length === 1 ? chunks[0]! : concatChunks(chunks);
}
