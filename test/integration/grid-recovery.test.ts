// Failure recovery (issue 3): nodes are OS processes (`--isolate process`); SIGKILL one at random moments while a
// job runs. The job's processes continue from their last exported checkpoint on surviving (or replacement) nodes,
// and the integrated output is byte-identical to an uninterrupted run: nothing lost, nothing emitted twice.
import { describe, expect, it } from 'vitest';
import { runInThread } from '../../runtime-node/job-thread.js';
import { prng, runOnGrid, sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';

const dec = new TextDecoder();

const JOBS = [
  { guest: 'nbody', args: ['25000000'], parts: 1, seed: 11 },
  { guest: 'recursion', args: ['4', '38'], parts: 1, seed: 12 },
  { guest: 'malloc_churn', args: ['4', '2500000'], parts: 1, seed: 13 },
  { guest: 'rank', args: ['14000000'], parts: 2, seed: 14 },
  { guest: 'nbody', args: ['25000000'], parts: 1, seed: 15 },
  { guest: 'recursion', args: ['4', '38'], parts: 1, seed: 16 },
];
const KILLS_PER_JOB = 4;

describe.runIf(hasClang())('--isolate process: SIGKILL of a node at random moments', () => {
  let landed = 0;
  for (const j of JOBS) {
    it(`${j.guest}${j.parts > 1 ? ` x${j.parts}` : ''} (seed ${j.seed}): output byte-identical after node kills`, async () => {
      let ref = '';
      let refErr = '';
      for (let r = 0; r < j.parts; r++) {
        const res = await runInThread('run', guestPath(j.guest), { args: j.args, env: [`GRIDVM_RANK=${r}`, `GRIDVM_SIZE=${j.parts}`], stdout: 'buffer', stderr: 'buffer' });
        ref += dec.decode(res.stdout);
        refErr += dec.decode(res.stderr);
      }
      const rand = prng(j.seed);
      let kills = 0;
      let finished = false;
      const g = await runOnGrid(
        { nodes: 2, isolate: 'process', heartbeatTimeoutMs: 5000, checkpointPolicy: { w: 0.5, minMs: 80, maxMs: 400, initialMs: 120, exportEvery: 2 } },
        { wasm: guestPath(j.guest), args: j.args, parts: j.parts },
        async (grid, id) => {
          void (async () => {
            while (kills < KILLS_PER_JOB && !finished) {
              await sleep(100 + rand() * 350);
              if (finished) break;
              const running = grid.ps().filter((p) => p.job === id && p.state === 'running' && p.node);
              if (!running.length) continue;
              const victim = running[Math.floor(rand() * running.length)]!.node!;
              if (grid.killNode(victim)) kills++;
            }
          })();
        },
        // (a job that does not end fails here, with where it stood, well before the test's timeout)
        { timeoutMs: 160_000 },
      ).finally(() => {
        finished = true;
      });
      landed += kills;
      process.stderr.write(`${j.guest} seed ${j.seed}: ${kills} node kills landed\n`);
      expect(g.stdout).toBe(ref);
      expect(g.stderr).toBe(refErr);
      expect(g.result.exitCode).toBe(0);
      expect(g.result.outputGaps).toBe(0);
      const recoveries = g.result.processes.reduce((a, p) => a + p.recoveries, 0);
      expect(recoveries).toBeGreaterThanOrEqual(kills > 0 ? 1 : 0);
    }, 180_000);
  }
  it('at least 20 node kills landed while jobs ran', () => {
    expect(landed).toBeGreaterThanOrEqual(20);
  });

  it('a node killed right after a two-round pre-copy migration: the process continues from the migration\'s chain (full + round delta + freeze delta), byte-identical', async () => {
    const args = ['12', '4000', '300000'];
    const ref = await runInThread('run', guestPath('memtouch'), { args, stdout: 'buffer', stderr: 'buffer' });
    let record: { precopyRounds: number; to: string } | undefined;
    let recoveredFrom = '';
    const g = await runOnGrid(
      // no periodic exports: the only recovery point after the migration is the chain it shipped
      { nodes: 2, isolate: 'process', heartbeatTimeoutMs: 5000, checkpointPolicy: { w: 0.5, minMs: 60_000, maxMs: 60_000, initialMs: 60_000, exportEvery: 1 } },
      { wasm: guestPath('memtouch'), args, precopy: true },
      async (grid, id) => {
        let p = grid.ps().find((x) => x.job === id);
        for (let i = 0; i < 1000 && p?.state !== 'running'; i++) {
          await sleep(10);
          p = grid.ps().find((x) => x.job === id);
        }
        await sleep(300); // memtouch fills its memory first
        const cur = grid.ps().find((x) => x.gpid === p!.gpid)!;
        record = await grid.migrate(cur.gpid, cur.node === 'n1' ? 'n2' : 'n1', { precopy: true });
        recoveredFrom = record.to;
        grid.killNode(record.to);
      },
    );
    expect(record?.precopyRounds).toBe(2);
    expect(recoveredFrom).not.toBe('');
    expect(g.stdout).toBe(dec.decode(ref.stdout));
    expect(g.stderr).toBe(dec.decode(ref.stderr));
    expect(g.result.exitCode).toBe(0);
    expect(g.result.processes[0]!.recoveries).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('a node that stops answering (SIGSTOP: no heartbeats) is declared lost and its process continues elsewhere', async () => {
    const ref = await runInThread('run', guestPath('nbody'), { args: ['20000000'], stdout: 'buffer', stderr: 'buffer' });
    let stopped: { pid: number; id: string } | undefined;
    const g = await runOnGrid(
      { nodes: 2, isolate: 'process', heartbeatTimeoutMs: 1000, checkpointPolicy: { w: 0.5, minMs: 100, maxMs: 300, initialMs: 150, exportEvery: 1 } },
      { wasm: guestPath('nbody'), args: ['20000000'] },
      async (grid, id) => {
        for (let i = 0; i < 400; i++) {
          const p = grid.ps().find((x) => x.job === id && x.state === 'running' && x.exportedCheckpoints > 0);
          if (p) {
            const n = grid.nodes().find((x) => x.id === p.node)!;
            stopped = { pid: n.pid, id: n.id };
            process.kill(n.pid, 'SIGSTOP');
            return;
          }
          await sleep(20);
        }
      },
    );
    expect(stopped).toBeDefined();
    expect(g.stdout).toBe(dec.decode(ref.stdout));
    expect(g.result.exitCode).toBe(0);
    const p = g.result.processes[0]!;
    expect(p.recoveries).toBe(1);
    expect(p.visited[p.visited.length - 1]).not.toBe(stopped!.id);
    const lost = g.grid.nodes().find((n) => n.id === stopped!.id)!;
    expect(lost.alive).toBe(false);
    expect(lost.lostWhy).toMatch(/no heartbeat for \d+ ms/);
  }, 120_000);

  // (on process nodes the exports, 132 KB for nbody, are written by the runner into carrier files: the node keeps
  // no bytes of them, and a crash after one continues from the node's local checkpoint before it)
  it.each(['thread', 'process'] as const)('a runner thread that dies is replaced (%s nodes): its process continues from the node\'s local checkpoint (or the origin\'s), output identical', async (isolate) => {
    const ref = await runInThread('run', guestPath('nbody'), { args: ['25000000'], stdout: 'buffer', stderr: 'buffer' });
    const rand = prng(21);
    let crashes = 0;
    let early = false;
    let lost = 0;
    const g = await runOnGrid(
      { nodes: 2, isolate, checkpointPolicy: { w: 0.5, minMs: 60, maxMs: 200, initialMs: 80, exportEvery: 4 } },
      { wasm: guestPath('nbody'), args: ['25000000'] },
      async (grid, id) => {
        grid.bus.subscribe('coord', (m) => {
          if (m.t === 'lost') lost++;
        });
        // one crash right away (no local checkpoint yet: the origin recovers it), then some at random moments
        for (let i = 0; i < 400 && !early; i++) {
          const p = grid.ps().find((x) => x.job === id && x.state === 'running');
          if (p) early = grid.injectFault(p.gpid, 'runner-crash');
          else await sleep(2);
        }
        // (each after the process has reported a checkpoint since the previous crash: under load a crash could
        // otherwise come before the new runner took one, and every crash would go back to the origin)
        let seen = -1;
        for (let k = 0; k < 5; k++) {
          await sleep(150 + rand() * 250);
          let p = grid.ps().find((x) => x.job === id && x.state === 'running');
          for (let w = 0; w < 200 && p && p.checkpoints <= seen; w++) {
            await sleep(10);
            p = grid.ps().find((x) => x.job === id && x.state === 'running');
          }
          if (p && p.checkpoints > seen && grid.injectFault(p.gpid, 'runner-crash')) {
            crashes++;
            seen = p.checkpoints;
          }
        }
      },
    );
    expect(early).toBe(true);
    expect(crashes).toBeGreaterThanOrEqual(3);
    expect(g.stdout).toBe(dec.decode(ref.stdout));
    expect(g.stderr).toBe(dec.decode(ref.stderr));
    expect(g.result.exitCode).toBe(0);
    expect(g.result.outputGaps).toBe(0);
    expect(g.result.processes[0]!.recoveries).toBeGreaterThanOrEqual(1);
    // the early crash went back to the origin; later ones were mostly continued by the node from its local checkpoints
    expect(lost).toBeGreaterThanOrEqual(1);
    expect(lost).toBeLessThan(crashes + 1);
  }, 120_000);
});
