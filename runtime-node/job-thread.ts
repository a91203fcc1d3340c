import type { JobWorkerData, JobWorkerMessage } from './job-worker.js';
import type { RunOptions, RunResult } from './run.js';
import { startWorker } from './workers.js';

/** Native stack for job threads, MiB: Asyncify frames are large, and guests recurse thousands of levels deep. */
export const JOB_STACK_MB = 256;

/**
 * Run (or resume) a job on its own worker thread with a large stack, as the CLI does. Options must be
 * structured-cloneable (no callbacks) except `onProgress`, which receives instrumentation progress.
 */
export function runInThread(
  kind: 'run' | 'resume',
  target: string,
  opts: RunOptions,
  onProgress?: (stage: string, fraction: number) => void,
): Promise<RunResult> {
  const { instrument, ...rest } = opts;
  const data: JobWorkerData = { kind, target, opts: { ...rest, ...(instrument ? { instrument: { ...(instrument.optimizeLevel !== undefined ? { optimizeLevel: instrument.optimizeLevel } : {}), ...(instrument.dirtyPages ? { dirtyPages: true } : {}) } } : {}) } };
  return new Promise((resolve, reject) => {
    const w = startWorker('job-worker', { workerData: data, resourceLimits: { stackSizeMb: JOB_STACK_MB }, stdout: false, stderr: false });
    let settled = false;
    w.on('message', (m: JobWorkerMessage) => {
      if (m.type === 'progress') onProgress?.(m.stage, m.fraction);
      else {
        settled = true;
        if (m.type === 'done') resolve(m.result);
        else reject(Object.assign(new Error(m.message), { name: m.name }));
        void w.terminate();
      }
    });
    w.once('error', (e) => {
      if (!settled) reject(e);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`job thread exited with code ${code} before finishing`));
    });
  });
}
