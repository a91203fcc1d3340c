import type { Command } from 'commander';
import type { RunResult } from '../../runtime-node/run.js';
import { runInThread } from '../../runtime-node/job-thread.js';
import { ExitCode } from '../exit-codes.js';
import { parseDuration, parseSize } from '../units.js';
import { instrumentProgress } from '../progress.js';

interface RunFlags {
  dir: string[];
  memDir: string[];
  env: string[];
  maxMemory?: string;
  fuel?: string;
  timeout?: string;
  checkpointEvery?: string;
  checkpointDir?: string;
  delta?: boolean;
  json?: boolean;
  cache?: boolean;
  nodes?: string;
  parts?: string;
  lookahead?: string;
  isolate?: string;
  migrateEvery?: string;
  precopy?: boolean;
  trackDirty?: boolean;
  priority?: string;
  checkpointInterval?: string;
}

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`invalid ${flag} "${v}": use a positive integer`);
  return n;
}

function nonNegativeInt(v: string, flag: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new Error(`invalid ${flag} "${v}": use an integer >= 0`);
  return n;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function parseDirs(specs: string[]): Array<{ host: string; guest: string; readonly: boolean }> {
  return specs.map((spec) => {
    let s = spec;
    let readonly = false;
    if (s.endsWith(':ro') && !s.endsWith('::ro')) {
      readonly = true;
      s = s.slice(0, -3);
    }
    const parts = s.split('::');
    if (parts.length === 1) return { host: parts[0]!, guest: parts[0]!, readonly };
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`invalid --dir "${spec}": use HOST::GUEST, HOST::GUEST:ro or DIR`);
    return { host: parts[0], guest: parts[1], readonly };
  });
}

function limits(f: RunFlags) {
  return {
    ...(f.maxMemory ? { maxMemoryBytes: parseSize(f.maxMemory) } : {}),
    ...(f.fuel ? { fuel: Number(f.fuel) } : {}),
    ...(f.timeout ? { timeoutMs: parseDuration(f.timeout) } : {}),
    ...(f.checkpointEvery ? { checkpointEveryMs: parseDuration(f.checkpointEvery) } : {}),
    ...(f.checkpointDir ? { checkpointDir: f.checkpointDir } : {}),
    ...(f.delta ? { delta: true } : {}),
  };
}

/** Report how the job ended on stderr (or as JSON on stdout) and return the process exit code. */
export function finish(r: RunResult, json: boolean | undefined): number {
  let code: number;
  if (r.trap) code = r.trap.reason === 'timeout' ? ExitCode.TIMEOUT : ExitCode.TRAP;
  else if (r.suspended) code = ExitCode.SUSPENDED;
  else code = r.exitCode ?? ExitCode.ERROR;
  if (json) {
    process.stdout.write(
      JSON.stringify({
        exitCode: r.exitCode,
        ...(r.trap ? { trap: r.trap } : {}),
        ...(r.suspended ? { suspended: true } : {}),
        fuelUsed: r.fuelUsed,
        checkpoints: r.checkpoints,
        lastCheckpoint: r.lastCheckpoint ?? null,
        memoryPeakBytes: r.memoryPeakBytes,
        elapsedMs: Math.round(r.elapsedMs),
        moduleHash: r.moduleHash,
      }) + '\n',
    );
  } else if (r.trap) {
    process.stderr.write(`gridvm: ${r.trap.message}\n`);
    for (const f of r.trap.stack) process.stderr.write(`    at ${f}\n`);
  } else if (r.suspended) {
    process.stderr.write(`gridvm: suspended to ${r.lastCheckpoint ?? 'a checkpoint'}; continue with: gridvm resume ${r.lastCheckpoint ?? ''}\n`);
  }
  return code;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a WASI job (a .wasm command module) on the embedded grid VM')
    .argument('<job.wasm>', 'the WebAssembly module to run')
    .argument('[args...]', 'arguments passed to the job (put them after --)')
    .option('--dir <HOST::GUEST>', 'grant a host directory to the job (HOST::GUEST, append :ro for read-only)', collect, [])
    .option('--mem-dir <GUEST>', 'give the job an in-memory directory (saved in checkpoints)', collect, [])
    .option('--env <K=V>', 'set an environment variable for the job', collect, [])
    .option('--max-memory <SIZE>', 'largest linear memory the job may have (e.g. 256MiB)')
    .option('--fuel <N>', 'stop the job after N units of fuel (loop iterations and recursive calls)')
    .option('--timeout <DUR>', 'stop the job after this much running time (e.g. 30s)')
    .option('--checkpoint-every <DUR>', 'checkpoint the running job at this interval (e.g. 500ms)')
    .option('--checkpoint-dir <DIR>', 'where checkpoints are written', undefined)
    .option('--delta', 'write checkpoints after the first as deltas of the previous one')
    .option('--track-dirty', 'instrument stores to track written pages: checkpoints and deltas copy only what changed (costs a little on store-heavy code; implied by --precopy)')
    .option('--no-cache', 'do not use the on-disk cache of instrumented modules')
    .option('--json', 'print a JSON summary on stdout after the job (job output still streams)')
    .option('--nodes <N>', 'run on a local grid of N nodes (rank-aware jobs run as N parts, GRIDVM_RANK/GRIDVM_SIZE)')
    .option('--parts <P>', 'with --nodes: run the job as P rank-aware parts (default N; 1 for jobs that spawn or fork)')
    .option('--isolate <KIND>', 'with --nodes: nodes are worker "thread"s (default) or OS "process"es')
    .option('--migrate-every <DUR>', 'with --nodes: move each running process to another node at this interval')
    .option('--precopy', 'with --migrate-every: migrate with pre-copy (ship memory while running, freeze for the delta)')
    .option('--priority <N>', 'with --nodes: scheduling priority (higher first)')
    .option('--lookahead <N>', 'with --nodes: fresh processes each node holds queued behind its running ones, to start the moment one ends (default 16, at most 31 per slot; 0 = off)')
    .option('--checkpoint-interval <MIN:MAX>', 'with --nodes: bounds of the adaptive checkpoint interval (e.g. 200ms:5s)')
    .action(async (file: string, args: string[], f: RunFlags) => {
      if (f.checkpointEvery && !f.checkpointDir) f.checkpointDir = 'gridvm-checkpoints';
      for (const e of f.env) if (!e.includes('=')) throw new Error(`invalid --env "${e}": use KEY=VALUE`);
      if (f.nodes || f.parts || f.isolate || f.migrateEvery || f.lookahead !== undefined) {
        if (f.isolate && f.isolate !== 'thread' && f.isolate !== 'process') throw new Error(`invalid --isolate "${f.isolate}": use thread or process`);
        if (f.checkpointEvery || f.checkpointDir) throw new Error('--checkpoint-every/--checkpoint-dir apply to single-node runs; a grid checkpoints adaptively (--checkpoint-interval)');
        let ci: { min: number; max: number } | undefined;
        if (f.checkpointInterval) {
          const [a, b] = f.checkpointInterval.split(':');
          ci = { min: parseDuration(a!), max: parseDuration(b ?? a!) };
          if (!(ci.min > 0 && ci.max >= ci.min)) throw new Error(`invalid --checkpoint-interval "${f.checkpointInterval}": use MIN:MAX with 0 < MIN <= MAX`);
        }
        const { gridRun } = await import('./grid-run.js');
        const l = limits(f);
        process.exitCode = await gridRun({
          file, args, env: f.env, dirs: parseDirs(f.dir), memDirs: f.memDir,
          limits: { ...(l.maxMemoryBytes !== undefined ? { maxMemoryBytes: l.maxMemoryBytes } : {}), ...(l.fuel !== undefined ? { fuel: l.fuel } : {}), ...(l.timeoutMs !== undefined ? { timeoutMs: l.timeoutMs } : {}) },
          nodes: f.nodes ? positiveInt(f.nodes, '--nodes') : 1,
          ...(f.parts ? { parts: positiveInt(f.parts, '--parts') } : {}),
          isolate: (f.isolate as 'thread' | 'process' | undefined) ?? 'thread',
          ...(f.migrateEvery ? { migrateEveryMs: parseDuration(f.migrateEvery) } : {}),
          ...(f.precopy ? { precopy: true } : {}),
          ...(f.trackDirty ? { trackDirty: true } : {}),
          ...(f.priority ? { priority: Number(f.priority) } : {}),
          ...(f.lookahead !== undefined ? { lookahead: nonNegativeInt(f.lookahead, '--lookahead') } : {}),
          ...(ci ? { checkpointIntervalMs: ci } : {}),
          ...(f.json ? { json: true } : {}),
          ...(f.cache === false ? { cache: false } : {}),
        });
        return;
      }
      const progress = instrumentProgress();
      const r = await runInThread('run', file, {
        args,
        env: f.env,
        dirs: parseDirs(f.dir),
        memDirs: f.memDir,
        stdin: 'inherit',
        stdout: 'inherit',
        stderr: 'inherit',
        ...limits(f),
        ...(f.cache === false ? { cache: false } : {}),
        ...(f.trackDirty ? { instrument: { dirtyPages: true } } : {}),
      }, progress.update);
      progress.stop();
      process.exitCode = finish(r, f.json);
    });
}

export function registerResume(program: Command): void {
  program
    .command('resume')
    .description('continue a job from a checkpoint file (or the latest one in a checkpoint directory); prints only the output that follows the checkpoint')
    .argument('<checkpoint>', 'a checkpoint file or directory')
    .option('--checkpoint-every <DUR>', 'keep checkpointing at this interval')
    .option('--checkpoint-dir <DIR>', 'where new checkpoints are written')
    .option('--delta', 'write new checkpoints as deltas')
    .option('--json', 'print a JSON summary on stdout after the job')
    .action(async (ck: string, f: RunFlags) => {
      const r = await runInThread('resume', ck, { stdin: 'inherit', stdout: 'inherit', stderr: 'inherit', ...limits({ ...f, dir: [], memDir: [], env: [] }) });
      process.exitCode = finish(r, f.json);
    });
}
