// Tier-up re-entries (MachineOptions.reenterAt / reenterEvery): the Machine unwinds the running job and rewinds it
// at once, so a long-running main leaves V8's baseline code. gridvm's unwind writes the frames into a window at
// offset 0 of the job's memory; a re-entry backs up only what that window covers (64 KiB first, widened through
// gridvm.unwind_window as deep stacks need) instead of all of memory, and puts those bytes back after the unwind.
import { existsSync, readFileSync } from 'node:fs';
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { prepareJob } from '../../vm/index.js';
import { findWasmOpt, nativeAsyncify } from '../../runtime-node/wasm-opt.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { loadGuest, TestVm } from '../harness/grid.js';
import { reference, wat } from '../harness/wat.js';

// Live data in the first 256 KiB, read back at the bottom of a recursion 6000 deep whose frames (six i64 locals
// live across each call) need a window of ~300 KiB: every byte a re-entry's window covered must be put back.
const DEEP = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 16)
  (func $sum (result i64)
    (local $i i32) (local $h i64)
    (loop $l
      (local.set $h (i64.add (i64.mul (local.get $h) (i64.const 1099511628211)) (i64.load (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 262144))))
    (local.get $h))
  (func $rec (param $n i32) (param $a i64) (param $b i64) (param $c i64) (param $d i64) (param $e i64) (param $f i64) (result i64)
    (if (i32.eqz (local.get $n)) (then (return (call $sum))))
    (i64.xor
      (call $rec (i32.sub (local.get $n) (i32.const 1))
        (i64.add (local.get $a) (i64.const 3)) (i64.xor (local.get $b) (i64.extend_i32_u (local.get $n)))
        (i64.mul (local.get $c) (i64.const 5)) (i64.sub (local.get $d) (local.get $a))
        (i64.rotl (local.get $e) (i64.const 7)) (i64.add (local.get $f) (local.get $e)))
      (i64.add (i64.add (i64.add (local.get $a) (local.get $b)) (i64.add (local.get $c) (local.get $d)))
        (i64.add (local.get $e) (local.get $f)))))
  (func $print (param $v i64)
    (i64.store (i32.const 300016) (local.get $v))
    (i32.store (i32.const 300000) (i32.const 300016))
    (i32.store (i32.const 300004) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 300000) (i32.const 1) (i32.const 300008))))
  (func (export "_start")
    (local $i i32) (local $r i32)
    (local.set $r (i32.const 12345))
    (loop $fill
      (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 1103515245)) (i32.const 12345)))
      (i32.store (local.get $i) (local.get $r))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 262144))))
    (call $print (call $rec (i32.const 6000) (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4) (i64.const 5) (i64.const 6)))
    (call $print (call $sum))))`;

describe.runIf(hasClang() && existsSync(guestPath('recursion')))('tier-up re-entries', () => {
  it('recursion re-entered at every yield, deep trees included: the output and fuel of a run without re-entries', async () => {
    const job = await loadGuest('recursion');
    // scale 2: trees 4000-11000 deep (short fib phases)
    const args = ['recursion', '2', '26'];
    const plain = new TestVm(job, { args, machine: { reenterAt: [] } });
    expect(plain.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(plain.machine.reentries).toBe(0);
    const busy = new TestVm(job, { args, machine: { slice: 20_000, reenterAt: [0], reenterEvery: 0 } });
    expect(busy.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(busy.stdout).toBe(plain.stdout);
    expect(busy.stderr).toBe(plain.stderr);
    expect(busy.stdout).toMatch(/tree round 7: depth=11000 /);
    expect(busy.machine.fuelUsed).toBe(plain.machine.fuelUsed);
    // hundreds of re-entries, and the trees (thousands of frames deep) made windows wider than the first 64 KiB
    expect(busy.machine.reentries).toBeGreaterThan(200);
    expect(busy.machine.windowWidenings).toBeGreaterThan(0);
  });

  it('memtouch, 64 MiB, re-entered at every yield: the output and fuel of a run without re-entries', async () => {
    // memtouch fills its memory and keeps dirtying it: any byte of the window not put back would show in its sums
    const job = await loadGuest('memtouch');
    const args = ['memtouch', '64', '400', '20000'];
    const plain = new TestVm(job, { args, machine: { reenterAt: [] } });
    expect(plain.machine.run()).toEqual({ kind: 'exit', code: 0 });
    const busy = new TestVm(job, { args, machine: { slice: 50_000, reenterAt: [0], reenterEvery: 0 } });
    expect(busy.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(busy.stdout).toBe(plain.stdout);
    expect(busy.machine.fuelUsed).toBe(plain.machine.fuelUsed);
    expect(busy.machine.reentries).toBeGreaterThan(50);
  });

  it('live data under a window widened past 64 KiB is put back: a deep recursion re-entered at every yield', async () => {
    const original = wat(DEEP, binaryen.Features.MVP | binaryen.Features.MutableGlobals);
    const expected = reference(original);
    expect(expected.length).toBe(16);
    const job = await prepareJob(original);
    for (const slice of [97, 313]) {
      const vm = new TestVm(job, { machine: { slice, reenterAt: [0], reenterEvery: 0 } });
      expect(vm.machine.run()).toEqual({ kind: 'exit', code: 0 });
      expect(Buffer.concat(vm.out).equals(expected), `slice ${slice}`).toBe(true);
      expect(vm.machine.reentries).toBeGreaterThan(8);
      expect(vm.machine.windowWidenings).toBeGreaterThan(2);
    }
  });

  it('by default, the first Machine of a module re-enters at 50, 150 and 450 ms; later ones of the module, warm, do not', async () => {
    // a fresh module object (not the shared compiled one of other tests): the warmth is per module
    const shared = await loadGuest('nbody');
    const job = { ...shared, module: new WebAssembly.Module(shared.bytes as Uint8Array<ArrayBuffer>) };
    const args = ['nbody', '12000000'];
    const first = new TestVm(job, { args });
    expect(first.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(first.machine.elapsedMs).toBeGreaterThan(450);
    expect(first.machine.reentries).toBe(3);
    const second = new TestVm(job, { args });
    expect(second.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(second.machine.reentries).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(second.machine.fuelUsed).toBe(first.machine.fuelUsed);
    // asked for explicitly, re-entries still happen
    const asked = new TestVm(job, { args: ['nbody', '400000'], machine: { reenterAt: [0, 1] } });
    expect(asked.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(asked.machine.reentries).toBe(2);
  });

  it.runIf(findWasmOpt() || process.env.CI)('a module flattened by native wasm-opt (resume versions without clean loop copies) makes no default re-entries', async () => {
    const shared = await loadGuest('nbody');
    const native = await prepareJob(new Uint8Array(readFileSync(guestPath('nbody'))), { instrument: { asyncify: nativeAsyncify()! } });
    expect(native.info.stats.unwind).toMatchObject({ by: 'gridvm', cleanLoops: 0 });
    const args = ['nbody', '12000000'];
    const run = new TestVm(native, { args });
    expect(run.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(run.machine.elapsedMs).toBeGreaterThan(450);
    expect(run.machine.reentries).toBe(0);
    const plain = new TestVm(shared, { args, machine: { reenterAt: [] } });
    expect(plain.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(run.stdout).toBe(plain.stdout);
    // asked for explicitly, they still happen, and the output is the same
    const asked = new TestVm(native, { args: ['nbody', '400000'], machine: { reenterAt: [0, 1] } });
    expect(asked.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(asked.machine.reentries).toBe(2);
  });
});
