// The Grid VM: load, validate, instrument, instantiate, run, snapshot, restore. Platform-free.
// vm/runtime.ts is the part that runs already-instrumented modules without loading binaryen.
export * from './runtime.js';
export { instrument, SUSPENDING_IMPORTS } from './instrument.js';
export { prepareJob, moduleCacheKey, checkWasmHeader, type ModuleCache } from './job.js';
export type { GridCall, GridResult } from '../kernel/index.js';
