// A grid on one machine (issue 3): rank-aware jobs over 1/2/4/8 nodes, fork-delay, live migration with
// --migrate-every, and a process's view of itself through /proc.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInThread } from '../../runtime-node/job-thread.js';
import { runOnGrid, sleep } from '../harness/cluster.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { filesOf } from '../harness/util.js';

const dec = new TextDecoder();
const tmp = mkdtempSync(join(tmpdir(), 'gridvm-grid-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const RANK_N = '3000000';

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
    { guest: 'recursion', args: ['2', '41'] },
    { guest: 'fileio', args: ['/data', '1500'], dir: true },
  ];
  for (const k of cases) {
    it(`${k.guest}: at least 10 migrations, same stdout, stderr, exit code${k.dir ? ' and files' : ''}`, async () => {
      const refDir = k.dir ? mkdtempSync(join(tmp, `${k.guest}-ref-`)) : undefined;
      const gridDir = k.dir ? mkdtempSync(join(tmp, `${k.guest}-grid-`)) : undefined;
      const ref = await runInThread('run', guestPath(k.guest), { args: k.args, stdout: 'buffer', stderr: 'buffer', ...(refDir ? { dirs: [{ host: refDir, guest: '/data' }] } : {}) });
      const g = await runOnGrid({ nodes: 2 }, {
        wasm: guestPath(k.guest), args: k.args, migrateEveryMs: 200,
        ...(gridDir ? { dirs: [{ host: gridDir, guest: '/data' }] } : {}),
      });
      const p = g.result.processes[0]!;
      expect(p.migrations).toBeGreaterThanOrEqual(10);
      expect(g.stdout).toBe(dec.decode(ref.stdout));
      expect(g.stderr).toBe(dec.decode(ref.stderr));
      expect(g.result.exitCode).toBe(ref.exitCode);
      if (refDir && gridDir) expect(filesOf(gridDir)).toEqual(filesOf(refDir));
    }, 180_000);
  }
});
