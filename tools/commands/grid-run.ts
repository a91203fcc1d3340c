import cliProgress from 'cli-progress';
import { Grid, type JobResult, type ProcView } from '../../runtime-node/grid/coordinator.js';
import { saveJobRecord, serveControl } from '../../runtime-node/grid/control.js';
import { DiskModuleCache } from '../../runtime-node/cache.js';
import { writeAllSync } from '../../runtime-node/run.js';
import { prepareJob } from '../../vm/job.js';
import { hostInstrumentOptions } from '../../runtime-node/wasm-opt.js';
import { ExitCode } from '../exit-codes.js';
import { formatBytes } from '../units.js';
import { describeFailure } from './failure.js';
import { readBytes } from '../../runtime-node/files.js';
export { describeFailure };

export interface GridRunOptions {
  file: string;
  args: string[];
  env: string[];
  dirs: Array<{ host: string; guest: string; readonly: boolean }>;
  memDirs: string[];
  limits: { maxMemoryBytes?: number; fuel?: number; timeoutMs?: number };
  nodes: number;
  parts?: number;
  isolate: 'thread' | 'process';
  migrateEveryMs?: number;
  precopy?: boolean;
  trackDirty?: boolean;
  priority?: number;
  lookahead?: number;
  checkpointIntervalMs?: { min: number; max: number };
  json?: boolean;
  cache?: boolean;
}

/**
 * Does the module call spawn or fork (then it runs as one root process by default, not as N ranks)? Asked of the
 * prepared (instrumented, compiled) job, which prepareJob keeps in memory: the grid's submit reuses it, so the
 * module is not compiled twice.
 */
async function spawnsChildren(bytes: Uint8Array, cache: boolean, trackDirty: boolean): Promise<boolean> {
  const job = await prepareJob(bytes, { ...(cache ? { cache: new DiskModuleCache() } : {}), instrument: hostInstrumentOptions(bytes, trackDirty ? { dirtyPages: true } : {}) });
  return WebAssembly.Module.imports(job.module).some((i) => i.module === 'gridvm' && (i.name === 'spawn' || i.name === 'fork'));
}

/** Write to fd 1 or 2; once the reader has gone (EPIPE: `gridvm run ... | head`), drop the rest quietly. */
function sinkTo(fd: 1 | 2): (b: Uint8Array) => void {
  let closed = false;
  return (b) => {
    if (closed) return;
    try {
      writeAllSync(fd, b);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
      closed = true;
    }
  };
}

/** `gridvm run --nodes N`: a local grid of N nodes runs the job; returns the CLI exit code. */
export async function gridRun(o: GridRunOptions): Promise<number> {
  const bytes = readBytes(o.file);
  const parts = o.parts ?? ((await spawnsChildren(bytes, o.cache !== false, !!(o.trackDirty || o.precopy))) ? 1 : o.nodes);
  const grid = await Grid.start({
    nodes: o.nodes, isolate: o.isolate, ...(o.cache === false ? { cache: false } : {}), ...(o.lookahead !== undefined ? { lookahead: o.lookahead } : {}),
    ...(o.checkpointIntervalMs ? { checkpointPolicy: { w: 0.5, minMs: o.checkpointIntervalMs.min, maxMs: o.checkpointIntervalMs.max, initialMs: o.checkpointIntervalMs.min, exportEvery: 2 } } : {}),
  });
  const control = await serveControl(grid);
  const stop = async () => {
    await control.close();
    await grid.close();
  };
  const onSignal = () => {
    void stop().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let bar: cliProgress.SingleBar | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    const { id, done } = await grid.submit({
      wasm: bytes, name: o.file.split('/').pop()!, args: o.args, env: o.env, dirs: o.dirs, memDirs: o.memDirs, limits: o.limits, parts,
      ...(o.priority !== undefined ? { priority: o.priority } : {}),
      ...(o.migrateEveryMs ? { migrateEveryMs: o.migrateEveryMs } : {}),
      ...(o.precopy ? { precopy: true } : {}),
      ...(o.trackDirty ? { trackDirty: true } : {}),
      stdout: sinkTo(1), stderr: sinkTo(2),
    });
    if (process.stderr.isTTY && !o.json && parts > 1) {
      bar = new cliProgress.SingleBar(
        { format: `${id} [{bar}] {value}/{total} parts done | running {running} queued {queued}`, stream: process.stderr, clearOnComplete: true, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(parts, 0, { running: 0, queued: parts });
      ticker = setInterval(() => {
        const ps = grid.ps().filter((p) => p.job === id);
        bar!.update(ps.filter((p) => ['exited', 'failed', 'killed'].includes(p.state)).length, {
          running: ps.filter((p) => p.state === 'running').length, queued: ps.filter((p) => p.state === 'queued').length,
        });
      }, 200);
    }
    const r = await done;
    if (ticker) clearInterval(ticker);
    bar?.stop();
    saveJobRecord(r);
    if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else reportFailures(r);
    return exitCodeOf(r);
  } finally {
    if (ticker) clearInterval(ticker);
    bar?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stop();
  }
}

function exitCodeOf(r: JobResult): number {
  const failed = r.processes.find((p) => p.failure);
  if (failed?.failure?.reason === 'timeout') return ExitCode.TIMEOUT;
  if (failed && failed.failure?.why !== 'killed' && failed.exitCode === ExitCode.TRAP) return ExitCode.TRAP;
  return r.exitCode;
}

/** For a failed process: why, when, where, and with which resources. */
function reportFailures(r: JobResult): void {
  for (const p of r.processes) if (p.failure) process.stderr.write(`${describeFailure(p).join('\n')}\n`);
}
