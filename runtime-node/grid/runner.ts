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
  type CompiledJob,
  type InstrumentInfo,
  type RunOutcome,
  type Snapshot,
} from '../../vm/runtime.js';
import { nodePlatform } from '../platform.js';

export interface RunnerData {
  node: string;
  /** Int32Array[1] over this SAB: the vm Control word for the process being run */
  control: SharedArrayBuffer;
}

/** Messages from the NodeHost to a runner. */
export type RunnerCommand =
  | { t: 'module'; hash: string; module: WebAssembly.Module; info: InstrumentInfo }
  | {
      t: 'start';
      gpid: number;
      hash: string;
      spec: ProcSpec;
      counters: { cpuMs: number; checkpoints: number; migrations: number };
      snapshot?: Uint8Array;
      resolve?: { value: number; status?: number };
      policy?: CheckpointPolicy;
      /** why the process is being stopped, if the node asks it to stop (set with the control word) */
    };

const { node, control } = workerData as RunnerData;
const controlWord = new Int32Array(control);
const modules = new Map<string, { module: WebAssembly.Module; info: InstrumentInfo }>();
const pages = createPageEngine('auto');
const post = (m: NodeEvent, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);

parentPort!.on('message', (m: RunnerCommand) => {
  if (m.t === 'module') {
    modules.set(m.hash, { module: m.module, info: m.info });
    return;
  }
  try {
    runProcess(m);
  } catch (e) {
    post({ t: 'error', node, gpid: m.gpid, message: `${(e as Error).name}: ${(e as Error).message}` });
  }
});

function encode(s: Snapshot): Uint8Array {
  return concatChunks(encodeSnapshot(s, pages, { createdAtMs: Date.now() }).chunks);
}

function runProcess(m: Extract<RunnerCommand, { t: 'start' }>): void {
  const mod = modules.get(m.hash);
  if (!mod) throw new Error(`module ${m.hash.slice(0, 16)} was not sent to this node`);
  const job: CompiledJob = { hash: m.hash, sourceHash: '', bytes: new Uint8Array(0), module: mod.module, info: mod.info, cached: true };
  let from: { snap: Snapshot; apply: (dst: Uint8Array) => void } | undefined;
  if (m.snapshot) {
    const d = decodeSnapshot(m.snapshot, pages);
    from = { snap: snapshotFromChain([d]), apply: (dst) => applyChain([d], dst) };
  }
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
    policy: (mach) => (mach.elapsedMs >= nextCheckpointAt ? 'checkpoint' : 'continue'),
    onCheckpoint: (s) => {
      const t0 = performance.now();
      const bytes = encode(s);
      checkpoints++;
      localSeq++;
      const cost = performance.now() - t0;
      if (interval.shouldExport(localSeq)) {
        post({ t: 'checkpoint', node, gpid, seq: s.seq, snapshot: bytes, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, usage: usage(machine!) }, [bytes.buffer as ArrayBuffer]);
      }
      nextCheckpointAt = machine!.elapsedMs + interval.next({ checkpointMs: cost });
    },
  });
  if (from) machine.restore(from.snap, from.apply);
  if (m.resolve) machine.resolveBlocked({ value: BigInt(m.resolve.value), ...(m.resolve.status !== undefined ? { status: m.resolve.status } : {}) });
  Atomics.store(controlWord, 0, 0);
  post({ t: 'started', node, gpid });
  let outcome: RunOutcome;
  try {
    outcome = machine.run();
  } catch (e) {
    post({ t: 'error', node, gpid, message: `${(e as Error).name}: ${(e as Error).message}` });
    return;
  }
  if (outcome.kind === 'exit') post({ t: 'exit', node, gpid, code: outcome.code, usage: usage(machine) });
  else if (outcome.kind === 'trap') {
    const t = outcome.trap;
    post({ t: 'trap', node, gpid, reason: t.reason, message: t.message, stack: t.guestStack, usage: usage(machine) });
  } else if (outcome.kind === 'blocked') {
    const bytes = encode(outcome.snapshot);
    const c = outcome.call;
    const call: GridCallMsg = c.op === 'wait' ? { op: 'wait', gpid: Number(c.gpid) } : c;
    post({ t: 'blocked', node, gpid, snapshot: bytes, call, usage: usage(machine) }, [bytes.buffer as ArrayBuffer]);
  } else {
    checkpoints++;
    const bytes = encode(outcome.snapshot);
    post({ t: 'suspended', node, gpid, snapshot: bytes, usage: usage(machine), reason: '' }, [bytes.buffer as ArrayBuffer]);
  }
}
