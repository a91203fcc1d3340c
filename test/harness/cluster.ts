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

const dec = new TextDecoder();

/**
 * Start a grid, run one job on it, close the grid. `during` runs while the job runs (with the grid and job id) and
 * is awaited before the grid closes.
 */
export async function runOnGrid(
  opts: GridOptions,
  job: Omit<JobSpec, 'stdout' | 'stderr'>,
  during?: (grid: Grid, jobId: string, stdoutSoFar: () => string) => Promise<void> | void,
): Promise<GridRun> {
  const grid = await Grid.start({ heartbeatTimeoutMs: 10_000, ...opts });
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  try {
    const { id, done } = await grid.submit({ ...job, stdout: (b) => out.push(b.slice()), stderr: (b) => err.push(b.slice()) });
    const soFar = () => dec.decode(concatChunks(out));
    const side = during ? Promise.resolve(during(grid, id, soFar)) : Promise.resolve();
    const result = await done;
    await side;
    return { result, stdout: out.map((b) => dec.decode(b, { stream: true })).join(''), stderr: err.map((b) => dec.decode(b, { stream: true })).join(''), grid };
  } finally {
    await grid.close();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { prng } from './util.js';
