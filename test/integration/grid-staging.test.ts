// Staging (the scheduler's lookahead): a node holds fresh starts queued behind its running processes and begins
// the next the moment one ends. Tiny jobs keep their exact output; a staged start can be killed without running,
// taken back for an idle node, and does not hold up a higher-priority job.
import { describe, expect, it } from 'vitest';
import { runInThread } from '../../runtime-node/job-thread.js';
import { Grid, type JobResult } from '../../runtime-node/grid/coordinator.js';
import { sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';

const dec = new TextDecoder();

interface Submitted {
  gpid: () => number;
  done: Promise<JobResult>;
  out: () => string;
}

async function submit(grid: Grid, guest: string, args: string[], priority = 0): Promise<Submitted> {
  const chunks: Uint8Array[] = [];
  const before = new Set(grid.ps().map((p) => p.gpid));
  const { done } = await grid.submit({ wasm: guestPath(guest), args, priority, stdout: (b) => chunks.push(b.slice()) });
  const gpid = grid.ps().find((p) => !before.has(p.gpid))!.gpid;
  return { gpid: () => gpid, done, out: () => chunks.map((c) => dec.decode(c, { stream: true })).join('') };
}

async function until<T>(what: string, f: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe.runIf(hasClang())('staging: nodes hold starts behind their running processes', () => {
  it('hundreds of tiny jobs with a lookahead each print exactly their own output, and some were staged', async () => {
    const ref = dec.decode((await runInThread('run', guestPath('hello'), { args: ['job0'], env: ['GRIDVM_RANK=0', 'GRIDVM_SIZE=1'], stdout: 'buffer', stderr: 'buffer' })).stdout);
    expect(ref).toContain('argv[1]=job0\n');
    const grid = await Grid.start({ nodes: 2, lookahead: 4 });
    try {
      const jobs: Submitted[] = [];
      for (let i = 0; i < 300; i++) jobs.push(await submit(grid, 'hello', [`job${i}`]));
      let staged = 0;
      const watch = (async () => {
        while (grid.ps().some((p) => p.state !== 'exited')) {
          staged = Math.max(staged, grid.ps().filter((p) => p.state === 'queued' && p.node !== null).length);
          await sleep(1);
        }
      })();
      const results = await Promise.all(jobs.map((j) => j.done));
      await watch;
      for (let i = 0; i < jobs.length; i++) {
        expect(results[i]!.exitCode).toBe(0);
        expect(jobs[i]!.out()).toBe(ref.replace('job0', `job${i}`));
      }
      expect(staged).toBeGreaterThan(0);
      // 4 staged per node, plus per slot one that the scheduler counts as running (its slot freed) and whose
      // 'started' is still on its way
      expect(staged).toBeLessThanOrEqual(2 * (4 + 1));
    } finally {
      await grid.close();
    }
  });

  it('a lookahead beyond what a runner holds is capped: a 1-slot node stages 31, never runs two at once', async () => {
    const grid = await Grid.start({ nodes: 1, lookahead: 100 });
    try {
      const endless = await submit(grid, 'endless', []);
      await until('the endless job to run', () => (grid.ps().find((p) => p.gpid === endless.gpid())?.state === 'running' ? true : undefined));
      const tiny: Submitted[] = [];
      for (let i = 0; i < 40; i++) tiny.push(await submit(grid, 'hello', [`t${i}`]));
      const ids = new Set(tiny.map((t) => t.gpid()));
      await until('31 staged', () => (grid.ps().filter((p) => ids.has(p.gpid) && p.node === 'n1').length === 31 ? true : undefined));
      // uncapped, the node would start the starts its busy runner cannot queue on fresh runner threads at once
      await sleep(300);
      const mine = grid.ps().filter((p) => ids.has(p.gpid));
      expect(mine.filter((p) => p.state === 'queued' && p.node === 'n1')).toHaveLength(31);
      expect(mine.filter((p) => p.state === 'queued' && p.node === null)).toHaveLength(9);
      expect(grid.ps().filter((p) => p.state === 'running').map((p) => p.gpid)).toEqual([endless.gpid()]);
      expect(grid.kill(endless.gpid())).toBe(true);
      const results = await Promise.all(tiny.map((t) => t.done));
      for (let i = 0; i < tiny.length; i++) {
        expect(results[i]!.exitCode).toBe(0);
        expect(tiny[i]!.out()).toContain(`argv[1]=t${i}\n`);
      }
    } finally {
      await grid.close();
    }
  });

  it('a staged start that is killed never runs: no output, killed; the process ahead of it runs on', async () => {
    const grid = await Grid.start({ nodes: 1, lookahead: 2 });
    try {
      const long = await submit(grid, 'nbody', ['10000000']);
      await until('the long job to run', () => (grid.ps().find((p) => p.gpid === long.gpid())?.state === 'running' ? true : undefined));
      const tiny = await submit(grid, 'hello', ['x']);
      await until('the tiny job to be staged', () => {
        const p = grid.ps().find((x) => x.gpid === tiny.gpid());
        return p?.state === 'queued' && p.node === 'n1' ? true : undefined;
      });
      expect(grid.kill(tiny.gpid())).toBe(true);
      const r = await tiny.done;
      expect(r.processes[0]!.state).toBe('killed');
      expect(r.processes[0]!.failure?.message).toBe('killed before it began');
      expect(tiny.out()).toBe('');
      const l = await long.done;
      expect(l.exitCode).toBe(0);
      expect(long.out()).toContain('checksum');
    } finally {
      await grid.close();
    }
  });

  it('an idle node takes staged starts back from a busy one (work stealing)', async () => {
    const grid = await Grid.start({ nodes: 2, lookahead: 2 });
    try {
      const long = await submit(grid, 'nbody', ['25000000']);
      const short = await submit(grid, 'nbody', ['3000000']);
      await until('both to run', () => (grid.ps().filter((p) => p.state === 'running').length === 2 ? true : undefined));
      const longNode = grid.ps().find((p) => p.gpid === long.gpid())!.node!;
      const tiny = [await submit(grid, 'hello', ['a']), await submit(grid, 'hello', ['b'])];
      // one was staged behind the long job: it must not wait for it
      const results = await Promise.all(tiny.map((t) => t.done));
      expect(grid.ps().find((p) => p.gpid === long.gpid())!.state).toBe('running');
      for (const r of results) {
        expect(r.exitCode).toBe(0);
        expect(r.processes[0]!.visited).toEqual([r.processes[0]!.visited[0]]);
        expect(r.processes[0]!.visited[0]).not.toBe(longNode);
      }
      expect((await short.done).exitCode).toBe(0);
      expect((await long.done).exitCode).toBe(0);
    } finally {
      await grid.close();
    }
  });

  it('a start taken back but still queued at its runner never runs, also when its control slot is given to another', async () => {
    const grid = await Grid.start({ nodes: 1, lookahead: 2, preempt: false });
    try {
      const long = await submit(grid, 'nbody', ['10000000']);
      await until('the long job to run', () => (grid.ps().find((p) => p.gpid === long.gpid())?.state === 'running' ? true : undefined));
      const x1 = await submit(grid, 'hello', ['x1']);
      const x2 = await submit(grid, 'hello', ['x2']);
      await until('both to be staged', () => (grid.ps().filter((p) => p.state === 'queued' && p.node === 'n1').length === 2 ? true : undefined));
      // a higher-priority arrival takes both back (their starts stay queued at the busy runner)
      const high = await submit(grid, 'hello', ['high'], 5);
      await until('both to be given back', () => ([x1, x2].every((x) => grid.ps().find((p) => p.gpid === x.gpid())?.node === null) ? true : undefined));
      // x1 ends while queued; with the high one gone too, x2 is staged again, in the control slot x1 had
      expect(grid.kill(x1.gpid())).toBe(true);
      expect(grid.kill(high.gpid())).toBe(true);
      expect((await x1.done).processes[0]!.state).toBe('killed');
      await until('x2 staged again', () => (grid.ps().find((p) => p.gpid === x2.gpid())?.node === 'n1' ? true : undefined));
      const r2 = await x2.done;
      expect(r2.exitCode).toBe(0);
      expect(x2.out()).toContain('argv[1]=x2\n');
      expect(x1.out()).toBe('');
      expect(high.out()).toBe('');
      expect((await long.done).exitCode).toBe(0);
    } finally {
      await grid.close();
    }
  });

  it('a higher-priority job does not queue behind staged lower-priority ones', async () => {
    const grid = await Grid.start({ nodes: 1, lookahead: 2, preempt: false });
    try {
      const long = await submit(grid, 'nbody', ['4000000']);
      await until('the long job to run', () => (grid.ps().find((p) => p.gpid === long.gpid())?.state === 'running' ? true : undefined));
      const low = [await submit(grid, 'hello', ['low1']), await submit(grid, 'hello', ['low2'])];
      await until('the low ones to be staged', () => (grid.ps().filter((p) => p.state === 'queued' && p.node === 'n1').length === 2 ? true : undefined));
      const high = await submit(grid, 'hello', ['high'], 5);
      const ends: string[] = [];
      await Promise.all([...low, high].map((j, i) => j.done.then(() => ends.push(i === 2 ? 'high' : `low${i + 1}`))));
      expect(ends).toEqual(['high', 'low1', 'low2']);
      expect((await long.done).exitCode).toBe(0);
    } finally {
      await grid.close();
    }
  });
});
