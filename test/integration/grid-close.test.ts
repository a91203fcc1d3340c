// Closing a grid of process nodes (`--isolate process`) while a node is still starting up. A node process that is
// told to go (its IPC channel closed) before its entry module has run used to miss the 'disconnect' event: it then
// started its NodeHost and runner thread and lived on forever, and Grid.close() waited for its exit forever. In the
// recovery tests that happened when a job ended while the replacement of a node killed just before was booting: the
// test hung until its timeout, and the orphaned node (holding vitest's stdout and stderr) kept vitest from exiting.
import { afterEach, describe, expect, it } from 'vitest';
import { Grid } from '../../runtime-node/grid/coordinator.js';
import { runOnGrid, sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';

/** Node processes of the grids a test started, killed after it if still alive (so a failure never leaves orphans). */
const started: number[] = [];
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterEach(() => {
  for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** close() of `grid`, or 'hung' after ms; every node process it had must be gone afterwards. */
async function closeWithin(grid: Grid, ms: number): Promise<{ outcome: 'closed' | 'hung'; left: number[] }> {
  const pids = grid.nodes().map((n) => n.pid);
  started.push(...pids);
  const outcome = await Promise.race([grid.close().then(() => 'closed' as const), sleep(ms).then(() => 'hung' as const)]);
  return { outcome, left: pids.filter(alive) };
}

describe('--isolate process: closing a grid whose nodes are still starting', () => {
  it('close() right after start (the nodes have not run their entry module yet) ends every node process', async () => {
    const grid = await Grid.start({ nodes: 2, isolate: 'process' });
    const r = await closeWithin(grid, 15_000);
    expect(r).toEqual({ outcome: 'closed', left: [] });
  }, 30_000);

  it.runIf(hasClang())('a job ends, a node is killed, close() while its replacement boots: the grid closes, no node process is left', async () => {
    const grid = await Grid.start({ nodes: 2, isolate: 'process' });
    const { done } = await grid.submit({ wasm: guestPath('hello') });
    const res = await done;
    expect(res.exitCode).toBe(0);
    const before = grid.nodes().map((n) => n.id);
    started.push(...grid.nodes().map((n) => n.pid));
    expect(grid.killNode(before[0]!)).toBe(true);
    // the node's loss is seen (its exit event), and a replacement forked: close at once, while it starts up
    for (let i = 0; i < 2000 && grid.nodes().length === before.length; i++) await sleep(1);
    expect(grid.nodes().length).toBe(before.length + 1);
    const r = await closeWithin(grid, 15_000);
    expect(r).toEqual({ outcome: 'closed', left: [] });
  }, 30_000);

  it.runIf(hasClang())('runOnGrid gives up on a job that does not end within its timeout, says where it stood, and stops the nodes', async () => {
    let pids: number[] = [];
    const err = await runOnGrid(
      { nodes: 1, isolate: 'process' },
      { wasm: guestPath('endless') },
      (grid) => {
        pids = grid.nodes().map((n) => n.pid);
        started.push(...pids);
      },
      { timeoutMs: 3000 },
    ).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/did not end within 3000 ms/);
    expect(err?.message).toMatch(/"state":"running"/);
    expect(pids.length).toBe(1);
    expect(pids.filter(alive)).toEqual([]);
  }, 30_000);
});
