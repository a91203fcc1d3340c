// Races in the grid's origin (runtime-node/grid/coordinator.ts), each driven through its exact interleaving:
// - a rebalancing migration (the scheduler's own decision, which it applies to its state at once) whose target or
//   source is lost while the process freezes: the scheduler and the origin must agree on where the process is, so it
//   is never placed while it still runs elsewhere, and never forgotten;
// - a scheduling decision that throws must not lose the decisions after it;
// - a start that never reaches its node (dropped on the way) is found from the node's heartbeats and recovered;
// - close() removes only migration files this grid's node processes left, not files of a process that got the pid
//   of one of its nodes that died long ago.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeCommand, NodeEvent } from '../../kernel/index.js';
import { Grid } from '../../runtime-node/grid/coordinator.js';
import { MIGRATION_DIR } from '../../runtime-node/grid/runner-types.js';
import { runInThread } from '../../runtime-node/job-thread.js';
import { runOnGrid, sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';

const dec = new TextDecoder();

/**
 * Watches the bus: every start sent to a node, and every event by which a node lets a process go. A start sent
 * while another live node still holds the process (it has not reported it suspended, ended, blocked, lost or given
 * back) would make it run on two nodes: recorded as a violation.
 */
function watchPlacements(grid: Grid): { violations: string[]; dead: Set<string>; starts: Array<{ gpid: number; node: string }> } {
  const holders = new Map<number, Set<string>>();
  const violations: string[] = [];
  const dead = new Set<string>();
  const starts: Array<{ gpid: number; node: string }> = [];
  grid.bus.subscribe('node.*', (msg, subject) => {
    const m = msg as NodeCommand;
    if (m.t !== 'start') return;
    const node = subject.slice('node.'.length);
    const h = holders.get(m.gpid) ?? new Set<string>();
    const others = [...h].filter((n) => !dead.has(n));
    if (others.length) violations.push(`start of process ${m.gpid} on ${node} while ${others.join(', ')} still held it`);
    h.add(node);
    holders.set(m.gpid, h);
    starts.push({ gpid: m.gpid, node });
  });
  grid.bus.subscribe('coord', (msg) => {
    const e = msg as NodeEvent;
    if (e.t === 'exit' || e.t === 'trap' || e.t === 'suspended' || e.t === 'blocked' || e.t === 'error' || e.t === 'lost' || (e.t === 'unstaged' && e.ok)) {
      holders.get(e.gpid)?.delete(e.node);
    }
  });
  return { violations, dead, starts };
}

async function waitRunning(grid: Grid, job: string): Promise<{ gpid: number; node: string }> {
  for (let i = 0; i < 2000; i++) {
    const p = grid.ps().find((x) => x.job === job && x.state === 'running' && x.node);
    if (p) return { gpid: p.gpid, node: p.node! };
    await sleep(5);
  }
  throw new Error(`job ${job} never ran: ${JSON.stringify(grid.ps())}`);
}

const NBODY = ['6000000'];

describe.runIf(hasClang())('grid origin races', () => {
  for (const lost of ['target', 'source'] as const) {
    it(`a rebalancing migration whose ${lost} is lost while the process freezes: never placed while it runs elsewhere, never forgotten, output identical`, async () => {
      const ref = await runInThread('run', guestPath('nbody'), { args: NBODY, stdout: 'buffer', stderr: 'buffer' });
      let killed = '';
      let watch: ReturnType<typeof watchPlacements> | undefined;
      const g = await runOnGrid(
        { nodes: 2, checkpointPolicy: { w: 0.5, minMs: 100, maxMs: 300, initialMs: 150, exportEvery: 1 } },
        { wasm: guestPath('nbody'), args: NBODY },
        async (grid, id) => {
          watch = watchPlacements(grid);
          const p = await waitRunning(grid, id);
          const target = p.node === 'n1' ? 'n2' : 'n1';
          // the freeze of the rebalancing migration has been asked for (the suspend is on its way to the source's
          // runner, which answers at its next safe point, a message later): lose a node now
          grid.bus.subscribe(`node.${p.node}`, (msg) => {
            const m = msg as NodeCommand;
            if (killed || m.t !== 'control' || m.action !== 'suspend' || m.gpid !== p.gpid || m.reason !== 'migrating') return;
            killed = lost === 'target' ? target : p.node;
            watch!.dead.add(killed);
            grid.killNode(killed);
          });
          // a slow freeze (a large memory): the source's 'suspended' reaches the origin 300 ms late, after the
          // scheduling rounds that follow the loss
          const publish = grid.bus.publish.bind(grid.bus);
          grid.bus.publish = (subject, msg) => {
            const e = msg as NodeEvent;
            if (e.t === 'suspended' && e.gpid === p.gpid) setTimeout(() => publish(subject, msg), 300);
            else publish(subject, msg);
          };
          // drain the source: the scheduler moves its process to the other node's free slot (a rebalancing move)
          grid.setSlots(p.node, 0);
        },
        { timeoutMs: 20_000 },
      );
      expect(killed).not.toBe('');
      expect(watch!.violations).toEqual([]);
      expect(g.stdout).toBe(dec.decode(ref.stdout));
      expect(g.stderr).toBe(dec.decode(ref.stderr));
      expect(g.result.exitCode).toBe(0);
      expect(g.result.outputGaps).toBe(0);
      const proc = g.result.processes[0]!;
      expect(proc.state).toBe('exited');
      // it ended away from the lost node (a lost target: on the replacement, the source being drained)
      expect(proc.visited[proc.visited.length - 1]).not.toBe(killed);
      if (lost === 'target') expect(proc.visited[proc.visited.length - 1]).toBe('n3');
      if (lost === 'source') expect(proc.recoveries).toBe(1);
      else expect(proc.recoveries).toBe(0); // it continued from the snapshot of its freeze
    }, 60_000);
  }

  it('a scheduling decision that throws does not lose the decisions after it: its process fails, the others run', async () => {
    const ref = await runInThread('run', guestPath('hello'), { args: [], env: ['GRIDVM_RANK=1', 'GRIDVM_SIZE=3'], stdout: 'buffer', stderr: 'buffer' });
    const ref2 = await runInThread('run', guestPath('hello'), { args: [], env: ['GRIDVM_RANK=2', 'GRIDVM_SIZE=3'], stdout: 'buffer', stderr: 'buffer' });
    const grid = await Grid.start({ nodes: 1, slotsPerNode: 3 });
    const out: string[] = [];
    try {
      // the first start of this grid throws (test hook: the origin's private startOn): the three ranks are placed
      // by one scheduling round, so this is the first of its three decisions
      const g = grid as unknown as { startOn: (...a: unknown[]) => void };
      const startOn = g.startOn.bind(grid);
      let thrown = 0;
      g.startOn = (...a: unknown[]) => {
        if (thrown++ === 0) throw new Error('injected failure');
        startOn(...a);
      };
      const { done } = await grid.submit({ wasm: guestPath('hello'), parts: 3, stdout: (b) => out.push(dec.decode(b)) });
      const res = await Promise.race([done, sleep(20_000).then(() => undefined)]);
      expect(res, `the job did not end: ${JSON.stringify(grid.ps())}`).toBeDefined();
      expect(res!.processes.map((p) => p.state)).toEqual(['failed', 'exited', 'exited']);
      expect(res!.processes[0]!.failure?.message).toMatch(/could not carry out its place decision: injected failure/);
      expect(res!.exitCode).toBe(125);
      expect(out.join('')).toBe(dec.decode(ref.stdout) + dec.decode(ref2.stdout));
    } finally {
      await grid.close();
    }
  }, 60_000);

  it('a start dropped on its way to the node is found missing from the heartbeats and recovered: output identical', async () => {
    const ref = await runInThread('run', guestPath('nbody'), { args: NBODY, stdout: 'buffer', stderr: 'buffer' });
    let dropped = 0;
    let watch: ReturnType<typeof watchPlacements> | undefined;
    const g = await runOnGrid(
      { nodes: 2, lostStartMs: 500 },
      { wasm: guestPath('nbody'), args: NBODY },
      (grid) => {
        watch = watchPlacements(grid);
        // the first start never arrives (a carrier file that could not be written, a message the node dropped)
        const publish = grid.bus.publish.bind(grid.bus);
        grid.bus.publish = (subject, msg) => {
          if ((msg as NodeCommand).t === 'start' && dropped++ === 0) return;
          publish(subject, msg);
        };
      },
      { timeoutMs: 20_000 },
    );
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect(g.stdout).toBe(dec.decode(ref.stdout));
    expect(g.result.exitCode).toBe(0);
    expect(g.result.outputGaps).toBe(0);
    const proc = g.result.processes[0]!;
    expect(proc.recoveries).toBe(1);
    expect(proc.visited).toHaveLength(1); // the start that never arrived is not a visit
    expect(watch!.starts.length).toBe(1); // (the watcher sees only starts that were delivered)
  }, 60_000);

  it('a migration\'s start dropped on its way: the migration fails, the process continues from its recovery point, output identical', async () => {
    const ref = await runInThread('run', guestPath('nbody'), { args: NBODY, stdout: 'buffer', stderr: 'buffer' });
    let migration: Error | undefined;
    const g = await runOnGrid(
      { nodes: 2, lostStartMs: 500, checkpointPolicy: { w: 0.5, minMs: 100, maxMs: 300, initialMs: 150, exportEvery: 1 } },
      { wasm: guestPath('nbody'), args: NBODY },
      async (grid, id) => {
        const p = await waitRunning(grid, id);
        const publish = grid.bus.publish.bind(grid.bus);
        let armed = true;
        grid.bus.publish = (subject, msg) => {
          if (armed && (msg as NodeCommand).t === 'start') {
            armed = false;
            return;
          }
          publish(subject, msg);
        };
        migration = await grid.migrate(p.gpid, p.node === 'n1' ? 'n2' : 'n1').then(() => undefined, (e: Error) => e);
      },
      { timeoutMs: 20_000 },
    );
    expect(migration?.message).toMatch(/start on n\d was lost/);
    expect(g.stdout).toBe(dec.decode(ref.stdout));
    expect(g.result.exitCode).toBe(0);
    expect(g.result.processes[0]!.recoveries).toBe(1);
  }, 60_000);
});

describe('--isolate process: close() and migration memory files', () => {
  it('close() removes the files its dead nodes left, not a file of another process that got a dead node\'s pid', async () => {
    const grid = await Grid.start({ nodes: 2, isolate: 'process', replaceLostNodes: false });
    const files: string[] = [];
    try {
      for (let i = 0; i < 500 && grid.nodes().some((n) => n.pid <= 0); i++) await sleep(5);
      const n1 = grid.nodes().find((n) => n.id === 'n1')!;
      // a file n1 left (written, never taken by a target)
      const left = join(MIGRATION_DIR, `gridvm-snap-${n1.pid}-7-1-0badc0de.raw`);
      writeFileSync(left, 'left by n1');
      files.push(left);
      expect(grid.killNode('n1')).toBe(true);
      for (let i = 0; i < 2000 && grid.nodes().find((n) => n.id === 'n1')!.alive; i++) await sleep(5);
      expect(grid.nodes().find((n) => n.id === 'n1')!.alive).toBe(false);
      // n1's pid now belongs to a node of another grid, which is migrating a process through this file
      const other = join(MIGRATION_DIR, `gridvm-snap-${n1.pid}-3-1-feedf00d.raw`);
      writeFileSync(other, 'another grid');
      files.push(other);
      await grid.close();
      expect(existsSync(left)).toBe(false);
      expect(existsSync(other)).toBe(true);
    } finally {
      await grid.close();
      for (const f of files) rmSync(f, { force: true });
    }
  }, 30_000);
});
