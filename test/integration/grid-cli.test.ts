// The grid from the command line, as a user drives it: `gridvm run --nodes`, then `gridvm ps`, `gridvm migrate`,
// `gridvm kill` and `gridvm status` from other commands (through the grid's control socket in $GRIDVM_HOME/run).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { guestPath, hasClang } from '../harness/guests.js';
import { sleep } from '../harness/cluster.js';

const cli = fileURLToPath(new URL('../../bin/gridvm.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'gridvm-gridcli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env: NodeJS.ProcessEnv = { ...process.env, GRIDVM_HOME: join(tmp, 'home'), GRIDVM_CACHE_DIR: join(tmp, 'cache') };

function gridvmSync(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function start(args: string[]): { child: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { child, out: () => out, err: () => err, exit };
}

async function until<T>(f: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface PsJson {
  grids: Array<{ pid: number; jobs: string[]; nodes: Array<{ id: string; alive: boolean }> }>;
  processes: Array<{ gpid: number; job: string; state: string; node: string | null; migrations: number }>;
}
const ps = (all = false): PsJson => JSON.parse(gridvmSync(['ps', '--json', ...(all ? ['--all'] : [])]).stdout) as PsJson;

describe.runIf(hasClang())('gridvm ps / migrate / kill / status', () => {
  it('a running job is listed, migrated to another node, killed, and its status kept', async () => {
    const job = start(['run', guestPath('endless'), '--nodes', '2', '--parts', '1']);
    try {
      await until(() => (job.out().includes('endless: started') ? true : undefined), 'the job to start');
      const p = await until(() => ps().processes.find((x) => x.state === 'running'), 'a running process');
      const other = p.node === 'n1' ? 'n2' : 'n1';
      const m = gridvmSync(['migrate', String(p.gpid), other]);
      expect(m.code, m.stderr).toBe(0);
      const moved = await until(() => ps().processes.find((x) => x.gpid === p.gpid && x.node === other && x.state === 'running'), 'the migration');
      expect(moved.migrations).toBe(1);
      // the table form lists it too
      const table = gridvmSync(['ps']);
      expect(table.stdout).toMatch(new RegExp(`^${p.gpid}\\s+${p.job}\\s+endless\\.wasm\\s+0\\s+running\\s+${other}\\b`, 'm'));
      // bad requests say what was wrong
      const bad = gridvmSync(['migrate', String(p.gpid), 'n99']);
      expect(bad.code).toBe(125);
      expect(bad.stderr).toMatch(/no live node n99/);
      expect(gridvmSync(['kill', '999999']).stderr).toMatch(/no running grid has a process with GPID 999999/);
      // draining its node (0 slots) moves it back to the node with a free slot
      expect(gridvmSync(['slots', other, 'x']).stderr).toMatch(/invalid slot count "x": use an integer >= 0/);
      expect(gridvmSync(['slots', 'n99', '1']).stderr).toMatch(/no running grid has a node n99/);
      const dr = gridvmSync(['slots', other, '0']);
      expect(dr.code, dr.stderr).toBe(0);
      const back = await until(() => ps().processes.find((x) => x.gpid === p.gpid && x.node === p.node && x.state === 'running'), 'the move off the drained node');
      expect(back.migrations).toBe(2);
      expect(ps().grids[0]!.nodes.find((n) => n.id === other)!.slots).toBe(0);
      const k = gridvmSync(['kill', String(p.gpid)]);
      expect(k.code, k.stderr).toBe(0);
      expect(await job.exit).toBe(137);
      const st = gridvmSync(['status', p.job, '--json']);
      expect(st.code).toBe(0);
      const s = JSON.parse(st.stdout) as {
        live: boolean;
        processes: Array<{ gpid: number; state: string; node: string | null; visited: string[]; cpuMs: number; memoryPeakBytes: number; checkpoints: number; migrations: number; failure?: { why: string } }>;
      };
      expect(s.live).toBe(false);
      expect(s.processes[0]!.gpid).toBe(p.gpid);
      expect(s.processes[0]!.state).toBe('killed');
      expect(s.processes[0]!.visited).toEqual([p.node, other, p.node]);
      expect(s.processes[0]!.cpuMs).toBeGreaterThan(0);
      expect(s.processes[0]!.memoryPeakBytes).toBeGreaterThanOrEqual(65536);
      // each migration froze it at a checkpoint
      expect(s.processes[0]!.checkpoints).toBeGreaterThanOrEqual(2);
      expect(s.processes[0]!.migrations).toBe(2);
      expect(s.processes[0]!.failure?.why).toBe('killed');
      expect(gridvmSync(['status', p.job]).stdout).toMatch(/ended with exit code 137/);
    } finally {
      job.child.kill('SIGKILL');
    }
  }, 120_000);

  it('fork-delay from the CLI: ps shows queued parts while a job has 4x more parts than slots', async () => {
    // (parts of a few seconds each: under load a `gridvm ps` takes a second or more, and with 12000000 the parts
    // once all ended before ps saw one queued next to one placed)
    const job = start(['run', guestPath('rank'), '--nodes', '1', '--parts', '4', '--', '32000000']);
    try {
      const seen = await until(() => {
        const q = ps(true).processes;
        // after the first scheduling round (a part placed): before it, every part is queued at the origin
        return q.length === 4 && q.some((x) => x.state === 'queued') && q.some((x) => x.state !== 'queued') ? q : undefined;
      }, 'queued parts');
      // one slot: at most one part runs; the others wait (or, by the time ps answered, have finished)
      expect(seen.filter((x) => x.state === 'running' || x.state === 'starting').length).toBeLessThanOrEqual(1);
      expect(seen.every((x) => ['queued', 'running', 'starting', 'exited'].includes(x.state))).toBe(true);
      // (with the default lookahead the queued parts wait staged on the node, shown with it)
      expect(seen.filter((x) => x.state === 'queued').every((x) => x.node === 'n1')).toBe(true);
      expect(await job.exit).toBe(0);
      expect(job.out().trim().split('\n').map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['rank 0/4', 'rank 1/4', 'rank 2/4', 'rank 3/4']);
    } finally {
      job.child.kill('SIGKILL');
    }
  }, 120_000);

  it('--lookahead 0: queued parts wait at the origin, on no node; a bad value is refused', async () => {
    // (parts of ~4 s: under load a `gridvm ps` takes a second or more, and 1.5 s parts once ended before it saw one queued)
    const job = start(['run', guestPath('rank'), '--nodes', '1', '--parts', '3', '--lookahead', '0', '--', '32000000']);
    try {
      const seen = await until(() => {
        const q = ps(true).processes;
        return q.length === 3 && q.some((x) => x.state === 'queued') ? q : undefined;
      }, 'queued parts');
      expect(seen.filter((x) => x.state === 'queued').every((x) => x.node === null)).toBe(true);
      expect(await job.exit).toBe(0);
    } finally {
      job.child.kill('SIGKILL');
    }
    const bad = gridvmSync(['run', guestPath('rank'), '--nodes', '2', '--lookahead', '-1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/invalid --lookahead "-1": use an integer >= 0/);
  }, 120_000);

  it('gridvm bench migrate: a table, a chart and JSON of real migrations; bad flags are refused', () => {
    const t = gridvmSync(['bench', 'migrate', '--sizes', '1,2', '--isolate', 'thread', '--precopy', 'off', '--reps', '1']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^memory\s+nodes\s+pre-copy.*downtime median ms.*memcpy of shipped ms/m);
    expect(t.stdout).toMatch(/^1 MiB\s+threads\s+off\s+\d+\.\d+/m);
    expect(t.stdout).toMatch(/^2 MiB\s+threads\s+off\s+\d+\.\d+/m);
    expect(t.stdout).toContain('median downtime (ms) against memory (MiB)');
    expect(t.stdout).toContain('threads, pre-copy off');
    const j = gridvmSync(['bench', 'migrate', '--sizes', '1', '--isolate', 'thread', '--precopy', 'off', '--reps', '2', '--json']);
    expect(j.code, j.stderr).toBe(0);
    const r = JSON.parse(j.stdout) as { reps: number; results: Array<{ mib: number; isolate: string; precopy: boolean; samples: Array<{ downtimeMs: number; bytesShipped: number; from: string; to: string }> }> };
    expect(r.reps).toBe(2);
    expect(r.results).toHaveLength(1);
    const c = r.results[0]!;
    expect([c.mib, c.isolate, c.precopy]).toEqual([1, 'thread', false]);
    expect(c.samples).toHaveLength(2);
    for (const x of c.samples) {
      expect(x.downtimeMs).toBeGreaterThan(0);
      // the whole job memory (1 MiB and the module's own pages) crossed in the freeze, between the two nodes
      expect(x.bytesShipped).toBeGreaterThanOrEqual(1024 * 1024);
      expect(x.from).not.toBe(x.to);
    }
    const bad = gridvmSync(['bench', 'migrate', '--sizes', 'x']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/invalid --sizes "x"/);
    expect(gridvmSync(['bench', 'migrate', '--precopy', 'maybe']).stderr).toMatch(/invalid --precopy "maybe": use both, on or off/);
  }, 120_000);

  it('status of an unknown job is an error', () => {
    const r = gridvmSync(['status', 'job-nosuch']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/no job job-nosuch/);
  });
});
