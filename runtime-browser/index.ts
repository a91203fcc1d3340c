// The browser host: Web Worker nodes running the same vm/ and kernel/ as Node.
export { browserPlatform } from './platform.js';
export type { RunRequest, WorkerMessage } from './worker.js';
