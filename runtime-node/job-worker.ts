// Worker thread entry: run or resume one job with the thread's stdio (fd 0/1/2 are shared with the process) and a
// large native stack (Asyncify-instrumented code has big frames; deep recursion needs room).
import { parentPort, workerData } from 'node:worker_threads';
import { resume, run, type RunOptions, type RunResult } from './run.js';

export interface JobWorkerData {
  kind: 'run' | 'resume';
  target: string;
  opts: RunOptions;
}

export type JobWorkerMessage =
  | { type: 'progress'; stage: string; fraction: number }
  | { type: 'done'; result: RunResult }
  | { type: 'error'; name: string; message: string };

const d = workerData as JobWorkerData;
const post = (m: JobWorkerMessage) => parentPort!.postMessage(m);
const opts: RunOptions = {
  ...d.opts,
  instrument: { ...(d.opts.instrument ?? {}), onProgress: (stage, fraction) => post({ type: 'progress', stage, fraction }) },
};
(d.kind === 'run' ? run(d.target, opts) : resume(d.target, opts)).then(
  (result) => post({ type: 'done', result }),
  (e: Error) => post({ type: 'error', name: e.name, message: e.message }),
);
