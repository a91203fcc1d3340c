import { readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { Process, Trap, type MountSpec } from '../kernel/index.js';
import {
  applyChain,
  concatChunks,
  compileInstrumented,
  createPageEngine,
  Machine,
  MemoryPool,
  prepareJob,
  snapshotFromChain,
  type CompiledJob,
  type InstrumentOptions,
  type PageEngine,
  type RunOutcome,
  type Snapshot,
} from '../vm/index.js';
import { DiskModuleCache } from './cache.js';
import { CheckpointWriter, loadChain, resolveCheckpointPath, type CheckpointMeta } from './checkpoints.js';
import { nodePlatform } from './platform.js';
import { hostInstrumentOptions } from './wasm-opt.js';

/**
 * Memories for fresh starts in this process: creating a WebAssembly.Memory costs ~15-25 µs (V8 reserves its address
 * space), a large part of a tiny job. A finished job's memory comes back here and is cleared for the next job of the
 * same size (MemoryPool `zeroed`); bounded so that jobs which grew large do not keep their memory.
 */
const freshMemories = new MemoryPool({ maxBytes: 64 * 1024 * 1024, maxCount: 8 });

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
  if (s === undefined || s === 'buffer') return (b) => void into.push(b.slice());
  if (s === 'ignore') return () => {};
  if (s === 'inherit') return (b) => writeAllSync(fd, b);
  return s;
}

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
  return [
    ...(o.dirs ?? []).map((d) => ({ guest: d.guest, kind: 'host' as const, host: resolvePath(d.host), readonly: !!d.readonly })),
    ...(o.memDirs ?? []).map((g) => ({ guest: g, kind: 'memory' as const })),
  ];
}

/** Run a WASI job in this thread on gridvm's kernel. `wasm` is a path or the module's bytes. */
export async function run(wasm: string | Uint8Array, o: RunOptions = {}): Promise<RunResult> {
  const job = await loadJob(wasm, o);
  const name = o.name ?? (typeof wasm === 'string' ? wasm.split('/').pop()! : 'job.wasm');
  const mounts = mountsOf(o);
  return execute(job, o, mounts, [name, ...(o.args ?? [])], envList(o.env));
}

/**
 * Jobs already prepared in this process, by file (path + size + mtime) and by bytes object: running the same module
 * again skips reading and hashing it (only the default instrumentation options are memoised).
 */
const byPath = new Map<string, { size: number; mtimeMs: number; job: CompiledJob }>();
const byBytes = new WeakMap<Uint8Array, CompiledJob>();

async function loadJob(wasm: string | Uint8Array, o: RunOptions): Promise<CompiledJob> {
  const memo = !o.instrument;
  let st: { size: number; mtimeMs: number } | undefined;
  if (memo) {
    if (typeof wasm === 'string') {
      st = statSync(wasm);
      const hit = byPath.get(wasm);
      if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.job;
    } else {
      const hit = byBytes.get(wasm);
      if (hit) return hit;
    }
  }
  const bytes = typeof wasm === 'string' ? new Uint8Array(readFileSync(wasm)) : wasm;
  const instrument = hostInstrumentOptions(bytes, o.instrument);
  const job = await prepareJob(bytes, {
    ...(o.cache === false ? {} : { cache: new DiskModuleCache() }),
    ...(Object.keys(instrument).length ? { instrument } : {}),
  });
  if (memo) {
    if (typeof wasm === 'string' && st) byPath.set(wasm, { ...st, job: { ...job, cached: true } });
    else if (typeof wasm !== 'string') byBytes.set(wasm, { ...job, cached: true });
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

async function execute(
  job: CompiledJob,
  o: RunOptions,
  mounts: MountSpec[],
  args: string[],
  env: string[],
  from?: { snap: Snapshot; apply: (dst: Uint8Array) => void; elapsedMs: number },
): Promise<RunResult> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const stdin = stdinSource(o.stdin);
  const proc = new Process(
    {
      args,
      env,
      mounts,
      platform: nodePlatform(),
      stdout: sink(o.stdout, 1, out),
      stderr: sink(o.stderr, 2, err),
      ...(stdin ? { stdin } : {}),
    },
    from?.snap.kernel,
  );
  const pages = engine();
  const writer = o.checkpointDir ? new CheckpointWriter(o.checkpointDir, pages, { delta: !!o.delta, ...(o.fullEvery ? { fullEvery: o.fullEvery } : {}), ...(o.keepLatest ? { keep: 1 } : {}) }) : undefined;
  const moduleFile = writer ? writer.saveModule(job.hash, job.bytes) : '';
  const fuelPoints = [...(o.checkpointAtFuel ?? [])].sort((a, b) => a - b);
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
  const pooled = memDecl ? freshMemories.take(memDecl.initial, memDecl, { zeroed: true }) : undefined;
  const machine: Machine = new Machine(job, proc, {
    pages,
    ...(pooled ? { memory: pooled } : {}),
    now: () => performance.now(),
    ...(o.fuel !== undefined ? { fuel: o.fuel } : {}),
    ...(o.timeoutMs !== undefined ? { timeoutMs: Math.max(0, o.timeoutMs - elapsedBase) } : {}),
    ...(o.maxMemoryBytes !== undefined ? { maxMemoryBytes: o.maxMemoryBytes } : {}),
    ...(o.slice !== undefined ? { slice: o.slice } : {}),
    ...(o.control ? { control: o.control } : {}),
    policy: (m) => {
      let due = false;
      while (fuelPoints.length && m.fuelUsed >= fuelPoints[0]!) {
        fuelPoints.shift();
        due = true;
      }
      if (m.elapsedMs >= nextCkptAt) {
        due = true;
        while (nextCkptAt <= m.elapsedMs) nextCkptAt += o.checkpointEveryMs!;
      }
      if (!due) return 'continue';
      return o.suspendAtCheckpoint ? 'suspend' : 'checkpoint';
    },
    onCheckpoint,
  });
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
  // the job is over (its snapshots are copies): its memory serves the next fresh start
  if (pooled) freshMemories.give(machine.memory);
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
    ...(lastCheckpoint ? { lastCheckpoint } : {}),
  };
  if (outcome.kind === 'trap') result.trap = { reason: outcome.trap.reason, message: outcome.trap.message, stack: outcome.trap.guestStack };
  if (outcome.kind === 'suspended') result.suspended = true;
  const memFiles = memFilesOf(proc, mounts);
  if (memFiles) result.memFiles = memFiles;
  return result;
}

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
  return chunks.length === 1 ? chunks[0]! : concatChunks(chunks);
}
