/**
 * Bump when the instrumentation changes: it is part of every cache key and every module hash. Its own file, free of
 * binaryen, so that a run from the module cache never loads the instrumenter (vm/job.ts imports it on a miss only).
 */
export const INSTRUMENT_VERSION = 22;
