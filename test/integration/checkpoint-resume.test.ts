import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run, type RunOptions, type RunResult } from '../../runtime-node/run.js';
import { resumeInWorker } from '../../runtime-node/resume.js';
import { loadChain } from '../../runtime-node/checkpoints.js';
import {
  applyChain,
  keepPages,
  concatChunks,
  createPageEngine,
  decodeSnapshot,
  encodeSnapshot,
  MemoryPool,
  snapshotFromChain,
  type Encoded,
  type Snapshot,
} from '../../vm/index.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { loadGuest, ownSnapshot, TestVm } from '../harness/grid.js';
import { concat, pool, spread } from '../harness/util.js';

const tmp = mkdtempSync(join(tmpdir(), 'gridvm-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case {
  guest: string;
  args?: string[];
  opts?: RunOptions;
  c: boolean;
  /** a fact that must hold for at least one checkpoint of the run */
  deep?: 'stack' | 'fds';
}

const cases: Case[] = [
  { guest: 'nbody', args: ['2000000'], c: true },
  { guest: 'recursion', c: true, deep: 'stack' },
  { guest: 'malloc_churn', c: true },
  { guest: 'fileio', args: ['/data'], opts: { memDirs: ['/data'] }, c: true, deep: 'fds' },
  { guest: 'as_gc', c: false },
];

const dec = new TextDecoder();


async function checkpointAndResumeAll(k: Case, full: RunResult, delta: boolean, tracked = false): Promise<void> {
  const dir = mkdtempSync(join(tmp, `${k.guest}-${delta ? 'delta' : 'full'}${tracked ? '-tracked' : ''}-`));
  // (with dirty-page tracking the module differs: its fuel differs a little, so the points are spread over that run)
  const points = spread(full.fuelUsed, 24);
  const paths: string[] = [];
  const withCk = await run(guestPath(k.guest), {
    ...(k.opts ?? {}),
    ...(k.args ? { args: k.args } : {}),
    checkpointAtFuel: points,
    checkpointDir: dir,
    delta,
    fullEvery: 8,
    onCheckpoint: (c) => paths.push(c.path!),
    ...(tracked ? { instrument: { dirtyPages: true } } : {}),
  });
  // taking checkpoints does not change the run
  expect(dec.decode(withCk.stdout)).toBe(dec.decode(full.stdout));
  expect(withCk.exitCode).toBe(full.exitCode);
  expect(paths.length).toBeGreaterThanOrEqual(20);
  const files = readdirSync(dir).filter((f) => f.endsWith('.gvm'));
  expect(files.length).toBe(paths.length);
  const engine = createPageEngine('auto');
  const headers = paths.map((p) => loadChain(p, engine).at(-1)!.header);
  if (delta) expect(headers.filter((h) => h.kind === 'delta').length).toBeGreaterThan(10);
  // the tracked module really was used (another module), and its checkpoints name it
  if (tracked) expect(withCk.moduleHash).not.toBe(full.moduleHash);
  expect(headers.every((h) => h.moduleHash === withCk.moduleHash)).toBe(true);
  // checkpoints are spread over the run: by fuel (by construction) and so over the output
  const fuels = headers.map((h) => h.fuelUsed);
  expect(Math.min(...fuels)).toBeLessThan(full.fuelUsed / 10);
  expect(Math.max(...fuels)).toBeGreaterThan((full.fuelUsed * 9) / 10);
  expect(new Set(headers.map((h) => h.stdoutBytes)).size).toBeGreaterThanOrEqual(3);
  if (k.deep === 'stack') expect(Math.max(...headers.map((h) => h.asyncify.length))).toBeGreaterThan(8 * 1024);
  if (k.deep === 'fds') {
    const openFiles = headers.map((h) => (h.kernel.fds as Array<{ kind: string; isDir: boolean }>).filter((f) => f.kind === 'file' && !f.isDir).length);
    expect(Math.max(...openFiles)).toBeGreaterThan(0);
  }
  await pool(paths, 2, async (p) => {
    const h = loadChain(p, engine).at(-1)!.header;
    const r = await resumeInWorker(p);
    const stdout = concat(full.stdout.subarray(0, h.stdoutBytes), r.stdout);
    const stderr = concat(full.stderr.subarray(0, h.stderrBytes), r.stderr);
    expect(dec.decode(stdout), `stdout after resuming ${p}`).toBe(dec.decode(full.stdout));
    expect(Buffer.from(stdout).equals(Buffer.from(full.stdout))).toBe(true);
    expect(Buffer.from(stderr).equals(Buffer.from(full.stderr)), `stderr after resuming ${p}`).toBe(true);
    expect(r.exitCode).toBe(full.exitCode);
    if (full.memFiles) {
      expect(Object.keys(r.memFiles ?? {}).sort()).toEqual(Object.keys(full.memFiles).sort());
      for (const [name, bytes] of Object.entries(full.memFiles)) expect(Buffer.from(r.memFiles![name]!).equals(Buffer.from(bytes)), name).toBe(true);
    }
  });
}

describe('checkpoint at 24 points and resume each in a fresh worker thread', () => {
  for (const k of cases) {
    const skip = k.c && !hasClang() && process.env.CI !== 'true';
    it.skipIf(skip)(`${k.guest}: every resumed run's output is byte-identical to an uninterrupted run (full and delta checkpoints)`, async () => {
      const full = await run(guestPath(k.guest), { ...(k.opts ?? {}), ...(k.args ? { args: k.args } : {}) });
      expect(full.trap).toBeUndefined();
      expect(full.stdout.length).toBeGreaterThan(100);
      await checkpointAndResumeAll(k, full, false);
      await checkpointAndResumeAll(k, full, true);
      // delta checkpoints made from dirty-page tracking (no hashing): the same promise
      await checkpointAndResumeAll(k, full, true, true);
    }, 600_000);
  }
});

describe('checkpoint requests', () => {
  it.skipIf(!hasClang() && process.env.CI !== 'true')('a suspend requested while the budget runs out in code that cannot unwind still happens (regression: aliasing with the tick budget)', async () => {
    const full = await run(guestPath('nbody'), { args: ['8000000'], stdout: 'ignore' });
    for (const frac of [0.2, 1 / 3, 0.5, 0.77]) {
      const at = Math.floor(full.fuelUsed * frac);
      const r = await run(guestPath('nbody'), { args: ['8000000'], stdout: 'ignore', checkpointAtFuel: [at], suspendAtCheckpoint: true });
      expect(r.suspended, `suspend at ${frac}`).toBe(true);
      expect(r.fuelUsed).toBeGreaterThanOrEqual(at);
      expect(r.fuelUsed).toBeLessThan(at + full.fuelUsed / 20);
    }
  });
});

describe('checkpoint files', () => {
  it.skipIf(!hasClang() && process.env.CI !== 'true')('a corrupted, truncated or foreign checkpoint is refused with a clear error', async () => {
    const dir = mkdtempSync(join(tmp, 'bad-'));
    const paths: string[] = [];
    const probe = await run(guestPath('nbody'), { args: ['20000'], stdout: 'ignore' });
    await run(guestPath('nbody'), { args: ['20000'], checkpointAtFuel: [probe.fuelUsed >> 1], checkpointDir: dir, stdout: 'ignore', onCheckpoint: (c) => paths.push(c.path!) });
    expect(paths.length).toBe(1);
    const good = readFileSync(paths[0]!);
    const { writeFileSync } = await import('node:fs');
    const corrupt = Buffer.from(good);
    corrupt[corrupt.length - 100] ^= 0x40;
    writeFileSync(join(dir, 'corrupt.gvm'), corrupt);
    writeFileSync(join(dir, 'trunc.gvm'), good.subarray(0, good.length - 1000));
    writeFileSync(join(dir, 'junk.gvm'), Buffer.from('hello world, not a checkpoint at all........................'));
    const { resume } = await import('../../runtime-node/run.js');
    await expect(resume(join(dir, 'corrupt.gvm'), { stdout: 'ignore' })).rejects.toThrow(/corrupted: memory checksum/);
    await expect(resume(join(dir, 'trunc.gvm'), { stdout: 'ignore' })).rejects.toThrow(/truncated/);
    await expect(resume(join(dir, 'junk.gvm'), { stdout: 'ignore' })).rejects.toThrow(/not a gridvm checkpoint/);
    // a checkpoint for another module: swap in a different module file
    const other = mkdtempSync(join(tmp, 'other-'));
    const paths2: string[] = [];
    await run(guestPath('recursion'), { checkpointAtFuel: [1000], checkpointDir: other, stdout: 'ignore', onCheckpoint: (c) => paths2.push(c.path!) });
    const modFile = readdirSync(dir).find((f) => f.startsWith('job-'))!;
    const otherMod = readdirSync(other).find((f) => f.startsWith('job-'))!;
    writeFileSync(join(dir, modFile), readFileSync(join(other, otherMod)));
    await expect(resume(paths[0]!, { stdout: 'ignore' })).rejects.toThrow(/checkpoint is for module/);
  });

  it.skipIf(!hasClang() && process.env.CI !== 'true')('a crash while writing a checkpoint leaves the previous one usable', async () => {
    const dir = mkdtempSync(join(tmp, 'crash-'));
    const full = await run(guestPath('nbody'), { args: ['20000'] });
    const paths: string[] = [];
    await run(guestPath('nbody'), { args: ['20000'], checkpointAtFuel: [full.fuelUsed >> 1], checkpointDir: dir, stdout: 'ignore', onCheckpoint: (c) => paths.push(c.path!) });
    // simulate a writer killed mid-write: a partial temp file next to the checkpoints, `latest` untouched
    const { writeFileSync } = await import('node:fs');
    const good = readFileSync(paths[0]!);
    writeFileSync(join(dir, 'ckpt-000002.gvm.tmp-999-0'), good.subarray(0, good.length >> 1));
    const r = await resumeInWorker(dir);
    const h = loadChain(paths[0]!, createPageEngine('auto')).at(-1)!.header;
    expect(Buffer.from(concat(full.stdout.subarray(0, h.stdoutBytes), r.stdout)).equals(Buffer.from(full.stdout))).toBe(true);
  });
});

describe('restore into pooled memories (warm processes, migration)', () => {
  const guests: Array<{ guest: string; args: string[]; c: boolean }> = [
    { guest: 'nbody', args: ['nbody', '300000'], c: true },
    { guest: 'as_gc', args: ['as_gc'], c: false },
  ];
  for (const g of guests) {
    it.skipIf(g.c && !hasClang() && process.env.CI !== 'true')(`${g.guest}: restored into a pooled memory that held other data, and migrated by prepare + delta: byte-identical output`, async () => {
      const job = await loadGuest(g.guest);
      const lim = job.info.memory!;
      const ref = new TestVm(job, { args: g.args });
      expect(ref.machine.run().kind).toBe('exit');
      const total = ref.machine.fuelUsed;
      const engine = createPageEngine('auto');

      // a run that checkpoints (encoded full) at 1/3 and suspends at 2/3
      let base: Encoded | undefined;
      let baseSnap: Snapshot | undefined;
      const src = new TestVm(job, {
        args: g.args,
        machine: {
          policy: (m) => (m.fuelUsed >= (2 * total) / 3 ? 'suspend' : !base && m.fuelUsed >= total / 3 ? 'checkpoint' : 'continue'),
          onCheckpoint: (s) => {
            base = encodeSnapshot(s, engine);
            baseSnap = ownSnapshot(s);
          },
        },
      });
      const o = src.machine.run();
      if (o.kind !== 'suspended') throw new Error(`expected a suspension, got ${o.kind}`);
      const last = ownSnapshot(o.snapshot);
      expect(base && last.stdoutBytes > baseSnap!.stdoutBytes).toBe(true);
      const rest = (vm: TestVm, s: Snapshot) => {
        expect(vm.machine.run()).toEqual({ kind: 'exit', code: 0 });
        expect(ref.stdout.slice(0, s.stdoutBytes) + vm.stdout).toBe(ref.stdout);
      };

      // 1. restore (in-memory snapshot) into a pooled memory full of another job's bytes
      const pool = new MemoryPool();
      const dirty = pool.take(Math.max(lim.initial, last.pages - 1), lim);
      new Uint8Array(dirty.buffer).fill(0xa5);
      pool.give(dirty);
      const mem = pool.take(last.pages, lim);
      expect(mem).toBe(dirty);
      rest(new TestVm(job, { args: g.args, machine: { memory: mem } }, { snap: last }), last);
      pool.give(mem);

      // 2. migration: copy the full checkpoint into a pooled memory while the job "still runs", then instantiate
      // with that memory and apply only the delta (and the pages instantiation rewrote: the data segments')
      const dBase = decodeSnapshot(concatChunks(base!.chunks), engine);
      const dDelta = decodeSnapshot(concatChunks(encodeSnapshot(last, engine, { delta: base!.base }).chunks), engine);
      expect(dDelta.header.kind).toBe('delta');
      const prepared = pool.take(dBase.header.pages, lim);
      expect(prepared).toBe(mem); // dirty: it held the previous restore
      applyChain([dBase], new Uint8Array(prepared.buffer));
      const chain = [dBase, dDelta];
      const vm = new TestVm(job, { args: g.args, machine: { memory: prepared } }, {
        snap: snapshotFromChain(chain),
        apply: (dst) => applyChain(chain, dst, { links: 1, dataPages: job.info.dataPages! }),
      });
      rest(vm, last);
      pool.give(prepared);


      // 3. the whole chain applied before instantiation: only the data segments' pages are written again
      const whole = pool.take(dDelta.header.pages, lim);
      applyChain(chain, new Uint8Array(whole.buffer));
      expect(job.info.dataPages!.length).toBeGreaterThan(0);
      rest(new TestVm(job, { args: g.args, machine: { memory: whole } }, {
        snap: snapshotFromChain(chain),
        apply: (dst) => applyChain(chain, dst, { links: 2, dataPages: job.info.dataPages! }),
      }), last);
      pool.give(whole);

      // 4. the same with the applied links kept only as the pages instantiation rewrites (a runner's prepared
      // pre-copy rounds, runtime-node/grid/runner.ts): the rest of their data is not read again
      const slim = chain.map((c) => keepPages(c, job.info.dataPages!));
      expect(slim[0]!.data.length).toBeLessThan(dBase.data.length);
      expect(slim.map((c) => c.id)).toEqual(chain.map((c) => c.id));
      const again = pool.take(dDelta.header.pages, lim);
      applyChain(chain, new Uint8Array(again.buffer));
      rest(new TestVm(job, { args: g.args, machine: { memory: again } }, {
        snap: snapshotFromChain(slim),
        apply: (dst) => applyChain(slim, dst, { links: 2, dataPages: job.info.dataPages! }),
      }), last);
    }, 120_000);
  }
});
