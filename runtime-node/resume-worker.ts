// Worker thread entry: resume one checkpoint and post the result (used by tests and, later, by nodes).
import { parentPort, workerData } from 'node:worker_threads';
import { resume } from './run.js';

export interface ResumeWorkerData {
  checkpoint: string;
  stdin?: Uint8Array;
}

const d = workerData as ResumeWorkerData;
resume(d.checkpoint, { stdout: 'buffer', stderr: 'buffer', ...(d.stdin ? { stdin: d.stdin } : {}) }).then(
  (r) => parentPort!.postMessage({ ok: true, result: r }),
  (e: Error) => parentPort!.postMessage({ ok: false, error: `${e.name}: ${e.message}` }),
);
