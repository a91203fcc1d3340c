// gridvm's own stack capture (vm/unwind.ts) and the budget checks before recursive calls (vm/budget.ts,
// insertPreCallChecks): loop-free recursion (fib, a tree walk with an early return), mutual recursion through a
// table, a local live across calls only through a loop's back edge (and an outer loop's), values of every frame type (i32, i64, f32, f64, v128) live across calls. (A blocking import whose result
// overwrites the local it was given, re-called by a rewind, is in grid-calls.test.ts.) The same job instrumented with gridvm's unwind and with Binaryen's Asyncify must compute
// what the original computes under checkpoints at every slice and suspensions into fresh Machines, with the same fuel
// for any slice; a module the unwind does not handle (exception handling) falls back to Asyncify and stays exact.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { instrument, prepareJob, type CompiledJob, type InstrumentOptions, type YieldAction } from '../../vm/index.js';
import { ownSnapshot, roundTrip, TestVm } from '../harness/grid.js';
import { reference, wat } from '../harness/wat.js';
import { findWasmOpt, nativeAsyncify } from '../../runtime-node/wasm-opt.js';
import { functionBodies } from '../../vm/wasmcode.js';

const PRINT = `
  (func $print (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))`;

const MODULE = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (type $pred (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 2 funcref)
  (elem (i32.const 0) $even $odd)
  ;; loop-free recursion: a check before the first recursive call only
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  ;; an early return out of a block, then two calls whose operands are live across the first
  (func $walk (param $d i32) (param $acc i64) (result i64)
    (block $go
      (br_if $go (local.get $d))
      (return (i64.add (local.get $acc) (i64.const 1))))
    (i64.add
      (i64.mul (call $walk (i32.sub (local.get $d) (i32.const 1)) (i64.add (local.get $acc) (i64.extend_i32_u (local.get $d)))) (i64.const 31))
      (call $walk (i32.shr_u (local.get $d) (i32.const 1)) (i64.xor (local.get $acc) (i64.const 0x9e3779b97f4a7c15)))))
  ;; mutual recursion through the table (each keeps its entry check for rewinds: it is address-taken)
  (func $even (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 1))
      (else (call_indirect (type $pred) (i32.sub (local.get $n) (i32.const 1)) (i32.const 1)))))
  (func $odd (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 0))
      (else (call_indirect (type $pred) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0)))))
  ;; every frame type live across recursive calls
  (func $mix (param $n i32) (param $x i64) (param $f f32) (param $g f64) (result i64)
    (local $v v128)
    (if (i32.eqz (local.get $n)) (then (return (i64.add (local.get $x) (i64.trunc_f64_s (local.get $g))))))
    (local.set $v (i64x2.splat (i64.add (local.get $x) (i64.const 7))))
    (local.set $x (call $mix (i32.sub (local.get $n) (i32.const 1)) (local.get $x) (f32.mul (local.get $f) (f32.const 1.5)) (f64.add (local.get $g) (f64.const 0.25))))
    (i64.add (i64.add (local.get $x) (i64x2.extract_lane 1 (local.get $v)))
      (i64.add (i64.trunc_f32_s (local.get $f)) (call $mix (i32.shr_u (local.get $n) (i32.const 2)) (local.get $x) (local.get $f) (local.get $g)))))
  ;; $k is read only after the loop, which ends by a branch out: it is live across the calls through the back edge
  (func $carry (param $n i32) (result i32)
    (local $i i32) (local $k i32)
    (local.set $k (i32.mul (local.get $n) (i32.const 7)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (drop (call $fib (i32.add (i32.const 3) (i32.and (local.get $i) (i32.const 3)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.add (local.get $k) (local.get $i)))
  ;; the same through two loops: $k is live across the inner loop's calls only through the outer back edge
  (func $nest (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $k i32)
    (local.set $k (i32.mul (local.get $n) (i32.const 5)))
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $inner_done
          (loop $inner
            (br_if $inner_done (i32.ge_u (local.get $j) (i32.const 3)))
            (drop (call $fib (i32.add (i32.const 2) (i32.and (i32.add (local.get $i) (local.get $j)) (i32.const 7)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.add (local.get $k) (local.get $i)))
  ;; more sites than SHARED_FRAME_MIN_SITES (vm/unwind.ts): flattened by native wasm-opt, one frame layout and one save for all; each
  ;; site has other locals live after it (an i64, an f64, one arm of an if), read back only after the later calls
  (func $many (param $n i32) (result i64)
    (local $a i32) (local $b i64) (local $c f64) (local $d i32) (local $e i32)
    (local.set $a (call $fib (i32.add (i32.const 3) (i32.and (local.get $n) (i32.const 3)))))
    (local.set $b (i64.extend_i32_u (call $fib (i32.add (local.get $a) (i32.const 1)))))
    (local.set $c (f64.convert_i32_u (call $fib (i32.const 6))))
    (local.set $d (call $fib (i32.and (i32.wrap_i64 (local.get $b)) (i32.const 7))))
    (if (i32.and (local.get $n) (i32.const 1))
      (then (local.set $e (i32.add (call $fib (i32.const 5)) (local.get $a))))
      (else (local.set $e (i32.mul (call $fib (i32.const 4)) (local.get $d)))))
    (local.set $b (i64.add (local.get $b) (i64.extend_i32_u (call $fib (i32.const 3)))))
    (local.set $a (i32.xor (local.get $a) (call $fib (i32.const 7))))
    (local.set $c (f64.add (local.get $c) (f64.convert_i32_u (call $fib (local.get $e)))))
    (local.set $d (i32.add (local.get $d) (call $fib (i32.const 2))))
    (local.set $e (i32.sub (local.get $e) (call $fib (i32.const 8))))
    (i64.add (i64.add (local.get $b) (i64.trunc_f64_u (local.get $c)))
      (i64.extend_i32_u (i32.add (i32.add (local.get $a) (local.get $d)) (i32.add (local.get $e) (call $fib (i32.const 5)))))))
  ${PRINT}
  (func (export "_start")
    (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (call $fib (i32.add (i32.const 14) (i32.and (local.get $i) (i32.const 3)))))))
      (local.set $s (i64.xor (local.get $s) (call $walk (i32.add (i32.const 8) (i32.and (local.get $i) (i32.const 3))) (local.get $s))))
      (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (call_indirect (type $pred) (i32.add (i32.const 301) (local.get $i)) (i32.const 0)))))
      (local.set $s (i64.add (local.get $s) (call $mix (i32.const 12) (local.get $s) (f32.const 1.25) (f64.const 3.5))))
      (local.set $s (i64.mul (local.get $s) (i64.extend_i32_u (call $carry (i32.add (i32.const 5) (i32.and (local.get $i) (i32.const 7)))))))
      (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (call $nest (i32.add (i32.const 2) (i32.and (local.get $i) (i32.const 3)))))))
      (local.set $s (i64.xor (local.get $s) (call $many (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 40))))
    (call $print (local.get $s))
    (call $print (i64.extend_i32_u (call $fib (i32.const 22))))))`;

/** a function with two results (tuples in Binaryen's IR) that does not unwind: the rest of the module still can */
const WITH_TUPLE = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $pair (param $x i32) (result i32 i32) (local.get $x) (i32.mul (local.get $x) (i32.const 3)))
  (func $use (param $x i32) (result i32) (local $a i32) (local $b i32)
    (call $pair (local.get $x)) (local.set $b) (local.set $a)
    (i32.xor (local.get $a) (local.get $b)))
  ${PRINT}
  (func (export "_start") (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (i64.mul (local.get $s) (i64.const 31)) (i64.extend_i32_u (call $use (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 250000))))
    (call $print (local.get $s))))`;

/** a recursive function with a legacy try/catch: gridvm's unwind leaves such modules to Asyncify */
const WITH_TRY = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (tag $e (param i32))
  (memory (export "memory") 1)
  (func $down (param $n i32) (result i32)
    (if (i32.eqz (local.get $n)) (then (throw $e (i32.const 5))))
    (try (result i32)
      (do (i32.add (call $down (i32.sub (local.get $n) (i32.const 1))) (i32.const 1)))
      (catch $e (i32.add (i32.const 100)))))
  (func $sum (param $n i32) (result i64)
    (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (call $down (i32.add (i32.const 20) (i32.and (local.get $i) (i32.const 7)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $s))
  ${PRINT}
  (func (export "_start") (call $print (call $sum (i32.const 20000)))))`;

/** gridvm.yield put in the table and reached by call_indirect: only Asyncify checks the state after such a call */
const YIELD_IN_TABLE = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "gridvm" "yield" (func $y))
  (memory (export "memory") 1)
  (type $v (func))
  (table 2 funcref)
  (elem (i32.const 0) $y $nop)
  (func $nop)
  ${PRINT}
  (func $work (param $n i32) (result i64) (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (i64.mul (local.get $s) (i64.const 31)) (i64.extend_i32_u (local.get $i))))
      (call_indirect (type $v) (i32.and (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $s))
  (func (export "_start") (call $print (call $work (i32.const 3000)))))`;

function runVm(job: CompiledJob, slice: number, policy?: (n: number) => YieldAction): { stdout: Buffer; fuel: number; machines: number; checkpoints: number; deepest: number } {
  let decisions = 0;
  // a fuel limit far above what the job uses: a wrongly restored frame ends in a trap, not in a loop
  const machine = { slice, reenterAt: [], fuel: 50_000_000, ...(policy ? { policy: () => policy(++decisions) } : {}) };
  let vm = new TestVm(job, { machine });
  const outs: Uint8Array[][] = [vm.out];
  let machines = 1;
  let checkpoints = 0;
  let deepest = 0;
  for (;;) {
    const o = vm.machine.run();
    checkpoints += vm.machine.checkpoints;
    if (o.kind === 'suspended') {
      deepest = Math.max(deepest, o.snapshot.asyncify.length);
      vm = new TestVm(job, { machine }, roundTrip(ownSnapshot(o.snapshot)));
      outs.push(vm.out);
      machines++;
      continue;
    }
    expect(o.kind === 'trap' ? o.trap.message : o.kind).toBe('exit');
    return { stdout: Buffer.concat(outs.flat()), fuel: vm.machine.fuelUsed, machines, checkpoints, deepest };
  }
}

/** Plain runs at several slices, checkpoints at every slice, suspensions into fresh Machines: all exact. */
async function exactEverywhere(original: Uint8Array, expected: Buffer, instrumentOpts: InstrumentOptions): Promise<{ fuel: number; deepest: number }> {
  const job = await prepareJob(original, { instrument: instrumentOpts });
  const plain = runVm(job, 200_000);
  expect(plain.stdout.equals(expected)).toBe(true);
  expect(plain.fuel).toBeLessThan(5_000_000);
  for (const slice of [1, 13, 4099]) {
    const r = runVm(job, slice);
    expect(r.stdout.equals(expected), `slice ${slice}`).toBe(true);
    expect(r.fuel, `slice ${slice}`).toBe(plain.fuel);
  }
  const ck = runVm(job, 211, () => 'checkpoint');
  expect(ck.checkpoints).toBeGreaterThan(100);
  expect(ck.stdout.equals(expected)).toBe(true);
  expect(ck.fuel).toBe(plain.fuel);
  const moved = runVm(job, 307, (n) => (n % 5 === 0 ? 'suspend' : 'continue'));
  expect(moved.machines).toBeGreaterThan(30);
  expect(moved.stdout.equals(expected)).toBe(true);
  expect(moved.fuel).toBe(plain.fuel);
  return { fuel: plain.fuel, deepest: moved.deepest };
}

const F = binaryen.Features;

describe("gridvm's unwind: a fast and a resume version of each function that may suspend", () => {
  const original = wat(MODULE, F.MVP | F.MutableGlobals | F.SIMD128);
  const expected = reference(original);

  it('is used for this module, with checks before the recursive calls instead of at the entries', () => {
    expect(expected.length).toBe(16);
    const { info } = instrument(original);
    expect(info.stats.unwind).toMatchObject({ by: 'gridvm' });
    expect((info.stats.unwind as { functions: number }).functions).toBeGreaterThanOrEqual(5);
    // a frame per site here; only modules flattened by native wasm-opt share one among many sites (next tests)
    expect((info.stats.unwind as { sharedFrames: number }).sharedFrames).toBe(0);
    // the outermost loops holding sites go on in a clean copy once a rewind is over: in _start, $carry and $nest,
    // the retry loop its yielding check calls out of (vm/budget.ts) around the function's own loop(s)
    expect((info.stats.unwind as { cleanLoops: number }).cleanLoops).toBe(3);
    // $fib and $walk get one each, $mix two (its second call follows an if that may return), $even/$odd one each
    expect(info.stats.preCallChecks).toBeGreaterThanOrEqual(5);
    expect(instrument(original, { unwind: 'asyncify' }).info.stats.unwind).toEqual({ by: 'asyncify' });
  });

  it('computes what the original computes under checkpoints and suspensions, as Asyncify does, with smaller frames', async () => {
    const own = await exactEverywhere(original, expected, {});
    const asy = await exactEverywhere(original, expected, { unwind: 'asyncify' });
    // the same budget checks: the same fuel whichever way the stack is captured
    expect(own.fuel).toBe(asy.fuel);
    // only the locals live after each call are saved
    expect(own.deepest).toBeGreaterThan(0);
    expect(own.deepest).toBeLessThan(asy.deepest);
  });

  it.runIf(findWasmOpt() || process.env.CI)('is exact when native wasm-opt flattens the whole module first and optimises after (large modules)', async () => {
    const native = { asyncify: nativeAsyncify()! };
    const stages: string[] = [];
    const out = instrument(original, { ...native, onProgress: (s) => void (stages.at(-1) !== s && stages.push(s)) });
    // $many's sites share one frame layout and one save, as do _start's (its nine calls and its loop's yielding
    // check); the others keep a frame per site
    expect(out.info.stats.unwind).toMatchObject({ by: 'gridvm', sharedFrames: 2 });
    // what a progress bar shows while the tool and binaryen.js take turns
    expect(stages.slice(-4)).toEqual([`flatten (${native.asyncify.id})`, 'unwind', `optimize (${native.asyncify.id})`, 'done']);
    const own = await exactEverywhere(original, expected, native);
    expect(own.deepest).toBeGreaterThan(0);
    expect(out.info.stats.unoptimizedBytes).toBeUndefined();
    expect(out.info.stats.optimizedInParts).toBeUndefined();
    // a module over the tool's size limit is optimised a part at a time (here: one function per part), just as exact
    const ran: string[][] = [];
    const parts = nativeAsyncify({ parts: true })!;
    expect(parts.id).toBe(`${native.asyncify.id}-parts`);
    const small = { ...parts, id: `${parts.id}-max0`, maxOptimizeBytes: 1, passes: (b: Uint8Array, flags: string[]) => (ran.push(flags), parts.passes(b, flags)) };
    const parted = instrument(original, { asyncify: small });
    expect(parted.info.stats.unoptimizedBytes).toBeUndefined();
    expect(parted.info.stats.optimizedInParts).toBe(functionBodies(parted.bytes).length);
    expect(parted.info.stats.optimizedInParts).toBeGreaterThan(10);
    expect(ran.map((f) => f[0])).toEqual(['--flatten']);
    await exactEverywhere(original, expected, { asyncify: small });
    // optimised in parts, the module is about as small as optimised whole (the whole-module passes left out)
    expect(parted.bytes.length).toBeLessThan(out.bytes.length * 1.25);
    // a tool that cannot optimise in parts leaves it unoptimised, and says why; just as exact
    const noParts = { ...nativeAsyncify({ parts: false })!, id: `${native.asyncify.id}-max0`, maxOptimizeBytes: 1 };
    const plain = instrument(original, { asyncify: noParts });
    expect(plain.info.stats.unoptimizedBytes).toBe(plain.bytes.length);
    expect(plain.info.stats.unoptimizedWhy).toMatch(/cannot optimise a module in parts/);
    expect(plain.bytes.length).toBeGreaterThan(parted.bytes.length);
    await exactEverywhere(original, expected, { asyncify: noParts });
  });

  it('handles a module with a multi-value function that does not unwind', async () => {
    const m = wat(WITH_TUPLE, F.MVP | F.MutableGlobals | F.Multivalue);
    const want = reference(m);
    expect(want.length).toBe(8);
    expect(instrument(m).info.stats.unwind).toMatchObject({ by: 'gridvm' });
    await exactEverywhere(m, want, {});
  });

  it('leaves a module with exception handling to Asyncify, which keeps it exact', async () => {
    const eh = wat(WITH_TRY, F.MVP | F.MutableGlobals | F.ExceptionHandling);
    const want = reference(eh);
    expect(want.length).toBe(8);
    expect(instrument(eh).info.stats.unwind).toEqual({ by: 'asyncify' });
    await exactEverywhere(eh, want, {});
    if (findWasmOpt() || process.env.CI) {
      // natively: the flattened module is dropped, Asyncify runs on the module as it was before
      const native = { asyncify: nativeAsyncify()! };
      expect((await prepareJob(eh, { instrument: native })).info.stats.unwind).toEqual({ by: 'asyncify' });
      await exactEverywhere(eh, want, native);
    }
  });

  it('leaves a module with a suspending import in its table to Asyncify (an indirect call could reach it)', async () => {
    const m = wat(YIELD_IN_TABLE, F.MVP | F.MutableGlobals);
    const want = reference(m);
    expect(want.length).toBe(8);
    expect(instrument(m).info.stats.unwind).toEqual({ by: 'asyncify' });
    await exactEverywhere(m, want, {});
  });
});
