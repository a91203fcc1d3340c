import type { Command } from 'commander';
import type { MigrationRecord, ProcView } from '../../runtime-node/grid/coordinator.js';
import { ExitCode } from '../exit-codes.js';
import { formatBytes } from '../units.js';
import { describeFailure } from './failure.js';

/** the grid's control client, loaded by the commands that use it (not at every start of the CLI) */
const control = () => import('../../runtime-node/grid/control.js');

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function procRows(ps: ProcView[]): string[][] {
  return [
    ['GPID', 'JOB', 'NAME', 'RANK', 'STATE', 'NODE', 'PRIO', 'CPU', 'FUEL', 'MEM PEAK', 'CKPTS', 'MIGR'],
    ...ps.map((p) => [
      String(p.gpid), p.job, p.name, String(p.rank), p.state, p.node ?? '-', String(p.priority), `${p.cpuMs}ms`, String(p.fuelUsed),
      formatBytes(p.memoryPeakBytes), String(p.checkpoints), String(p.migrations),
    ]),
  ];
}

function gpidArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`invalid GPID "${v}": a GPID is a positive integer (see gridvm ps)`);
  return n;
}

export function registerGridControl(program: Command): void {
  program
    .command('ps')
    .description('list the processes of every grid running on this machine (`gridvm run --nodes`)')
    .option('--json', 'print JSON')
    .option('-a, --all', 'include processes that have ended')
    .action(async (f: { json?: boolean; all?: boolean }) => {
      const ctl = await control();
      const grids = await ctl.listGrids();
      const ended = ['exited', 'failed', 'killed'];
      const ps = grids.flatMap((g) => g.processes).filter((p) => f.all || !ended.includes(p.state));
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ grids: grids.map((g) => ({ pid: g.pid, jobs: g.jobs, nodes: g.nodes })), processes: ps })}\n`);
        return;
      }
      if (!grids.length) {
        process.stdout.write('no grid is running\n');
        return;
      }
      process.stdout.write(table(procRows(ps)));
    });

  program
    .command('kill')
    .description('kill a grid process by its GPID')
    .argument('<gpid>', 'the process (see gridvm ps)')
    .action(async (v: string) => {
      const ctl = await control();
      const gpid = gpidArg(v);
      const g = await ctl.gridOf(gpid);
      if (!g) throw new Error(`no running grid has a process with GPID ${gpid}`);
      const r = await ctl.controlRequest(g.socket, 'POST', `/kill/${gpid}`);
      if (r.status !== 200) throw new Error(r.body.error ?? `kill failed (${r.status})`);
    });

  program
    .command('migrate')
    .description('move a running grid process to another node; its GPID stays the same')
    .argument('<gpid>', 'the process (see gridvm ps)')
    .argument('<node>', 'the target node id (see gridvm ps --json)')
    .option('--precopy', 'ship the state while the process runs, then freeze it only to ship what changed')
    .option('--json', 'print the migration record (bytes shipped, downtime) as JSON')
    .action(async (v: string, node: string, f: { precopy?: boolean; json?: boolean }) => {
      const ctl = await control();
      const gpid = gpidArg(v);
      const g = await ctl.gridOf(gpid);
      if (!g) throw new Error(`no running grid has a process with GPID ${gpid}`);
      const r = await ctl.controlRequest(g.socket, 'POST', `/migrate/${gpid}/${encodeURIComponent(node)}${f.precopy ? '?precopy=1' : ''}`, 60_000);
      if (r.status !== 200) throw new Error(r.body.error ?? `migrate failed (${r.status})`);
      const rec = r.body.record as MigrationRecord;
      if (f.json) process.stdout.write(`${JSON.stringify(rec)}\n`);
      else process.stdout.write(`process ${gpid} moved ${rec.from} -> ${rec.to}: down ${rec.downtimeMs.toFixed(1)} ms, shipped ${formatBytes(rec.bytesShipped)}${rec.precopy ? ` (+ ${formatBytes(rec.precopyBytes)} pre-copied)` : ''} of ${formatBytes(rec.memoryBytes)}\n`);
    });

  program
    .command('slots')
    .description("change how many processes a grid node runs at once (0 drains it); its processes beyond that move to free slots elsewhere or are suspended to a checkpoint and resume later")
    .argument('<node>', 'the node id (see gridvm ps --json)')
    .argument('<n>', 'the new number of slots (an integer >= 0)')
    .option('--grid <pid>', 'the grid (its process id in gridvm ps --json), when more than one is running')
    .action(async (node: string, v: string, f: { grid?: string }) => {
      const ctl = await control();
      const n = Number(v);
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new Error(`invalid slot count "${v}": use an integer >= 0`);
      const grids = (await ctl.listGrids()).filter((g) => g.nodes.some((x) => x.id === node) && (f.grid === undefined || String(g.pid) === f.grid));
      if (!grids.length) throw new Error(`no running grid has a node ${node}${f.grid !== undefined ? ` (grid ${f.grid})` : ''}`);
      if (grids.length > 1) throw new Error(`${grids.length} running grids have a node ${node} (${grids.map((g) => g.pid).join(', ')}): pick one with --grid PID`);
      const r = await ctl.controlRequest(grids[0]!.socket, 'POST', `/slots/${encodeURIComponent(node)}/${n}`);
      if (r.status !== 200) throw new Error(r.body.error ?? `slots failed (${r.status})`);
    });

  program
    .command('status')
    .description('show a job: per process state, node, CPU time, memory, checkpoints, migrations; why a process failed')
    .argument('<job>', 'the job id (see gridvm ps, or the JSON of gridvm run --json)')
    .option('--json', 'print JSON')
    .action(async (id: string, f: { json?: boolean }) => {
      const ctl = await control();
      const s = await ctl.jobStatus(id);
      if (!s) {
        process.stderr.write(`gridvm: no job ${id} (not running here and no record in the job history)\n`);
        process.exitCode = ExitCode.ERROR;
        return;
      }
      if (f.json) {
        process.stdout.write(`${JSON.stringify(s)}\n`);
        return;
      }
      process.stdout.write(`job ${s.id}: ${s.live ? 'running' : `ended with exit code ${s.exitCode}`}${s.elapsedMs !== undefined ? ` after ${Math.round(s.elapsedMs)} ms` : ''}\n`);
      process.stdout.write(table(procRows(s.processes)));
      for (const p of s.processes) if (p.failure) process.stdout.write(`${describeFailure(p).join('\n')}\n`);
    });
}
