// The seed's job kinds that use gridvm's own calls (issue 3): spawn + wait and remote fork with children on other
// nodes, an AssemblyScript job reading its rank, and /proc/<gpid>/status read from inside a job that migrates.
import { describe, expect, it } from 'vitest';
import { Grid } from '../../runtime-node/grid/coordinator.js';
import { runOnGrid, sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';

describe.runIf(hasClang())('grid calls on a grid of nodes', () => {
  it('spawn/wait: three children on other nodes, exit codes collected, outputs integrated after the parent', async () => {
    // children long enough (~0.1-0.2 s each) that the next spawn comes while the earlier ones still run: a child that
    // ends before the next is placed frees its slot, and the next may go to the same node (seen once under CI load)
    const g = await runOnGrid({ nodes: 3 }, { wasm: guestPath('spawn_wait'), args: ['20000'] });
    expect(g.result.exitCode).toBe(0);
    const lines = g.stdout.trim().split('\n');
    expect(lines.slice(0, 8)).toEqual([
      'spawned child 1', 'spawned child 2', 'spawned child 3',
      'child 1: exit 1', 'child 2: exit 2', 'child 3: exit 3', 'wait for more: ECHILD', 'total 6',
    ]);
    expect(lines.slice(8).map((l) => l.replace(/result \d+/, 'result N'))).toEqual(['child 1: result N', 'child 2: result N', 'child 3: result N']);
    const [root, ...kids] = g.result.processes;
    expect(kids.map((k) => k.parent)).toEqual([root!.gpid, root!.gpid, root!.gpid]);
    expect(kids.map((k) => k.exitCode)).toEqual([1, 2, 3]);
    // children ran on more than one node, and not all where the parent started
    const kidNodes = new Set(kids.map((k) => k.visited[0]));
    expect(kidNodes.size).toBeGreaterThan(1);
    expect([...kidNodes].some((n) => n !== root!.visited[0])).toBe(true);
  });

  it('spawn/wait output is the same on 1 node (children queue: fork-delay) as on 3', async () => {
    const one = await runOnGrid({ nodes: 1 }, { wasm: guestPath('spawn_wait'), args: ['3000'] });
    const three = await runOnGrid({ nodes: 3 }, { wasm: guestPath('spawn_wait'), args: ['3000'] });
    expect(one.stdout).toBe(three.stdout);
    expect(one.result.exitCode).toBe(0);
  });

  it('GPIDs keep working across migrations: children that move while their parent waits are still waited for', async () => {
    const still = await runOnGrid({ nodes: 3 }, { wasm: guestPath('spawn_wait'), args: ['400000'] });
    const moving = await runOnGrid({ nodes: 3 }, { wasm: guestPath('spawn_wait'), args: ['400000'], migrateEveryMs: 60 });
    expect(moving.result.exitCode).toBe(0);
    expect(moving.stdout).toBe(still.stdout);
    const kids = moving.result.processes.slice(1);
    expect(kids.reduce((n, k) => n + k.migrations, 0)).toBeGreaterThan(0);
    expect(kids.map((k) => k.exitCode)).toEqual([1, 2, 3]);
  });

  it('remote fork: the child continues from a copy of the parent and gets 0; the parent waits for its exit code', async () => {
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('forker'), memDirs: ['/tmp'], args: ['/tmp'] });
    expect(g.result.exitCode).toBe(0);
    const lines = g.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^before fork: sum [0-9a-f]{16}$/);
    expect(lines[1]).toMatch(/^parent: child exited with 42, own sum [0-9a-f]{16}$/);
    expect(lines[2]).toMatch(/^child: parent is set, sum [0-9a-f]{16}, exiting with 42$/);
    expect(lines).toHaveLength(3);
    const [parent, child] = g.result.processes;
    expect(child!.parent).toBe(parent!.gpid);
    expect(child!.exitCode).toBe(42);
    // remote: the child ran on the other node
    expect(child!.visited[0]).not.toBe(parent!.visited[parent!.visited.length - 1]);
  });

  it('AssemblyScript: a rank-aware part reads its rank, size and GPID through the AS module', async () => {
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('as_rank'), parts: 3 });
    expect(g.result.exitCode).toBe(0);
    const gpids = g.result.processes.map((p) => p.gpid);
    expect(g.stdout).toBe(gpids.map((id, r) => `as_rank: rank ${r} of 3\nas_rank: gpid ${id}, parent 0\n`).join(''));
  });

  it('AssemblyScript: remote fork, spawn and wait through the AS module; the children run on the other node', async () => {
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('as_family') });
    expect(g.result.exitCode).toBe(0);
    const sum = /^as_family: before fork, sum ([0-9a-f]{16})$/m.exec(g.stdout)?.[1];
    expect(sum).toBeDefined();
    // each process's output in GPID order: the parent, the forked child, the spawned child
    expect(g.stdout).toBe(
      `as_family: before fork, sum ${sum}\nas_family: fork child waited, exit 42\nas_family: spawned child waited, exit 5\nas_family: wait for more: ECHILD\n` +
        `as_family: fork child, sum ${sum}, parent set yes\n` +
        'as_family: spawned child 5, parent set yes\n',
    );
    const [parent, forked, spawned] = g.result.processes;
    expect(g.result.processes).toHaveLength(3);
    expect([forked!.parent, spawned!.parent]).toEqual([parent!.gpid, parent!.gpid]);
    expect([forked!.exitCode, spawned!.exitCode]).toEqual([42, 5]);
    // the parent resumed after each blocking call (fork, spawn, 3 waits) on its node; each child ran on the other
    expect(parent!.visited).toHaveLength(6);
    expect(parent!.visited).not.toContain(forked!.visited[0]);
    expect(parent!.visited).not.toContain(spawned!.visited[0]);
  });

  it('checkpoints are taken at the adaptive interval and exported to the origin less often (every exportEvery-th)', async () => {
    const g = await runOnGrid({ nodes: 1, checkpointPolicy: { w: 0.5, minMs: 40, maxMs: 80, initialMs: 40, exportEvery: 3 } }, { wasm: guestPath('nbody'), args: ['12000000'] });
    expect(g.result.exitCode).toBe(0);
    const p = g.result.processes[0]!;
    expect(p.checkpoints).toBeGreaterThanOrEqual(6);
    expect(p.exportedCheckpoints).toBeGreaterThanOrEqual(1);
    expect(p.exportedCheckpoints).toBe(Math.floor(p.checkpoints / 3));
  });

  it('/proc/self/status shows the GPID and the node, which changes after a migration', async () => {
    let movedTo = '';
    const g = await runOnGrid({ nodes: 2 }, { wasm: guestPath('procstatus'), args: ['800000'] }, async (grid, id, out) => {
      // as soon as the job has printed where it starts, move it; the next Node line it prints is read after the move
      for (let i = 0; i < 3000 && !/start Node:\t\S+\n/.test(out()); i++) await sleep(5);
      const p = grid.ps().find((x) => x.job === id)!;
      movedTo = p.node === 'n1' ? 'n2' : 'n1';
      await grid.migrate(p.gpid, movedTo);
    });
    expect(g.result.exitCode).toBe(0);
    const p = g.result.processes[0]!;
    expect(g.stdout).toContain(`start Gpid:\t${p.gpid}\n`);
    const nodes = [...g.stdout.matchAll(/Node:\t(\S+)/g)].map((m) => m[1]!);
    // 4 parts re-reading /proc/self/status, then /proc/<gpid>/status opened by number
    expect(nodes).toHaveLength(6);
    expect(nodes[0]).toBe(p.visited[0]);
    expect(nodes[0]).not.toBe(movedTo);
    expect(nodes.slice(1)).toEqual([movedTo, movedTo, movedTo, movedTo, movedTo]);
    expect(g.stdout).toContain(`byid Gpid:\t${p.gpid}\nbyid Node:\t${movedTo}\n`);
    expect(p.migrations).toBe(1);
  });

  it('a failed process reports why, when, where and with which resources; the grid stays up for the next job', async () => {
    const grid = await Grid.start({ nodes: 2 });
    try {
      const bomb = await (await grid.submit({ wasm: guestPath('memory_bomb'), limits: { maxMemoryBytes: 48 << 20 } })).done;
      const b = bomb.processes[0]!;
      expect(b.state).toBe('failed');
      expect(b.exitCode).toBe(134);
      expect(b.failure).toMatchObject({ why: 'limit', reason: 'memory-limit' });
      expect(b.failure!.message).toMatch(/--max-memory/);
      expect(b.failure!.stack).toContain('malloc');
      expect(b.failure!.node).toMatch(/^n[12]$/);
      expect(Date.parse(b.failure!.at)).toBeGreaterThan(0);
      expect(b.memoryPeakBytes).toBeGreaterThan(40 << 20);
      const trap = await (await grid.submit({ wasm: guestPath('trap') })).done;
      expect(trap.processes[0]!.failure).toMatchObject({ why: 'trap' });
      expect(trap.processes[0]!.failure!.stack!.slice(0, 3)).toEqual(['level_three', 'level_two', 'level_one']);
      const endless = await (await grid.submit({ wasm: guestPath('endless'), limits: { fuel: 2_000_000 } })).done;
      expect(endless.processes[0]!.failure).toMatchObject({ why: 'limit', reason: 'fuel' });
      expect(endless.processes[0]!.fuelUsed).toBe(2_000_000);
      // and the grid still runs jobs
      const ok = await (await grid.submit({ wasm: guestPath('as_hello') })).done;
      expect(ok.exitCode).toBe(0);
    } finally {
      await grid.close();
    }
  });
});
