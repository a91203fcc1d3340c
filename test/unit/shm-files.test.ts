// Migration memory files between process nodes (runtime-node/grid/shm-files.ts) and the Machine's capture sink:
// a suspension written straight to its file, with Asyncify's window repaired from the file, captures exactly what
// the copy path captures (memory, call-stack blob, globals, kernel state), also with a deep call stack and across
// many suspend -> restore-from-the-file hops; spare files are reused, adopted, bounded and swept.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProcessState } from '../../kernel/index.js';
import { sweepCarrierFiles } from '../../runtime-node/grid/ipc-carrier.js';
import { MIGRATION_DIR } from '../../runtime-node/grid/runner-types.js';
import { FileSink, migrationFileName, readAll, SPARE_NAME, SpareFiles, streamProgress, writeAll, writerPid } from '../../runtime-node/grid/shm-files.js';
import type { CaptureSink, CompiledJob, Snapshot } from '../../vm/index.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { loadGuest, ownSnapshot, TestVm } from '../harness/grid.js';

// whatever a failed test left: this process's spares and migration files
afterAll(() => {
  sweepCarrierFiles(process.pid);
  for (const n of readdirSync(MIGRATION_DIR)) if (n.startsWith(`gridvm-snap-${process.pid}-`)) rmSync(join(MIGRATION_DIR, n), { force: true });
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const SLICE = 5_000;
const ARGS = ['1', '23'];

/** Run from `from` (or a fresh start) until the fuel reaches `at`, then suspend; `sink` for the capture if given. */
function segment(job: CompiledJob, at: number, from: { snap: Snapshot; apply: (dst: Uint8Array) => void } | undefined, sink?: () => CaptureSink | undefined) {
  const vm = new TestVm(job, {
    args: ['recursion', ...ARGS],
    machine: {
      slice: SLICE,
      policy: (m) => (m.fuelUsed >= at ? 'suspend' : 'continue'),
      ...(sink ? { captureSink: (action) => (action === 'suspend' ? sink() : undefined) } : {}),
    },
  }, from);
  const outcome = vm.machine.run();
  return { vm, outcome };
}

/** What must be equal between two captures of the same state (the kernel's clock is the host's: it moves on). */
function facts(s: Snapshot, memory: Uint8Array) {
  return { memory: sha(memory), pages: s.pages, asyncify: sha(s.asyncify), blob: s.asyncify.length, globals: s.globals.map(String), fuel: s.fuelUsed, seq: s.seq, kernel: JSON.stringify(s.kernel, (k, v) => (k === 'clock' ? undefined :  (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? sha(v) : v))) };
}

const restoreFromFile = (s: Snapshot, file: string) => ({
  snap: { ...s, memory: new Uint8Array(0), kernel: structuredClone(s.kernel) as ProcessState },
  apply: (dst: Uint8Array) => {
    const fd = openSync(file, 'r');
    try {
      readAll(fd, dst.subarray(0, s.pages * 65536), 0, file);
    } finally {
      closeSync(fd);
    }
  },
});

describe.runIf(hasClang() && existsSync(guestPath('recursion')))('capture sink: a suspension written to its file is exact', () => {
  it('deep recursion, 14 suspensions, each restored from its file: same state as the copy path at every point, same output as an unmigrated run', async () => {
    const job = await loadGuest('recursion');
    const ref = new TestVm(job, { args: ['recursion', ...ARGS], machine: { slice: SLICE } });
    const refOut = ref.machine.run();
    expect(refOut).toEqual({ kind: 'exit', code: 0 });
    const total = ref.machine.fuelUsed;
    const points = Array.from({ length: 14 }, (_, i) => Math.floor((total * (i + 1)) / 15));
    const spares = new SpareFiles();
    let from: { snap: Snapshot; apply: (dst: Uint8Array) => void } | undefined;
    let stdout = '';
    let stderr = '';
    const blobs: number[] = [];
    const reused: boolean[] = [];
    const files: string[] = [];
    try {
      for (const at of points) {
        // the copy path, from the same state
        const copy = segment(job, at, from && { snap: { ...from.snap, kernel: structuredClone(from.snap.kernel) as ProcessState }, apply: from.apply });
        expect(copy.outcome.kind).toBe('suspended');
        const cs = ownSnapshot((copy.outcome as { snapshot: Snapshot }).snapshot);
        // the file path: the live memory goes to the file before the unwind, the window is read back from it
        let sink: FileSink | undefined;
        const viaFile = segment(job, at, from, () => (sink = new FileSink(spares, migrationFileName(7))));
        expect(viaFile.outcome.kind).toBe('suspended');
        const fs = (viaFile.outcome as { snapshot: Snapshot }).snapshot;
        expect(sink!.written).toBe(fs.pages * 65536);
        reused.push(sink!.reused);
        sink!.finish();
        files.push(sink!.path);
        // the snapshot's memory is the job's own memory, repaired: no copy was made
        expect(fs.memory.buffer).toBe(viaFile.vm.machine.memory.buffer);
        const fileBytes = new Uint8Array(readFileSync(sink!.path)).subarray(0, fs.pages * 65536);
        const want = facts(cs, cs.memory);
        expect(facts(fs, fileBytes)).toEqual(want);
        expect(facts(fs, fs.memory)).toEqual(want);
        blobs.push(fs.asyncify.length);
        stdout += copy.vm.stdout;
        expect(viaFile.vm.stdout).toBe(copy.vm.stdout);
        stderr += viaFile.vm.stderr;
        // the next segment continues from the file (as the target runner does)
        from = restoreFromFile(fs, sink!.path);
        // (the previous file has been read into the memory of both machines: hand it on as a spare, like a target)
        if (files.length > 1) spares.adopt(files[files.length - 2]!);
      }
      const last = new TestVm(job, { args: ['recursion', ...ARGS], machine: { slice: SLICE } }, from);
      expect(last.machine.run()).toEqual({ kind: 'exit', code: 0 });
      stdout += last.stdout;
      stderr += last.stderr;
      expect(stdout).toBe(ref.stdout);
      expect(stderr).toBe(ref.stderr);
      // some suspensions were deep in the recursion: the call-stack window covered many KiB at offset 0 (thousands
      // of frames of a few bytes each)
      expect(Math.max(...blobs)).toBeGreaterThan(16 * 1024);
      // and the files went round: from the third suspension on, each was written into a spare
      expect(reused).toEqual(points.map((_, i) => i >= 2));
    } finally {
      for (const f of files) rmSync(f, { force: true });
      spares.clear();
    }
  }, 120_000);

  /** The recursion guest, a point in its deep part (ackermann / the tree walks), and its capture by copy there. */
  async function deepPoint(): Promise<{ job: CompiledJob; at: number; cs: Snapshot }> {
    const job = await loadGuest('recursion');
    const ref = new TestVm(job, { args: ['recursion', ...ARGS], machine: { slice: SLICE } });
    ref.machine.run();
    const at = Math.floor(ref.machine.fuelUsed * 0.6);
    const copy = segment(job, at, undefined);
    return { job, at, cs: ownSnapshot((copy.outcome as { snapshot: Snapshot }).snapshot) };
  }

  it('a sink that does not give the window back is caught (the comparison can fail)', async () => {
    const { job, at, cs } = await deepPoint();
    const broken: CaptureSink = { write: () => {}, readBack: () => {} };
    const bad = segment(job, at, undefined, () => broken);
    const bs = (bad.outcome as { snapshot: Snapshot }).snapshot;
    expect(bs.asyncify.length).toBeGreaterThan(8);
    expect(sha(bs.asyncify)).toBe(sha(cs.asyncify));
    expect(sha(bs.memory)).not.toBe(sha(cs.memory));
  });

  it('a sink that cannot store the memory falls back to the copy, exactly', async () => {
    const { job, at, cs } = await deepPoint();
    let readBacks = 0;
    const failing: CaptureSink = { write: () => { throw new Error('ENOSPC'); }, readBack: () => void readBacks++ };
    const fb = segment(job, at, undefined, () => failing);
    const fs = (fb.outcome as { snapshot: Snapshot }).snapshot;
    expect(readBacks).toBe(0);
    expect(fs.memory.buffer).not.toBe(fb.vm.machine.memory.buffer);
    expect(facts(fs, fs.memory)).toEqual(facts(cs, cs.memory));
  });
});

describe('spare migration files', () => {
  const mySpares = () => readdirSync(MIGRATION_DIR).filter((n) => n.startsWith(`gridvm-spare-${process.pid}-`));
  const gone = async (f: string) => {
    for (let i = 0; i < 100 && existsSync(f); i++) await new Promise((r) => setTimeout(r, 10));
    return !existsSync(f);
  };

  it('a file that was read becomes a spare; the next write reuses it under the new name', () => {
    const spares = new SpareFiles();
    const a = migrationFileName(1);
    const first = spares.claim(a, 3 * 65536);
    expect(first.reused).toBe(false);
    writeAll(first.fd, new Uint8Array(3 * 65536).fill(7));
    closeSync(first.fd);
    const ino = statSync(a).ino;
    spares.adopt(a);
    expect(existsSync(a)).toBe(false);
    const [s] = spares.list();
    expect(s!.bytes).toBe(3 * 65536);
    expect(SPARE_NAME.test(basename(s!.path))).toBe(true);
    expect(statSync(s!.path).ino).toBe(ino);
    // a smaller memory fits the spare: same file (its pages exist), renamed for the message
    const b = migrationFileName(1);
    const second = spares.claim(b, 2 * 65536);
    expect(second.reused).toBe(true);
    writeAll(second.fd, new Uint8Array(2 * 65536).fill(9));
    closeSync(second.fd);
    expect(statSync(b).ino).toBe(ino);
    expect(existsSync(s!.path)).toBe(false);
    expect(spares.list()).toEqual([]);
    const back = new Uint8Array(2 * 65536);
    const fd = openSync(b, 'r');
    readAll(fd, back, 0, b);
    closeSync(fd);
    expect(back.every((x) => x === 9)).toBe(true);
    // the writer's pid is in the name (a streaming reader checks that it lives)
    expect(writerPid(b)).toBe(process.pid);
    // upTo: a small file that will not come back does not take a spare much bigger than itself
    spares.adopt(b);
    const c = migrationFileName(1);
    const third = spares.claim(c, 65536, 2 * 65536);
    expect(third.reused).toBe(false);
    closeSync(third.fd);
    expect(spares.list().map((x) => x.bytes)).toEqual([3 * 65536]); // (the first file's size: b only rewrote 2 pages)
    const fourth = spares.claim(c + 'x', 65536, 3 * 65536);
    expect(fourth.reused).toBe(true);
    closeSync(fourth.fd);
    rmSync(c);
    rmSync(c + 'x');
  });

  it('a streamed sink announces its file with progress 0, then counts the pages written in its trailer; a discard says -1', () => {
    const spares = new SpareFiles();
    // a spare left by an earlier stream: its old trailer must not be taken for this one's progress
    const old = migrationFileName(2);
    const o = spares.claim(old, 6 * 65536);
    writeAll(o.fd, new Uint8Array(6 * 65536 + 4).fill(0x7f));
    closeSync(o.fd);
    spares.adopt(old);
    const memory = new Uint8Array(5 * 65536);
    for (let i = 0; i < memory.length; i++) memory[i] = (i * 31) >>> 3;
    const seen: Array<{ path: string; bytes: number; progress: number }> = [];
    const sink = new FileSink(spares, migrationFileName(2), (path, bytes) => {
      const fd = openSync(path, 'r');
      seen.push({ path, bytes, progress: streamProgress(fd, bytes) });
      closeSync(fd);
    });
    sink.write(memory);
    expect(sink.reused).toBe(true);
    expect(seen).toEqual([{ path: sink.path, bytes: memory.length, progress: 0 }]);
    const fd = openSync(sink.path, 'r');
    expect(streamProgress(fd, memory.length)).toBe(5);
    const back = new Uint8Array(memory.length);
    readAll(fd, back, 0, sink.path);
    expect(Buffer.from(back).equals(Buffer.from(memory))).toBe(true);
    sink.discard();
    // a reader that still holds the file learns that the writer gave up
    expect(streamProgress(fd, memory.length)).toBe(-1);
    closeSync(fd);
    expect(existsSync(sink.path)).toBe(false);
    spares.clear();
  });

  it('keeps at most maxCount / maxBytes of spares, removing the rest in the background; leaves other files alone', async () => {
    const spares = new SpareFiles({ maxCount: 1, maxBytes: 4 * 65536 });
    const mk = (bytes: number) => {
      const f = migrationFileName(2);
      writeFileSync(f, new Uint8Array(bytes));
      return f;
    };
    const small = mk(65536);
    spares.adopt(small);
    const smallSpare = spares.list()[0]!.path;
    const bigger = mk(2 * 65536);
    spares.adopt(bigger);
    expect(spares.list().map((s) => s.bytes)).toEqual([2 * 65536]);
    const tooBig = mk(8 * 65536);
    const before = new Set(mySpares());
    spares.adopt(tooBig);
    const tooBigSpare = mySpares().filter((n) => !before.has(n));
    expect(spares.list().map((s) => s.bytes)).toEqual([2 * 65536]);
    expect(spares.evicted).toBe(2);
    expect(await gone(smallSpare)).toBe(true);
    for (const n of tooBigSpare) expect(await gone(join(MIGRATION_DIR, n))).toBe(true);
    expect(existsSync(tooBig)).toBe(false);
    expect(existsSync(spares.list()[0]!.path)).toBe(true);
    // not a migration file: neither renamed nor removed
    const other = join(MIGRATION_DIR, `not-gridvm-${process.pid}.raw`);
    writeFileSync(other, 'keep me');
    spares.adopt(other);
    spares.adopt('/etc/hostname');
    expect(readFileSync(other, 'utf8')).toBe('keep me');
    rmSync(other);
    const kept = spares.list()[0]!.path;
    spares.clear();
    expect(existsSync(kept)).toBe(false);
  });

  it('the spares of a process are swept with its carrier files when it ends', () => {
    const spares = new SpareFiles();
    const f = migrationFileName(3);
    writeFileSync(f, new Uint8Array(65536));
    spares.adopt(f);
    const spare = spares.list()[0]!.path;
    expect(mySpares()).toContain(basename(spare));
    // a sweep towards one peer (it went away) keeps them; the end of the process does not
    sweepCarrierFiles(process.pid, 'n1');
    expect(existsSync(spare)).toBe(true);
    sweepCarrierFiles(process.pid);
    expect(mySpares()).toEqual([]);
    // a spare that went missing is skipped: the claim makes a new file
    const c = spares.claim(migrationFileName(3), 65536);
    expect(c.reused).toBe(false);
    closeSync(c.fd);
    spares.clear();
    for (const n of readdirSync(MIGRATION_DIR)) if (n.startsWith(`gridvm-snap-${process.pid}-3-`)) rmSync(join(MIGRATION_DIR, n));
  });
});
