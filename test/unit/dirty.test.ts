// Dirty-page tracking (vm/dirty.ts, InstrumentOptions.dirtyPages): every store marks its page, so a checkpoint copies
// and ships only the pages written since the previous one. The check that matters: at every checkpoint, the memory
// the VM captured (its mirror, brought up to date from the marks alone) must equal the job's real memory at that
// instant, byte for byte, and a chain of tracked deltas must rebuild it. A store kind the pass missed, a kernel write
// not marked, or a store crossing into a page that is not copied shows up here as a differing byte.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import type { MountSpec } from '../../kernel/index.js';
import {
  applyChain,
  concatChunks,
  createMemory,
  createPageEngine,
  decodeSnapshot,
  encodeSnapshot,
  instrument,
  prepareJob,
  type CompiledJob,
  type DecodedSnapshot,
  type DeltaBase,
  type Machine,
  readU32List,
  type Snapshot,
} from '../../vm/index.js';
import { DIRTY_BASE_GLOBAL } from '../../vm/names.js';
import { loadGuest, ownSnapshot, roundTrip, TestVm } from '../harness/grid.js';
import { hasGuest } from '../harness/guests.js';
import { readFileSync } from 'node:fs';
import { guestPath } from '../harness/guests.js';
import { reference, wat } from '../harness/wat.js';

const FEATURES = binaryen.Features.MVP | binaryen.Features.MutableGlobals | binaryen.Features.SIMD128 | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt;

const PAGE = 65536;

// Every kind of write: plain stores of each width with offsets, SIMD stores and lane stores, atomic-free bulk
// operations (fill, copy, init from a passive segment), a store nested in another store's value, a store that
// crosses a page boundary, random_get (a kernel write), and memory.grow / memory.size (the job must not see the map).
const MODULE = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 3)
  (data $seg "gridvm-dirty-seg")
  (global $h (mut i32) (i32.const 7))
  (type $un (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $mix)
  (func $mix (param $x i32) (result i32)
    (i32.add (i32.mul (local.get $x) (i32.const 1103515245)) (i32.const 12345)))
  ;; a loop that can be a safe point (it calls through the table, so it is not a leaf)
  (func $pause (param $n i32) (result i32)
    (local $k i32) (local $h i32)
    (loop $l
      (local.set $h (call_indirect (type $un) (i32.add (local.get $h) (local.get $k)) (i32.const 0)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (local.get $n))))
    (local.get $h))
  (func $step (param $i i32)
    (local $a i32) (local $r i32) (local $b i32)
    (local.set $r (call $mix (local.get $i)))
    (local.set $a (i32.add (i32.const 65536) (i32.mul (i32.rem_u (local.get $i) (i32.const 37)) (i32.const 1024))))
    (i32.store offset=4 (local.get $a) (local.get $r))
    (i64.store8 offset=9 (local.get $a) (i64.extend_i32_u (local.get $i)))
    (i32.store16 offset=11 (local.get $a) (local.get $i))
    (f64.store offset=16 (local.get $a) (f64.convert_i32_u (local.get $r)))
    (f32.store offset=24 (local.get $a) (f32.convert_i32_u (local.get $i)))
    (i64.store32 offset=28 (local.get $a) (i64.const 0x1234567890))
    (v128.store offset=32 (local.get $a) (i32x4.splat (local.get $r)))
    (v128.store8_lane offset=48 3 (local.get $a) (i32x4.splat (local.get $i)))
    ;; page 2, only every 5th step
    (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 5)))
      (then (i64.store (i32.add (i32.const 131072) (i32.mul (i32.rem_u (local.get $i) (i32.const 61)) (i32.const 8))) (i64.extend_i32_u (local.get $r)))))
    ;; a store whose value does a store of its own
    (i32.store (i32.const 100000)
      (block (result i32) (i32.store (i32.const 140000) (local.get $i)) (i32.add (local.get $i) (i32.const 1))))
    ;; bulk operations
    (memory.fill (i32.add (i32.const 150000) (i32.rem_u (local.get $i) (i32.const 100))) (local.get $i) (i32.const 300))
    (memory.copy (i32.add (i32.const 70000) (i32.rem_u (local.get $i) (i32.const 33))) (i32.const 150000) (i32.const 100))
    (memory.init $seg (i32.add (i32.const 175000) (i32.rem_u (local.get $i) (i32.const 9))) (i32.const 0) (i32.const 16))
    ;; a kernel write into page 1
    (drop (call $random_get (i32.const 106000) (i32.const 16)))
    ;; after the grow: a kernel write into page 3, which nothing else writes, every 50th step; and a store that
    ;; crosses from page 4 into page 5 (5 is written by nothing else)
    (if (i32.and (i32.ge_u (local.get $i) (i32.const 1500)) (i32.eqz (i32.rem_u (local.get $i) (i32.const 50))))
      (then (drop (call $random_get (i32.add (i32.const 196608) (i32.mul (i32.rem_u (local.get $i) (i32.const 100)) (i32.const 16))) (i32.const 16)))))
    (if (i32.ge_u (local.get $i) (i32.const 1500))
      (then (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 97)))
        (then (i64.store (i32.const 327676) (i64.mul (i64.extend_i32_u (local.get $r)) (i64.const 0x100000001)))))))
    ;; after the grow: stores through one pointer that share a mark, then a call that can be a safe point, so the
    ;; next store through it must mark again; one at an offset past a mark's reach (page 5); and one through a
    ;; pointer at the end of page 5 that lands 2000 bytes into page 6, which nothing else writes (the mark's spill)
    (if (i32.ge_u (local.get $i) (i32.const 1500))
      (then
        (local.set $b (i32.add (i32.const 262144) (i32.mul (i32.rem_u (local.get $i) (i32.const 13)) (i32.const 1000))))
        (i32.store (local.get $b) (local.get $i))
        (i32.store offset=8 (local.get $b) (local.get $r))
        (drop (call $pause (i32.const 20)))
        (i64.store offset=16 (local.get $b) (i64.extend_i32_u (local.get $i)))
        (i32.store offset=70000 (local.get $b) (local.get $r))
        (local.set $b (i32.const 393208))
        (i32.store offset=2000 (local.get $b) (local.get $i))))
    ;; every 50th step only (so no other store marks these pages before the next checkpoint): a store at the end of
    ;; page 7, a call that can be a safe point, and a store through the same pointer that lands in page 8. It must
    ;; mark again: a checkpoint inside the call cleared the first store's mark
    (if (i32.and (i32.ge_u (local.get $i) (i32.const 1500)) (i32.eq (i32.rem_u (local.get $i) (i32.const 50)) (i32.const 7)))
      (then
        (local.set $b (i32.const 524280))
        (i32.store (local.get $b) (local.get $i))
        (drop (call $pause (i32.const 20)))
        (i32.store offset=3000 (local.get $b) (local.get $r))))
    (global.set $h (i32.xor (call $mix (global.get $h)) (local.get $r))))
  (func $print (param $v i32)
    (i32.store (i32.const 16) (local.get $v))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; hash of all of memory but the random bytes
  (func $sum (result i32)
    (local $p i32) (local $s i32) (local $end i32)
    (memory.fill (i32.const 106000) (i32.const 0) (i32.const 16))
    (memory.fill (i32.const 196608) (i32.const 0) (i32.const 1600))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (loop $l
      (local.set $s (i32.add (i32.mul (local.get $s) (i32.const 31)) (i32.load (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br_if $l (i32.lt_u (local.get $p) (local.get $end))))
    (local.get $s))
  (func (export "_start")
    (local $i i32)
    (call $print (memory.size))
    (loop $l
      (call $step (local.get $i))
      (if (i32.eq (local.get $i) (i32.const 1000))
        (then (call $print (memory.grow (i32.const 6))) (call $print (memory.size))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3000))))
    (call $print (global.get $h))
    (call $print (call $sum))))`;

/** The job's memory as a snapshot holds it: the map's page zeroed. */
function truthOf(m: Machine): Uint8Array {
  const mem = new Uint8Array(m.memory.buffer).slice();
  const base = (m.instance.exports[DIRTY_BASE_GLOBAL] as WebAssembly.Global).value as number;
  mem.fill(0, base, base + PAGE);
  return mem;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

interface Checked {
  stdout: Buffer;
  checkpoints: number;
  /** checkpoints whose capture was compared with the job's memory (past the Asyncify window) */
  compared: number;
  /** checkpoints whose capture was compared with the job's whole memory at the instant it was decided */
  exact: number;
  deltaPages: number[];
  pages: number;
}

/**
 * Run with a checkpoint at every yield; compare each capture with the real memory at the moment it was decided
 * (when nothing ran in between), and rebuild every capture from a chain of tracked deltas.
 */
function runChecked(job: CompiledJob, slice: number, args: string[] = [], mounts: MountSpec[] = []): Checked {
  const engine = createPageEngine('auto');
  let truth: { mem: Uint8Array; fuel: number } | undefined;
  const chain: DecodedSnapshot[] = [];
  let base: DeltaBase | undefined;
  let compared = 0;
  let exact = 0;
  const deltaPages: number[] = [];
  let pages = 0;
  let rebuilt = new Uint8Array(0);
  // eslint-disable-next-line prefer-const
  let vm: TestVm;
  const onCheckpoint = (s: Snapshot) => {
    expect(s.tracking, 'a tracked module reports its page changes').toBeDefined();
    if (truth && truth.fuel === vm.machine.fuelUsed) {
      // decided and captured at the same yield: the whole memory can be compared with the job's at that instant
      const at = firstDiff(s.memory, truth.mem);
      expect(at, `checkpoint ${s.seq}: captured memory differs from the job's at byte ${at} (page ${at >> 16})`).toBe(-1);
      exact++;
    }
    // the job's memory now (the capture has just been made; nothing ran since): equal past the Asyncify window at
    // offset 0, which the capture itself rewrote from the captured copy
    const live = truthOf(vm.machine);
    const from = 8 + s.asyncify.length;
    const liveAt = firstDiff(s.memory.subarray(from), live.subarray(from));
    expect(liveAt, `checkpoint ${s.seq}: captured memory differs from the job's at byte ${from + liveAt} (page ${(from + liveAt) >> 16})`).toBe(-1);
    compared++;
    const e = encodeSnapshot(s, engine, base ? { delta: base } : {});
    // the same file from views of the pages where they are (a runner's pre-copy written to its file): nothing copied
    const v = encodeSnapshot(s, engine, { ...(base ? { delta: base } : {}), views: true });
    expect(v.id).toBe(e.id);
    expect(Buffer.from(concatChunks(v.chunks)).equals(Buffer.from(concatChunks(e.chunks)))).toBe(true);
    const area = engine.area(0).buffer;
    expect(v.chunks.slice(2).every((c) => c.buffer === s.memory.buffer || c.buffer === area), 'data chunks are views').toBe(true);
    if (base) {
      expect(e.header.kind).toBe('delta');
      deltaPages.push(e.header.dataPages.length / 4 + e.header.zeroPages.length / 4);
    }
    base = e.base;
    // rebuild from the chain, link by link (the previous links are already in `rebuilt`)
    const link = decodeSnapshot(concatChunks(e.chunks), engine);
    chain.push(link);
    if (rebuilt.length < s.pages * PAGE) {
      const grown = new Uint8Array(s.pages * PAGE);
      grown.set(rebuilt);
      rebuilt = grown;
    }
    if (chain.length === 1) applyChain(chain, rebuilt);
    else {
      readU32List(link.header.dataPages).forEach((p, k) => rebuilt.set(link.data.subarray(k * PAGE, (k + 1) * PAGE), p * PAGE));
      for (const p of readU32List(link.header.zeroPages)) rebuilt.fill(0, p * PAGE, (p + 1) * PAGE);
    }
    const chainAt = firstDiff(rebuilt, s.memory);
    expect(chainAt, `checkpoint ${s.seq}: the delta chain rebuilds a memory that differs at byte ${chainAt}`).toBe(-1);
    pages = s.pages;
  };
  vm = new TestVm(job, {
    args: ['t', ...args],
    mounts,
    machine: {
      slice,
      reenterAt: [],
      policy: (m) => {
        truth = { mem: truthOf(m), fuel: m.fuelUsed };
        return 'checkpoint';
      },
      onCheckpoint,
    },
  });
  const o = vm.machine.run();
  expect(o.kind === 'trap' ? o.trap.message : o.kind).toBe('exit');
  return { stdout: Buffer.concat(vm.out), checkpoints: vm.machine.checkpoints, compared, exact, deltaPages, pages };
}

describe('dirty-page tracking', () => {
  const original = wat(MODULE, FEATURES);
  const expected = reference(original);

  it('instruments every store kind, and the job sees its own memory size', async () => {
    const { info, bytes } = instrument(original, { dirtyPages: true });
    expect(info.dirtyPages).toBe(true);
    expect(info.globals).toContain(DIRTY_BASE_GLOBAL);
    // 19 stores in $step (a lane store among them), 3 in $print; fill, copy, init in $step and 2 fills in $sum. Of
    // the stores through $a, the first marks the page and the next 6 share its mark (no call in between); through
    // $b, the second shares the first's mark, the third follows a call and marks again, the fourth is too far
    expect(info.stats.dirtyStores! + info.stats.dirtySharedMarks!).toBe(22 + 5);
    expect(info.stats.dirtySharedMarks).toBe(7);
    expect(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)).toBe(true);
    const job = await prepareJob(original, { instrument: { dirtyPages: true } });
    const plain = await prepareJob(original);
    expect(job.hash).not.toBe(plain.hash);
    const vm = new TestVm(job, { machine: { reenterAt: [] } });
    const o = vm.machine.run();
    expect(o.kind).toBe('exit');
    const out = Buffer.concat(vm.out);
    // memory.size 3, grow returns 3, then 9: the map's page is invisible
    expect([...new Uint32Array(out.buffer, out.byteOffset, 3)]).toEqual([3, 3, 9]);
    expect(out.equals(expected)).toBe(true);
    // the real memory has the map on top
    expect(vm.machine.memory.buffer.byteLength).toBe(10 * PAGE);
  });

  it('captures exactly the job memory at every checkpoint from the marks alone, and deltas rebuild it', async () => {
    const job = await prepareJob(original, { instrument: { dirtyPages: true } });
    const r = runChecked(job, 50);
    expect(r.stdout.equals(expected)).toBe(true);
    expect(r.checkpoints).toBeGreaterThan(30);
    expect(r.compared).toBe(r.checkpoints);
    expect(r.exact).toBeGreaterThan(20);
    // the job writes pages 0 (print), 1, 2 and (later) 3-8 between checkpoints: deltas stay small
    expect(Math.max(...r.deltaPages)).toBeLessThanOrEqual(10);
    expect(r.pages).toBe(10);
  });

  it('suspended at every few slices and resumed in fresh Machines from encoded snapshots: same output', async () => {
    const job = await prepareJob(original, { instrument: { dirtyPages: true } });
    let decisions = 0;
    // the memory limit is exactly the job's largest memory (9 pages): the map's page does not count against it, when the
    // job grows or when a Machine is made for a restore
    const machine = { slice: 101, reenterAt: [], maxMemoryBytes: 9 * PAGE, policy: () => (++decisions % 3 === 0 ? 'suspend' as const : 'checkpoint' as const) };
    let vm = new TestVm(job, { machine });
    const outs = [vm.out];
    let machines = 1;
    for (;;) {
      const o = vm.machine.run();
      if (o.kind === 'suspended') {
        // restored into a memory of the snapshot's size, as the grid's runners do
        const memory = createMemory(job.info.memory!, o.snapshot.pages);
        vm = new TestVm(job, { machine: { ...machine, memory } }, roundTrip(ownSnapshot(o.snapshot)));
        outs.push(vm.out);
        machines++;
        continue;
      }
      expect(o.kind).toBe('exit');
      break;
    }
    expect(machines).toBeGreaterThan(10);
    expect(Buffer.concat(outs.flat()).equals(expected)).toBe(true);
  });

  it('refuses a module whose memory cannot grow by the map\'s page, and runs a start function that stores', async () => {
    const fixed = wat(MODULE.replace('(memory (export "memory") 3)', '(memory (export "memory") 3 3)'), FEATURES);
    expect(() => instrument(fixed, { dirtyPages: true })).toThrow(/dirty-page tracking needs one memory page above the module's initial 3 pages/);
    // a start section runs at instantiation, before _start: its stores already mark the map
    const started = wat(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func $init (i32.store (i32.const 100) (i32.const 0x6b6f)))
      (start $init)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 2))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`, FEATURES);
    const job = await prepareJob(started, { instrument: { dirtyPages: true } });
    const vm = new TestVm(job, { machine: { reenterAt: [] } });
    expect(vm.machine.run().kind).toBe('exit');
    expect(vm.stdout).toBe('ok');
  });

  it('refuses a delta across Machines without hashes by writing a full snapshot', async () => {
    const job = await prepareJob(original, { instrument: { dirtyPages: true } });
    const engine = createPageEngine('auto');
    const first = new TestVm(job, { machine: { slice: 500, reenterAt: [], policy: () => "suspend" as const } });
    const o1 = first.machine.run();
    expect(o1.kind).toBe('suspended');
    const s1 = o1.kind === 'suspended' ? ownSnapshot(o1.snapshot) : undefined!;
    const full = encodeSnapshot(s1, engine);
    const tracked = { ...full.base, hashes: undefined };
    const second = new TestVm(job, { machine: { slice: 500, reenterAt: [], policy: () => "suspend" as const } }, roundTrip(s1));
    const o2 = second.machine.run();
    expect(o2.kind).toBe('suspended');
    if (o2.kind !== 'suspended') return;
    // another Machine's capture: its changes cannot be compared with the first one's
    expect(encodeSnapshot(o2.snapshot, engine, { delta: tracked }).header.kind).toBe('full');
    // with the base's hashes it is a delta again
    expect(encodeSnapshot(o2.snapshot, engine, { delta: full.base }).header.kind).toBe('delta');
  });
});

describe('dirty-page tracking on real guests', () => {
  const data: MountSpec[] = [{ guest: '/data', kind: 'memory' }];
  const cases: Array<{ name: string; args: string[]; mounts?: MountSpec[] }> = [
    { name: 'malloc_churn', args: ['2', '60000'] },
    { name: 'fileio', args: ['/data', '3'], mounts: data },
    { name: 'recursion', args: ['1'] },
    { name: 'clocks_random', args: [] },
    { name: 'as_gc', args: [] },
  ];
  for (const c of cases) {
    it.runIf(hasGuest(c.name) || process.env.CI)(`${c.name}: every capture equals the job's memory, and the output is unchanged`, async () => {
      const bytes = new Uint8Array(readFileSync(guestPath(c.name)));
      const job = await prepareJob(bytes, { instrument: { dirtyPages: true } });
      const plain = await loadGuest(c.name);
      const ref = new TestVm(plain, { args: ['t', ...c.args], mounts: c.mounts ?? [], machine: { reenterAt: [] } });
      expect(ref.machine.run().kind).toBe('exit');
      // about 40 checkpoints over the run
      const r = runChecked(job, Math.max(1, Math.floor(ref.machine.fuelUsed / 40)), c.args, c.mounts);
      expect(r.checkpoints).toBeGreaterThanOrEqual(20);
      expect(r.compared).toBe(r.checkpoints);
      if (c.name !== 'clocks_random') expect(r.stdout.equals(Buffer.concat(ref.out))).toBe(true);
      else expect(r.stdout.length).toBeGreaterThan(0);
    });
  }
});
