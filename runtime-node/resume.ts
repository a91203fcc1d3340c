import type { RunResult } from './run.js';
import { JOB_STACK_MB } from './job-thread.js';
import { startWorker } from './workers.js';

/** Resume a checkpoint in a fresh worker thread (a new V8 isolate: nothing is shared with this one). */
export function resumeInWorker(checkpoint: string, opts: { stdin?: Uint8Array } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const w = startWorker('resume-worker', { workerData: { checkpoint, ...opts }, resourceLimits: { stackSizeMb: JOB_STACK_MB } });
    let settled = false;
    w.once('message', (m: { ok: boolean; result?: RunResult; error?: string }) => {
      settled = true;
      if (m.ok) resolve(m.result!);
      else reject(new Error(m.error));
      void w.terminate();
    });
    w.once('error', (e) => {
      if (!settled) reject(e);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`resume worker exited with code ${code} before answering`));
    });
  });
}
