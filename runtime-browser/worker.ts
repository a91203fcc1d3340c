// A Web Worker that runs one gridvm job: the same vm/ and kernel/ as on Node. It receives an instrumented module
// (instrumentation happens on the coordinator and is cached by hash), runs it, and posts back output and encoded
// checkpoints that any other node can resume.
import { Process } from '../kernel/index.js';
import { compileInstrumented } from '../vm/compiled.js';
import type { InstrumentInfo } from '../vm/instrument.js';
import { Machine } from '../vm/machine.js';
import { createPageEngine } from '../vm/pages.js';
import { concatChunks, encodeSnapshot } from '../vm/snapshot.js';
import { browserPlatform } from './platform.js';

export interface RunRequest {
  type: 'run';
  module: Uint8Array;
  info: InstrumentInfo;
  args: string[];
  env: string[];
  /** checkpoint at the first yield after each of these fuel values */
  checkpointAtFuel?: number[];
  /** stop at the first checkpoint (suspend) instead of continuing */
  suspend?: boolean;
  meta?: Record<string, unknown>;
}

export type WorkerMessage =
  | { type: 'stdout' | 'stderr'; bytes: Uint8Array }
  | { type: 'checkpoint'; seq: number; bytes: Uint8Array; stdoutBytes: number }
  | { type: 'done'; exitCode: number | null; trap?: string; suspended?: boolean; fuelUsed: number; pageEngine: string }
  | { type: 'error'; message: string };

interface WorkerScope {
  onmessage: ((ev: { data: RunRequest }) => void) | null;
  postMessage(m: WorkerMessage, transfer?: ArrayBuffer[]): void;
}
const scope = self as unknown as WorkerScope;
scope.onmessage = async (ev: { data: RunRequest }) => {
  const req = ev.data;
  try {
    const job = await compileInstrumented(req.module, req.info);
    const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => scope.postMessage(m, transfer);
    const proc = new Process({
      args: req.args,
      env: req.env,
      mounts: [],
      platform: browserPlatform(),
      stdout: (bytes) => post({ type: 'stdout', bytes }),
      stderr: (bytes) => post({ type: 'stderr', bytes }),
    });
    const pages = createPageEngine('auto');
    const points = [...(req.checkpointAtFuel ?? [])].sort((a, b) => a - b);
    const onCheckpoint = (s: import('../vm/machine.js').Snapshot) => {
      const enc = encodeSnapshot(s, pages, { createdAtMs: Date.now(), ...(req.meta ? { meta: req.meta } : {}) });
      const bytes = concatChunks(enc.chunks);
      post({ type: 'checkpoint', seq: s.seq, bytes, stdoutBytes: s.stdoutBytes }, [bytes.buffer as ArrayBuffer]);
    };
    const m = new Machine(job, proc, {
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
    const out = m.run();
    if (out.kind === 'suspended') onCheckpoint(out.snapshot);
    post({
      type: 'done',
      exitCode: out.kind === 'exit' ? out.code : null,
      ...(out.kind === 'trap' ? { trap: out.trap.message } : {}),
      ...(out.kind === 'suspended' ? { suspended: true } : {}),
      fuelUsed: m.fuelUsed,
      pageEngine: pages.kind,
    });
  } catch (e) {
    scope.postMessage({ type: 'error', message: `${(e as Error).name}: ${(e as Error).message}` } satisfies WorkerMessage);
  }
};
