// A grid on one machine (issue 3): rank-aware jobs over 1/2/4/8 nodes, fork-delay, live migration with
// --migrate-every, and a process's view of itself through /proc.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInThread } from '../../runtime-node/job-thread.js';
import { Grid } from '../../runtime-node/grid/coordinator.js';
import { MIGRATION_DIR } from '../../runtime-node/grid/runner-types.js';
import { runOnGrid, sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { filesOf } from '../harness/util.js';

const dec = new TextDecoder();
const tmp = mkdtempSync(join(tmpdir(), 'gridvm-grid-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const RANK_N = '3000000';

const migrationFiles = () => readdirSync(MIGRATION_DIR).filter((n) => /^gridvm-(snap|spare)-\d+-/.test(n));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function rankReference(size: number): Promise<string> {
  let out = '';
  for (let r = 0; r < size; r++) {
    const res = await runInThread('run', guestPath('rank'), { args: [RANK_N], env: [`GRIDVM_RANK=${r}`, `GRIDVM_SIZE=${size}`], stdout: 'buffer', stderr: 'buffer' });
    out += dec.decode(res.stdout);
  }
  return out;
}

describe.runIf(hasClang())('gridvm run --nodes: a rank-aware job runs as N parts', () => {
  for (const nodes of [1, 2, 4, 8]) {
    it(`--nodes ${nodes}: outputs integrated in rank order equal the reference`, async () => {
      const ref = await rankReference(nodes);
      const g = await runOnGrid({ nodes }, { wasm: guestPath('rank'), args: [RANK_N], parts: nodes });
      expect(g.result.exitCode).toBe(0);
      expect(g.stdout).toBe(ref);
      expect(g.result.outputGaps).toBe(0);
      const lines = g.stdout.trim().split('\n');
      expect(lines).toHaveLength(nodes);
      lines.forEach((l, r) => expect(l.startsWith(`rank ${r}/${nodes} `)).toBe(true));
      // placement by free capacity: each part started on its own node
      expect(new Set(g.result.processes.map((p) => p.visited[0])).size).toBe(nodes);
    });
  }

  it('fork-delay: 4x more parts than slots queue, ps shows the queued ones, and all finish in rank order', async () => {
    const ref = await rankReference(8);
    const seen: string[][] = [];
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('rank'), args: [RANK_N], parts: 8 }, async (grid) => {
      for (let i = 0; i < 40; i++) {
        const ps = grid.ps();
        seen.push(ps.map((p) => p.state));
        if (ps.length && ps.every((p) => p.state === 'exited')) break;
        await sleep(25);
      }
    });
    expect(g.stdout).toBe(ref);
    expect(g.result.exitCode).toBe(0);
    const first = seen.find((s) => s.length === 8)!;
    expect(first.filter((s) => s === 'queued').length).toBeGreaterThanOrEqual(6);
    // never more running than slots
    for (const s of seen) expect(s.filter((x) => x === 'running' || x === 'starting').length).toBeLessThanOrEqual(2);
  });
});

describe.runIf(hasClang())('live migration: --migrate-every 200ms finishes byte-identical', () => {
  const cases = [
    { guest: 'nbody', args: ['60000000'] },
    // (moved every 100 ms: fib up to 41 makes it ~2-3 s, and one run under load ended after 9 moves at 200 ms)
    { guest: 'recursion', args: ['2', '41'], everyMs: 100 },
    { guest: 'fileio', args: ['/data', '1500'], dir: true },
    { guest: 'nbody', args: ['60000000'], precopy: true },
    { guest: 'fileio', args: ['/data', '1500'], dir: true, precopy: true },
    { guest: 'malloc_churn', args: ['6', '3000000'], isolate: 'process' as const },
    // deep call stacks much of the time (Ackermann, trees 32k-88k deep; Asyncify's window at offset 0 then covers
    // up to MiBs), moved every 40 ms: each suspension writes memory straight to its file and repairs the window from
    // it (shm-files.ts). fib up to 38 makes it ~1.5 s, ~30 moves (with fib 20 it could end in 0.6 s, before the
    // 10th). The output alone would not show a bad repair (the window lies in the unused part of the shadow stack
    // at the bottom of memory): test/unit/shm-files.test.ts compares the captured state itself.
    { guest: 'recursion', args: ['16', '38'], isolate: 'process' as const, everyMs: 40 },
    // 12 MiB: each pre-copy takes a second round (a delta of the first) before the freeze
    { guest: 'memtouch', args: ['12', '6000', '300000'], precopy: true, rounds: 2 },
    // (a longer run between processes: each move there takes two pre-copy rounds and two process hops, and under
    // load 6000 steps once left room for only 9 moves)
    { guest: 'memtouch', args: ['12', '9000', '300000'], precopy: true, rounds: 2, isolate: 'process' as const },
  ];
  for (const k of cases) {
    const how = [k.precopy ? 'with pre-copy' : '', k.isolate === 'process' ? 'between OS processes' : ''].filter(Boolean).join(', ');
    it(`${k.guest}${how ? ` (${how})` : ''}${k.everyMs ? ` every ${k.everyMs} ms` : ''}: at least 10 migrations, same stdout, stderr, exit code${k.dir ? ' and files' : ''}`, async () => {
      const refDir = k.dir ? mkdtempSync(join(tmp, `${k.guest}-ref-`)) : undefined;
      const gridDir = k.dir ? mkdtempSync(join(tmp, `${k.guest}-grid-`)) : undefined;
      const ref = await runInThread('run', guestPath(k.guest), { args: k.args, stdout: 'buffer', stderr: 'buffer', ...(refDir ? { dirs: [{ host: refDir, guest: '/data' }] } : {}) });
      const shmBefore = new Set(migrationFiles());
      const g = await runOnGrid({ nodes: 2, ...(k.isolate ? { isolate: k.isolate } : {}) }, {
        wasm: guestPath(k.guest), args: k.args, migrateEveryMs: k.everyMs ?? 200, ...(k.precopy ? { precopy: true } : {}),
        ...(gridDir ? { dirs: [{ host: gridDir, guest: '/data' }] } : {}),
      }, undefined, { timeoutMs: 160_000 });
      const p = g.result.processes[0]!;
      expect(p.migrations).toBeGreaterThanOrEqual(10);
      expect(g.stdout).toBe(dec.decode(ref.stdout));
      expect(g.stderr).toBe(dec.decode(ref.stderr));
      expect(g.result.exitCode).toBe(ref.exitCode);
      if (refDir && gridDir) expect(filesOf(gridDir)).toEqual(filesOf(refDir));
      // memory files (in transit or kept as spares) of node processes that have ended: none left behind
      expect(migrationFiles().filter((n) => !shmBefore.has(n) && !alive(Number(/^gridvm-(?:snap|spare)-(\d+)-/.exec(n)![1])))).toEqual([]);
      if (k.precopy) expect(g.grid.migrationLog().every((m) => m.precopy && m.precopyBytes > 0)).toBe(true);
      // plain moves stream the memory to the target while it is captured (runner.ts streamIn): from shared memory
      // between thread nodes, from the memory file as it is written between process nodes
      expect(g.grid.migrationLog().map((m) => m.streamed)).toEqual(g.grid.migrationLog().map(() => !k.precopy));
      if (k.rounds) {
        // two rounds once the first pre-copy is 8 MiB or more (memtouch fills its 12 MiB first)
        const log = g.grid.migrationLog();
        expect(log.map((m) => m.precopyRounds)).toEqual(log.map((m) => (m.precopyBytes >= 8 << 20 ? k.rounds : 1)));
        expect(log.filter((m) => m.precopyRounds === 2).length).toBeGreaterThanOrEqual(5);
      }
    }, 180_000);
  }

  it('migrate() reports each move: memory, bytes shipped, freeze -> running; pre-copy ships only the changes', async () => {
    const records: Array<{ precopy: boolean; streamed: boolean; memoryBytes: number; bytesShipped: number; precopyBytes: number; downtimeMs: number; from: string; to: string }> = [];
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('memtouch'), args: ['32', '1000000', '2000000'] }, async (grid, id) => {
      let p = grid.ps().find((x) => x.job === id);
      for (let i = 0; i < 1000 && p?.state !== 'running'; i++) {
        await sleep(10);
        p = grid.ps().find((x) => x.job === id);
      }
      // memtouch fills its memory first: one loop iteration (a unit of fuel) per 8-byte word (under load 400 ms
      // once left pages still zero, which a pre-copy does not ship)
      for (let i = 0; i < 2000 && (grid.ps().find((x) => x.gpid === p!.gpid)?.fuelUsed ?? 0) <= (32 << 20) / 8; i++) await sleep(10);
      for (const precopy of [false, true, false, true]) {
        const cur = grid.ps().find((x) => x.gpid === p!.gpid)!;
        records.push(await grid.migrate(cur.gpid, cur.node === 'n1' ? 'n2' : 'n1', { precopy }));
      }
      grid.kill(p!.gpid); // it would run for minutes
    });
    expect(g.result.processes[0]!.state).toBe('killed');
    expect(records.length).toBe(4);
    for (const r of records) {
      expect(r.from).not.toBe(r.to);
      expect(r.memoryBytes).toBeGreaterThanOrEqual(32 << 20);
      expect(r.downtimeMs).toBeGreaterThan(0);
      if (r.precopy) {
        expect(r.precopyBytes).toBeGreaterThanOrEqual(32 << 20);
        expect(r.bytesShipped).toBeLessThan(r.memoryBytes / 4);
      } else expect(r.bytesShipped).toBeGreaterThanOrEqual(32 << 20);
      // a plain move between thread nodes streams the memory to the target while it is captured
      expect(r.streamed).toBe(!r.precopy);
    }
    expect(g.result.processes[0]!.migrations).toBe(4);
  }, 120_000);
});

describe.runIf(hasClang())('rebalancing: nodes made uneven are evened out by migration', () => {
  it('after a manual move puts both parts on one node, the scheduler moves one to the idle node; output unchanged', async () => {
    const N = '30000000';
    let ref = '';
    for (let r = 0; r < 2; r++) {
      ref += dec.decode((await runInThread('run', guestPath('rank'), { args: [N], env: [`GRIDVM_RANK=${r}`, 'GRIDVM_SIZE=2'], stdout: 'buffer' })).stdout);
    }
    let evened = false;
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('rank'), args: [N], parts: 2 }, async (grid, id) => {
      let ps = grid.ps().filter((x) => x.job === id);
      for (let i = 0; i < 2000 && !(ps.length === 2 && ps.every((x) => x.state === 'running')); i++) {
        await sleep(5);
        ps = grid.ps().filter((x) => x.job === id);
      }
      const [a, b] = ps;
      await grid.migrate(a!.gpid, b!.node!); // both on one node now, the other idle
      for (let i = 0; i < 400 && !evened; i++) {
        const now = grid.ps().filter((x) => x.job === id && x.state === 'running');
        evened = now.length === 2 && now[0]!.node !== now[1]!.node;
        if (!evened) await sleep(5);
      }
    });
    expect(evened).toBe(true);
    expect(g.stdout).toBe(ref);
    const moves = g.result.processes.reduce((n, p) => n + p.migrations, 0);
    expect(moves).toBeGreaterThanOrEqual(2); // the manual one and the scheduler's
  }, 120_000);
});

describe.runIf(hasClang())('priorities: a higher-priority job preempts a running one, which resumes later', () => {
  it('the low-priority job is suspended to a checkpoint and both finish with their reference outputs', async () => {
    const refLow = await runInThread('run', guestPath('nbody'), { args: ['20000000'], stdout: 'buffer', stderr: 'buffer' });
    const refHigh = await runInThread('run', guestPath('rank'), { args: ['2000000'], stdout: 'buffer', stderr: 'buffer' });
    const grid = await Grid.start({ nodes: 1 });
    try {
      const low = { out: '' };
      const high = { out: '' };
      const a = await grid.submit({ wasm: guestPath('nbody'), args: ['20000000'], priority: 0, stdout: (b) => (low.out += dec.decode(b)) });
      for (let i = 0; i < 200 && !grid.ps().some((p) => p.state === 'running'); i++) await sleep(10);
      const b = await grid.submit({ wasm: guestPath('rank'), args: ['2000000'], priority: 5, stdout: (x) => (high.out += dec.decode(x)) });
      const seen = new Set<string>();
      const watch = setInterval(() => {
        const lowProc = grid.ps().find((p) => p.job === a.id);
        if (lowProc) seen.add(lowProc.state);
      }, 5);
      const rb = await b.done;
      const lowAtHighEnd = grid.ps().find((p) => p.job === a.id)!;
      const ra = await a.done;
      clearInterval(watch);
      expect(rb.exitCode).toBe(0);
      expect(ra.exitCode).toBe(0);
      expect(high.out).toBe(dec.decode(refHigh.stdout));
      expect(low.out).toBe(dec.decode(refLow.stdout));
      // the low one was stopped while the high one ran, and had not finished when it ended
      expect([...seen].some((s) => s === 'suspending' || s === 'suspended' || s === 'queued')).toBe(true);
      expect(lowAtHighEnd.exitCode).toBeNull();
    } finally {
      await grid.close();
    }
  }, 120_000);
});

describe.runIf(hasClang())('overload: a node whose slots shrink suspends its excess, which resumes later', () => {
  it('setSlots(node, 1) on a node running 2 jobs, no slot free elsewhere: one is suspended to a checkpoint; both finish with their reference outputs', async () => {
    const ref = await runInThread('run', guestPath('nbody'), { args: ['12000000'], stdout: 'buffer', stderr: 'buffer' });
    const grid = await Grid.start({ nodes: 1, slotsPerNode: 2 });
    try {
      const outs = ['', ''];
      const jobs = [];
      for (let i = 0; i < 2; i++) jobs.push(await grid.submit({ wasm: guestPath('nbody'), args: ['12000000'], stdout: (b) => (outs[i] += dec.decode(b)) }));
      for (let i = 0; i < 500 && grid.ps().filter((p) => p.state === 'running').length < 2; i++) await sleep(10);
      expect(grid.ps().filter((p) => p.state === 'running')).toHaveLength(2);
      expect(() => grid.setSlots('n1', -1)).toThrow(/slots must be an integer >= 0, got -1/);
      expect(() => grid.setSlots('n9', 1)).toThrow(/no live node n9/);
      grid.setSlots('n1', 1);
      expect(grid.nodes()[0]!.slots).toBe(1);
      let both = 0;
      let suspended = 0;
      const watch = setInterval(() => {
        const ps = grid.ps();
        if (ps.filter((p) => p.state === 'running').length > 1) both++;
        if (ps.some((p) => p.state === 'suspended')) suspended++;
      }, 5);
      // once the suspension has happened, never two at once on the one slot
      for (let i = 0; i < 500 && !grid.ps().some((p) => p.state === 'suspended'); i++) await sleep(5);
      both = 0;
      const rs = await Promise.all(jobs.map((j) => j.done));
      clearInterval(watch);
      expect(suspended).toBeGreaterThan(0);
      expect(both).toBe(0);
      for (let i = 0; i < 2; i++) {
        expect(rs[i]!.exitCode).toBe(0);
        expect(outs[i]).toBe(dec.decode(ref.stdout));
      }
      // the suspended one checkpointed and ran again: two starts' worth of node visits
      expect(rs.some((r) => r.processes[0]!.checkpoints >= 1)).toBe(true);
    } finally {
      await grid.close();
    }
  }, 120_000);
});
