// A Web Worker that runs one gridvm job: the same vm/ and kernel/ as on Node. It receives an instrumented module
// (instrumentation happens on the coordinator and is cached by hash), runs it — from the start, or from a checkpoint
// taken on any node — and posts back output and encoded checkpoints that any other node can resume.
import { Process, Trap } from '../kernel/index.js';
import { compileInstrumented } from '../vm/compiled.js';
import type { InstrumentInfo } from '../vm/instrument.js';
import { Machine, type RunOutcome, type Snapshot } from '../vm/machine.js';
import { createPageEngine } from '../vm/pages.js';
import { applyChain, concatChunks, decodeSnapshot, encodeSnapshot, snapshotFromChain } from '../vm/snapshot.js';
import { browserPlatform } from './platform.js';

export interface RunRequest {
  type: 'run';
  module: Uint8Array;
  info: InstrumentInfo;
  /** argv, including argv[0] (ignored when resuming: the checkpoint holds them) */
  args: string[];
  /** "K=V" strings (ignored when resuming) */
  env: string[];
  /**
   * Continue from a checkpoint instead of starting: the encoded checkpoint files of one chain, oldest (the full
   * one) first; a single full checkpoint is a chain of one. Output then holds only what follows the checkpoint.
   */
  resume?: Uint8Array[];
  /** checkpoint at the first yield after each of these fuel values */
  checkpointAtFuel?: number[];
  /** stop at the first checkpoint (suspend) instead of continuing */
  suspend?: boolean;
  /**
   * Stored in every checkpoint's header (`meta`), e.g. runtime-node's CheckpointMeta so that `resume()` on Node can
   * continue a checkpoint taken here. A numeric `elapsedMs` is advanced by the time this job ran in this worker.
   */
  meta?: Record<string, unknown>;
}

export type WorkerMessage =
  | { type: 'stdout' | 'stderr'; bytes: Uint8Array }
  | { type: 'checkpoint'; seq: number; bytes: Uint8Array; stdoutBytes: number; stderrBytes: number; fuelUsed: number }
  | {
      type: 'done';
      exitCode: number | null;
      trap?: string;
      suspended?: boolean;
      fuelUsed: number;
      /** wall time the job ran in this worker (ms), excluding compilation */
      elapsedMs: number;
      pageEngine: string;
    }
  | { type: 'error'; message: string };

interface WorkerScope {
  onmessage: ((ev: { data: RunRequest }) => void) | null;
  postMessage(m: WorkerMessage, transfer?: ArrayBuffer[]): void;
}
const scope = self as unknown as WorkerScope;
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => scope.postMessage(m, transfer);

scope.onmessage = async (ev: { data: RunRequest }) => {
  const req = ev.data;
  try {
    const job = await compileInstrumented(req.module, req.info);
    const pages = createPageEngine('auto');
    const chain = req.resume?.length ? req.resume.map((b) => decodeSnapshot(b, pages)) : undefined;
    const from = chain ? snapshotFromChain(chain) : undefined;
    // the kernel hands over a fresh copy of each write (fd-ops slices it), so it can be transferred, not cloned
    const proc = new Process(
      {
        args: from ? [] : req.args,
        env: from ? [] : req.env,
        mounts: [],
        platform: browserPlatform(),
        stdout: (bytes) => post({ type: 'stdout', bytes }, [bytes.buffer as ArrayBuffer]),
        stderr: (bytes) => post({ type: 'stderr', bytes }, [bytes.buffer as ArrayBuffer]),
      },
      from?.kernel,
    );
    const points = [...(req.checkpointAtFuel ?? [])].sort((a, b) => a - b);
    const elapsedBase = typeof req.meta?.elapsedMs === 'number' ? req.meta.elapsedMs : undefined;
    const onCheckpoint = (s: Snapshot) => {
      const meta = req.meta && elapsedBase !== undefined ? { ...req.meta, elapsedMs: elapsedBase + m.elapsedMs } : req.meta;
      const enc = encodeSnapshot(s, pages, { createdAtMs: Date.now(), ...(meta ? { meta } : {}) });
      const bytes = concatChunks(enc.chunks); // always a fresh buffer: safe to transfer
      post(
        { type: 'checkpoint', seq: s.seq, bytes, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, fuelUsed: s.fuelUsed },
        [bytes.buffer as ArrayBuffer],
      );
    };
    const m: Machine = new Machine(job, proc, {
      pages,
      now: () => performance.now(),
      policy: (mm) => {
        let due = false;
        while (points.length && mm.fuelUsed >= points[0]!) {
          points.shift();
          due = true;
        }
        return due ? (req.suspend ? 'suspend' : 'checkpoint') : 'continue';
      },
      onCheckpoint,
    });
    if (chain && from) m.restore(from, (dst) => applyChain(chain, dst));
    let out: RunOutcome;
    try {
      out = m.run();
    } catch (e) {
      // limits and kernel traps may surface outside the guest call (as in runtime-node/run.ts)
      if (e instanceof Trap) out = { kind: 'trap', trap: e };
      else throw e;
    }
    if (out.kind === 'suspended') onCheckpoint(out.snapshot);
    post({
      type: 'done',
      exitCode: out.kind === 'exit' ? out.code : null,
      ...(out.kind === 'trap' ? { trap: out.trap.message } : {}),
      ...(out.kind === 'suspended' ? { suspended: true } : {}),
      fuelUsed: m.fuelUsed,
      elapsedMs: m.elapsedMs,
      pageEngine: pages.kind,
    });
  } catch (e) {
    post({ type: 'error', message: `${(e as Error).name}: ${(e as Error).message}` });
  }
};
