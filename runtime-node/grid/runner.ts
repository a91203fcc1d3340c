// Worker thread entry: a node's runner. Runs one process at a time on the Grid VM: starts it fresh or from a
// snapshot, streams its output with byte offsets, takes local checkpoints at the node's adaptive interval (exporting
// every k-th to the origin), and stops it at a safe point when the node asks (migration, preemption) through the
// control word. Messages out are NodeEvents (kernel/net/protocol.ts), relayed by the NodeHost.
import { parentPort, workerData } from 'node:worker_threads';
import {
  AdaptiveInterval,
  Process,
  type CheckpointPolicy,
  type GridCallMsg,
  type MountSpec,
  type NodeEvent,
  type ProcSpec,
  type ProcStatus,
  type RawSnapshot,
  type Usage,
} from '../../kernel/index.js';
import {
  applyChain,
  concatChunks,
  createPageEngine,
  decodeSnapshot,
  encodeSnapshot,
  Machine,
  snapshotFromChain,
  PAGE_SIZE,
  type CompiledJob,
  type DecodedSnapshot,
  type DeltaBase,
  type InstrumentInfo,
  type RunOutcome,
  type Snapshot,
} from '../../vm/runtime.js';
import { nodePlatform } from '../platform.js';
import { PRECOPY_FLAG, type RecycleEvent, type RunnerCommand, type RunnerData } from './runner-types.js';

const { node, control } = workerData as RunnerData;
const controlWord = new Int32Array(control);
const modules = new Map<string, { module: WebAssembly.Module; info: InstrumentInfo }>();
const pages = createPageEngine('auto');
const post = (m: NodeEvent, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);
/** a pre-copied full snapshot of a process about to arrive here (decoded, checksums verified) */
let prepared: { gpid: number; base: DecodedSnapshot } | undefined;
/** epoch ms, sub-ms precision, comparable across threads and processes */
const epochNow = () => performance.timeOrigin + performance.now();

parentPort!.on('message', (m: RunnerCommand) => {
  if (m.t === 'module') {
    modules.set(m.hash, { module: m.module, info: m.info });
    return;
  }
  if (m.t === 'drop') {
    if (prepared?.gpid === m.gpid) prepared = undefined;
    return;
  }
  if (m.t === 'prepare') {
    try {
      prepared = { gpid: m.gpid, base: decodeSnapshot(m.snapshot, pages) };
      post({ t: 'prepared', node, gpid: m.gpid, ok: true });
    } catch (e) {
      prepared = undefined;
      post({ t: 'prepared', node, gpid: m.gpid, ok: false, message: (e as Error).message });
    }
    return;
  }
  try {
    runProcess(m);
  } catch (e) {
    post({ t: 'error', node, gpid: m.gpid, message: `${(e as Error).name}: ${(e as Error).message}` });
  }
});

function encode(s: Snapshot, delta?: DeltaBase): { bytes: Uint8Array; base: DeltaBase } {
  const e = encodeSnapshot(s, pages, { createdAtMs: Date.now(), ...(delta ? { delta } : {}) });
  return { bytes: concatChunks(e.chunks), base: e.base };
}

/** A raw snapshot for a migration between threads: the state and a copy of memory, no encoding. */
function rawOf(s: Snapshot, spare: ArrayBuffer | undefined): RawSnapshot {
  const len = s.pages * PAGE_SIZE;
  let memory: Uint8Array;
  if (spare && spare.byteLength >= len) {
    memory = new Uint8Array(spare, 0, len);
    memory.set(s.memory.subarray(0, len));
  } else memory = s.memory.slice(0, len);
  return {
    raw: true, moduleHash: s.moduleHash, pages: s.pages, globals: s.globals, asyncify: s.asyncify, kernel: s.kernel,
    fuelUsed: s.fuelUsed, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, seq: s.seq, memory,
  };
}

/** Hand a buffer back to the node's pool of spares (transferred: it leaves this thread). */
function recycle(buffer: ArrayBuffer | undefined): void {
  if (buffer && buffer.byteLength > 0) parentPort!.postMessage({ t: 'recycle', buffer } satisfies RecycleEvent, [buffer]);
}

/** Where a start continues from: a raw snapshot, or a chain [full] / [full base, delta]. */
function sourceOf(m: Extract<RunnerCommand, { t: 'start' }>): { snap: Snapshot; apply: (dst: Uint8Array) => void } | undefined {
  const p = m.snapshot;
  if (!p) return undefined;
  if (!(p instanceof Uint8Array)) {
    const snap: Snapshot = { ...p, memory: p.memory, kernel: p.kernel as Snapshot['kernel'], globals: p.globals };
    return { snap, apply: (dst) => dst.set(p.memory) };
  }
  const chain = chainOf(m, p);
  return { snap: snapshotFromChain(chain), apply: (dst) => applyChain(chain, dst) };
}

/** The chain a start continues from: [full] or [full base, delta]. */
function chainOf(m: Extract<RunnerCommand, { t: 'start' }>, bytes: Uint8Array): DecodedSnapshot[] {
  const last = decodeSnapshot(bytes, pages);
  if (last.header.kind === 'full') return [last];
  if (m.prepared) {
    if (prepared?.gpid !== m.gpid) throw new Error(`process ${m.gpid} was not prepared on this runner for its migration`);
    const base = prepared.base;
    prepared = undefined;
    return [base, last];
  }
  if (!m.base) throw new Error(`process ${m.gpid}: a delta snapshot came without its base`);
  return [decodeSnapshot(m.base, pages), last];
}

function runProcess(m: Extract<RunnerCommand, { t: 'start' }>): void {
  const mod = modules.get(m.hash);
  if (!mod) throw new Error(`module ${m.hash.slice(0, 16)} was not sent to this node`);
  const job: CompiledJob = { hash: m.hash, sourceHash: '', bytes: new Uint8Array(0), module: mod.module, info: mod.info, cached: true };
  const tRecv = epochNow();
  const from = sourceOf(m);
  const gpid = m.gpid;
  const offsets = { 1: from?.snap.stdoutBytes ?? 0, 2: from?.snap.stderrBytes ?? 0 };
  const out = (fd: 1 | 2) => (bytes: Uint8Array) => {
    post({ t: 'output', node, gpid, fd, offset: offsets[fd], bytes });
    offsets[fd] += bytes.length;
  };
  const mounts: MountSpec[] = m.spec.mounts.map((x) => ({ guest: x.guest, kind: x.kind, ...(x.host ? { host: x.host } : {}), readonly: !!x.readonly }));
  const g = m.spec.grid;
  let machine: Machine | undefined;
  const procInfo = (want: bigint): ProcStatus | undefined =>
    want !== BigInt(gpid) ? undefined : {
      gpid: want, name: m.spec.name, state: 'running', node,
      cpuTimeMs: Math.round(cpuBefore + (machine?.elapsedMs ?? 0)), fuelUsed: machine?.fuelUsed ?? 0,
      memoryPeakBytes: machine?.memoryPeak ?? 0, checkpoints, migrations: m.counters.migrations,
    };
  const proc = new Process(
    {
      args: [m.spec.name, ...m.spec.args], env: m.spec.env, mounts, platform: nodePlatform(), stdout: out(1), stderr: out(2),
      grid: { gpid: BigInt(g.gpid), parent: BigInt(g.parent), rank: g.rank, size: g.size, node }, procInfo,
    },
    from?.snap.kernel,
  );
  const cpuBefore = m.counters.cpuMs;
  let checkpoints = m.counters.checkpoints;
  const interval = new AdaptiveInterval(m.policy ?? { w: 0.5, minMs: 250, maxMs: 5000, initialMs: 1000, exportEvery: 2 });
  let nextCheckpointAt = interval.current;
  let localSeq = 0;
  const lim = m.spec.limits;
  const usage = (mach: Machine): Usage => ({ fuelUsed: mach.fuelUsed, cpuMs: cpuBefore + mach.elapsedMs, memoryPeakBytes: mach.memoryPeak, checkpoints });
  machine = new Machine(job, proc, {
    pages,
    now: () => performance.now(),
    control: controlWord,
    ...(lim.fuel !== undefined ? { fuel: lim.fuel } : {}),
    ...(lim.timeoutMs !== undefined ? { timeoutMs: Math.max(0, lim.timeoutMs - cpuBefore) } : {}),
    ...(lim.maxMemoryBytes !== undefined ? { maxMemoryBytes: lim.maxMemoryBytes } : {}),
    policy: (mach) => {
      lastYieldAt = epochNow();
      return mach.elapsedMs >= nextCheckpointAt ? 'checkpoint' : 'continue';
    },
    onCheckpoint: (s) => {
      if (Atomics.exchange(controlWord, 1, 0) === PRECOPY_FLAG) {
        // a migration's pre-copy: ship the whole state now, the freeze will ship only what changes until then
        const { bytes, base } = encode(s);
        precopyBase = base;
        post({ t: 'precopy', node, gpid, snapshot: bytes }, [bytes.buffer as ArrayBuffer]);
        return;
      }
      const t0 = performance.now();
      const { bytes } = encode(s);
      checkpoints++;
      localSeq++;
      const cost = performance.now() - t0;
      if (interval.shouldExport(localSeq)) {
        post({ t: 'checkpoint', node, gpid, seq: s.seq, snapshot: bytes, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, usage: usage(machine!) }, [bytes.buffer as ArrayBuffer]);
      }
      nextCheckpointAt = machine!.elapsedMs + interval.next({ checkpointMs: cost });
    },
  });
  let lastYieldAt = 0;
  let precopyBase: DeltaBase | undefined;
  if (from) machine.restore(from.snap, from.apply);
  // the raw snapshot's memory has been copied into the job: its buffer becomes a spare for a later suspension
  if (m.snapshot && !(m.snapshot instanceof Uint8Array)) recycle(m.snapshot.memory.buffer as ArrayBuffer);
  if (m.resolve) machine.resolveBlocked({ value: BigInt(m.resolve.value), ...(m.resolve.status !== undefined ? { status: m.resolve.status } : {}) });
  Atomics.store(controlWord, 0, 0);
  Atomics.store(controlWord, 1, 0);
  if (process.env.GRIDVM_TRACE) process.stderr.write(`trace ${gpid} start-recv->started ${(epochNow() - tRecv).toFixed(1)}\n`);
  post({ t: 'started', node, gpid, at: epochNow() });
  let outcome: RunOutcome;
  try {
    outcome = machine.run();
  } catch (e) {
    post({ t: 'error', node, gpid, message: `${(e as Error).name}: ${(e as Error).message}` });
    return;
  }
  if (outcome.kind !== 'suspended' || !m.raw) recycle(m.spare);
  if (outcome.kind === 'exit') post({ t: 'exit', node, gpid, code: outcome.code, usage: usage(machine) });
  else if (outcome.kind === 'trap') {
    const t = outcome.trap;
    post({ t: 'trap', node, gpid, reason: t.reason, message: t.message, stack: t.guestStack, usage: usage(machine) });
  } else if (outcome.kind === 'blocked') {
    const { bytes } = encode(outcome.snapshot);
    const c = outcome.call;
    const call: GridCallMsg = c.op === 'wait' ? { op: 'wait', gpid: Number(c.gpid) } : c;
    post({ t: 'blocked', node, gpid, snapshot: bytes, call, usage: usage(machine) }, [bytes.buffer as ArrayBuffer]);
  } else {
    checkpoints++;
    const s = outcome.snapshot;
    const ev = { t: 'suspended' as const, node, gpid, usage: usage(machine), frozenAt: lastYieldAt, memoryBytes: s.pages * PAGE_SIZE };
    if (m.raw && !precopyBase) {
      const t0 = epochNow();
      const raw = rawOf(s, m.spare);
      if (raw.memory.buffer !== m.spare) recycle(m.spare);
      if (process.env.GRIDVM_TRACE) process.stderr.write(`trace ${gpid} frozen->suspended-return ${(t0 - lastYieldAt).toFixed(1)} rawcopy ${(epochNow() - t0).toFixed(1)}\n`);
      post({ ...ev, snapshot: raw, delta: false }, [raw.memory.buffer as ArrayBuffer]);
    } else {
      if (m.raw) recycle(m.spare);
      const { bytes } = encode(s, precopyBase);
      post({ ...ev, snapshot: bytes, delta: !!precopyBase }, [bytes.buffer as ArrayBuffer]);
    }
  }
}
