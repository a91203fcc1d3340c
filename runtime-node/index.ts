// gridvm for Node: run and resume jobs in-process, checkpoints on disk, worker threads.
export { run, resume, type RunOptions, type RunResult, type OutputSink } from './run.js';
export { CheckpointWriter, loadChain, resolveCheckpointPath, type CheckpointMeta } from './checkpoints.js';
export { DiskModuleCache, defaultCacheDir, writeAtomic } from './cache.js';
export { resumeInWorker } from './resume.js';
export * from '../vm/index.js';
export { Process, Errno, KernelError, Trap, ProcExit } from '../kernel/index.js';
