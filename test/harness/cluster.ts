// Cluster harness: a local grid of N nodes in this process (thread nodes) or as child processes, one job on it,
// integrated stdout/stderr collected.
import { Grid, type GridOptions, type JobResult, type JobSpec } from '../../runtime-node/grid/coordinator.js';
import { concatChunks } from '../../vm/runtime.js';

export interface GridRun {
  result: JobResult;
  stdout: string;
  stderr: string;
  grid: Grid;
}

export interface RunOnGridOptions {
  /**
   * Give up on a job that has not ended after this long (default DEFAULT_RUN_TIMEOUT_MS): runOnGrid then rejects
   * with where every process and node stood, and closes the grid (its node processes end), so a job that never
   * ends fails its test instead of hanging it past its timeout (a pending runOnGrid never closed its grid, and the
   * node processes it left kept vitest from exiting). Keep it below the test's own timeout.
   */
  timeoutMs?: number;
}

/** below vitest's default test timeout (120 s, vitest.config.ts), which includes the test's reference runs */
export const DEFAULT_RUN_TIMEOUT_MS = 100_000;

const dec = new TextDecoder();

/**
 * Start a grid, run one job on it, close the grid. `during` runs while the job runs (with the grid and job id) and
 * is awaited before the grid closes.
 */
export async function runOnGrid(
  opts: GridOptions,
  job: Omit<JobSpec, 'stdout' | 'stderr'>,
  during?: (grid: Grid, jobId: string, stdoutSoFar: () => string) => Promise<void> | void,
  run: RunOnGridOptions = {},
): Promise<GridRun> {
  const grid = await Grid.start({ heartbeatTimeoutMs: 10_000, ...opts });
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const { id, done } = await grid.submit({ ...job, stdout: (b) => out.push(b.slice()), stderr: (b) => err.push(b.slice()) });
    const soFar = () => dec.decode(concatChunks(out));
    const side = during ? Promise.resolve(during(grid, id, soFar)) : Promise.resolve();
    const ms = run.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const ps = grid.ps().filter((p) => p.job === id);
        reject(new Error(`job ${id} did not end within ${ms} ms\nprocesses: ${JSON.stringify(ps)}\nnodes: ${JSON.stringify(grid.nodes())}`));
      }, ms);
    });
    const result = await Promise.race([done, timeout]);
    await Promise.race([side, timeout]);
    return { result, stdout: out.map((b) => dec.decode(b, { stream: true })).join(''), stderr: err.map((b) => dec.decode(b, { stream: true })).join(''), grid };
  } finally {
    clearTimeout(timer);
    await grid.close();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { prng } from './util.js';
