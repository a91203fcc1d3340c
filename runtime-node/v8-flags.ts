import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/**
 * How many background tasks V8 may compile Wasm with, for a process whose job threads should keep the cores: one
 * fewer than the cores (at least one). V8's default (up to 128 tasks on a pool of 4 threads) lets TurboFan's
 * tier-up compiles take the cores from the job itself: on these 2-core machines a single run of yosys took 2.3 s
 * plain and 5.0 s instrumented by default, 1.04 s and 1.52-1.64 s with one task (benchmarks/real/RESULTS-real.md).
 * Undefined when the process was started with the flag already (the user's choice stands).
 */
export function wasmCompileTasks(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? '', cores = availableParallelism()): number | undefined {
  if ([...execArgv, nodeOptions].some((a) => /wasm[-_]num[-_]compilation[-_]tasks/.test(a))) return undefined;
  return Math.max(1, cores - 1);
}

/**
 * Set V8's Wasm compile tasks (wasmCompileTasks) for this whole process, threads included. Call before any module is
 * compiled: the CLI at its start, a grid node process at its start. Not done by the in-process API (`run()`): the
 * embedding program's V8 flags are its own.
 */
export function limitWasmCompileTasks(): number | undefined {
  const n = wasmCompileTasks();
  if (n !== undefined) setFlagsFromString(`--wasm-num-compilation-tasks=${n}`);
  return n;
}
