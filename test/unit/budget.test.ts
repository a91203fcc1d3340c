// Budget checks with the budget held in a local (vm/budget.ts): loops with results, early returns from inside a
// loop, calls and call_indirect in loops (to functions that never touch the budget, called without writing it back,
// and to one without loops that calls one with), a loop left only by a branch, recursion with loops and a tail call, all
// through Asyncify. The instrumented module must compute what the original computes, and its fuel must not depend
// on where it was stopped: not on the slice size, not on checkpoints taken at every slice, not on being suspended
// and resumed in fresh Machines.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { instrument, prepareJob, type CompiledJob, type InstrumentOptions, type YieldAction } from '../../vm/index.js';
import { ownSnapshot, roundTrip, TestVm } from '../harness/grid.js';
import { reference, wat } from '../harness/wat.js';
import { unrollLoopsOf } from '../../vm/unroll.js';

const FEATURES = binaryen.Features.MVP | binaryen.Features.TailCall | binaryen.Features.MutableGlobals;

const MODULE = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (type $un (func (param i64) (result i64)))
  (memory (export "memory") 1)
  (table 2 funcref)
  (elem (i32.const 0) $inc $mix)
  (global $calls (mut i32) (i32.const 0))
  (func $inc (param $x i64) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i64.add (local.get $x) (i64.const 3)))
  ;; no loop of its own, but calls one that has: a caller must write its budget back before calling it
  (func $hop (param $x i64) (result i64)
    (i64.extend_i32_u (call $spin (i32.add (i32.wrap_i64 (i64.and (local.get $x) (i64.const 3))) (i32.const 2)))))
  (func $mix (param $x i64) (result i64)
    (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
  ;; a loop with a result, a direct call and a call_indirect in it, and a return from inside it
  (func $sum (param $n i32) (result i64)
    (local $i i32) (local $s i64)
    (loop $l (result i64)
      (local.set $s (i64.add (local.get $s) (call $inc (i64.extend_i32_u (local.get $i)))))
      (local.set $s (i64.add (local.get $s) (call $hop (local.get $s))))
      (local.set $s (call_indirect (type $un) (local.get $s) (i32.and (local.get $i) (i32.const 1))))
      (if (i32.eq (local.get $i) (i32.const 77777)) (then (return (i64.xor (local.get $s) (i64.const 0x5555)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))
      (local.get $s)))
  ;; a loop that never falls through (left by a branch), with a nested loop, and a call_indirect
  (func $spin (param $n i32) (result i32)
    (local $i i32) (local $h i32) (local $j i32)
    (block $out
      (loop $l
        (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (local.get $i)))
        (local.set $j (i32.const 0))
        (loop $inner
          (local.set $h (i32.xor (local.get $h) (i32.shl (local.get $j) (i32.const 3))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $inner (i32.lt_u (local.get $j) (i32.const 5))))
        (local.set $h (i32.wrap_i64 (call_indirect (type $un) (i64.extend_i32_u (local.get $h)) (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
        (br $l)))
    (local.get $h))
  ;; recursion with a loop (an entry check on the cached budget)
  (func $rec (param $d i32) (result i64)
    (local $i i32) (local $s i64)
    (if (i32.eqz (local.get $d)) (then (return (i64.const 1))))
    (loop $l
      (local.set $s (i64.add (local.get $s) (call $rec (i32.sub (local.get $d) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (i64.add (local.get $s) (i64.extend_i32_u (local.get $d))))
  ;; a self tail call after a loop
  (func $tail (param $k i32) (param $acc i64) (result i64)
    (local $j i32)
    (loop $l
      (local.set $acc (call $mix (local.get $acc)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $j) (i32.const 2))))
    (if (result i64) (i32.eqz (local.get $k))
      (then (local.get $acc))
      (else (return_call $tail (i32.sub (local.get $k) (i32.const 1)) (i64.add (local.get $acc) (i64.extend_i32_u (local.get $k)))))))
  (func $print (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $print (call $sum (i32.const 100000)))
    (call $print (i64.extend_i32_u (call $spin (i32.const 300000))))
    (call $print (call $rec (i32.const 9)))
    (call $print (call $tail (i32.const 2000) (i64.const 0)))
    (call $print (i64.extend_i32_u (global.get $calls)))))`;

function runVm(job: CompiledJob, slice: number, policy?: (n: number) => YieldAction): { stdout: Uint8Array; fuel: number; machines: number; checkpoints: number; code: number } {
  let decisions = 0;
  const machine = { slice, reenterAt: [], ...(policy ? { policy: () => policy(++decisions) } : {}) };
  let vm = new TestVm(job, { machine });
  const outs: Uint8Array[][] = [vm.out];
  let machines = 1;
  let checkpoints = 0;
  for (;;) {
    const o = vm.machine.run();
    checkpoints += vm.machine.checkpoints;
    if (o.kind === 'suspended') {
      vm = new TestVm(job, { machine }, roundTrip(ownSnapshot(o.snapshot)));
      outs.push(vm.out);
      machines++;
      continue;
    }
    expect(o.kind === 'trap' ? o.trap.message : o.kind).toBe('exit');
    return { stdout: Buffer.concat(outs.flat()), fuel: vm.machine.fuelUsed, machines, checkpoints, code: o.kind === 'exit' ? o.code : -1 };
  }
}

/**
 * The job's output and fuel at these slice sizes, with a checkpoint at every slice end and suspended every
 * `suspend.every`-th decision into fresh Machines, all equal to `plain`'s.
 */
/**
 * The module instrumented as by default and with `off` (an unrolling turned off): both compute the original's
 * output; returns the default job and both plain runs (their fuel to compare).
 */
async function withAndWithout(original: Uint8Array, expected: Uint8Array, off: InstrumentOptions): Promise<{ job: CompiledJob; plain: ReturnType<typeof runVm>; each: ReturnType<typeof runVm> }> {
  const job = await prepareJob(original);
  const plain = runVm(job, 200_000);
  const each = runVm(await prepareJob(original, { instrument: off }), 200_000);
  expect(Buffer.from(plain.stdout).equals(Buffer.from(expected))).toBe(true);
  expect(Buffer.from(each.stdout).equals(Buffer.from(expected))).toBe(true);
  return { job, plain, each };
}

function exactEverywhere(job: CompiledJob, expected: Uint8Array, plainFuel: number, o: { slices: number[]; checkpoint: { slice: number; atLeast: number }; suspend: { slice: number; every: number; atLeast: number } }): void {
  for (const slice of o.slices) {
    const r = runVm(job, slice);
    expect(Buffer.from(r.stdout).equals(Buffer.from(expected)), `slice ${slice}`).toBe(true);
    expect(r.fuel, `slice ${slice}`).toBe(plainFuel);
  }
  const ck = runVm(job, o.checkpoint.slice, () => 'checkpoint');
  expect(ck.checkpoints).toBeGreaterThan(o.checkpoint.atLeast);
  expect(Buffer.from(ck.stdout).equals(Buffer.from(expected))).toBe(true);
  expect(ck.fuel).toBe(plainFuel);
  const moved = runVm(job, o.suspend.slice, (n) => (n % o.suspend.every === 0 ? 'suspend' : 'continue'));
  expect(moved.machines).toBeGreaterThan(o.suspend.atLeast);
  expect(Buffer.from(moved.stdout).equals(Buffer.from(expected))).toBe(true);
  expect(moved.fuel).toBe(plainFuel);
}

describe('budget checks on a local copy of the budget', () => {
  const original = wat(MODULE, FEATURES);
  const expected = reference(original);

  it('instruments every function with loops that way', () => {
    const { info } = instrument(original);
    // $sum, $spin, $rec, $tail (and not the loop-free ones)
    expect(info.stats.cachedFunctions).toBe(4);
    // $inc and $mix: called without a write-back (not $hop: it calls $spin; not $print: it calls an import)
    expect(info.stats.budgetFreeFunctions).toBe(2);
    expect(info.stats.entryChecks).toBeGreaterThanOrEqual(2); // $rec and $tail recurse
    expect(expected.length).toBe(40);
  });

  it('computes what the original computes, with the same fuel for any slice, checkpoints at every slice, or suspensions', async () => {
    const job = await prepareJob(original);
    const plain = runVm(job, 200_000);
    expect(Buffer.from(plain.stdout).equals(Buffer.from(expected))).toBe(true);
    expect(plain.fuel).toBeGreaterThan(400_000);
    // unwind and rewind in place at every slice end (the yield sites in loops, at entries, and after ticks);
    // suspended every 7th slice and continued in a fresh Machine from the encoded snapshot
    exactEverywhere(job, expected, plain.fuel, { slices: [1, 7, 333, 10_007], checkpoint: { slice: 997, atLeast: 300 }, suspend: { slice: 1009, every: 7, atLeast: 40 } });
  });
});

// Functions that never return (exit, abort, panics) are left out of Asyncify and run with unwinding off: a job that
// does real work on its way out (here: a loop that would yield) must still finish exactly, whatever is asked of it.
const EXITING = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (type $v (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (elem (i32.const 0) $work)
  ;; a loop that can unwind (its function calls through the table, so it is not a leaf)
  (func $work (param $n i32) (result i32)
    (local $i i32) (local $h i32)
    (loop $l
      (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (if (i32.eqz (local.get $n)) (then (return (call_indirect (type $v) (i32.const 1) (i32.const 0)))))
    (local.get $h))
  (func $print (param $v i32)
    (i32.store (i32.const 16) (local.get $v))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; never returns: works (the loop above), prints, exits
  (func $die (param $code i32)
    (nop) ;; (binaryen.js has no expression info for nop: the analysis must not ask for it)
    (call $print (call $work (i32.const 200000)))
    (call $proc_exit (local.get $code)))
  ;; never returns: $die on one path, a trap on the other
  (func $fatal (param $c i32)
    (if (local.get $c) (then (call $die (i32.const 3))))
    (unreachable))
  ;; returns on one path (a branch out of the block): not cold
  (func $maybe (param $c i32) (result i32)
    (nop)
    (block $out
      (br_if $out (local.get $c))
      (call $die (i32.const 4)))
    (i32.const 7))
  (func (export "_start")
    (call $print (call $work (i32.const 300000)))
    (call $print (call $maybe (i32.const 1)))
    (call $fatal (i32.const 1))))`;

describe('functions that never return', () => {
  const original = wat(EXITING, FEATURES);
  const expected = reference(original);

  it('are found ($die, $fatal; not $maybe, which can return) and run with unwinding off: same output and exit code under checkpoints and suspensions', async () => {
    expect(expected.code).toBe(3);
    expect(expected.length).toBe(12);
    const { info } = instrument(original);
    expect(info.stats.coldFunctions).toBe(2);
    const job = await prepareJob(original);
    const plain = runVm(job, 200_000);
    expect(plain.code).toBe(3);
    expect(Buffer.from(plain.stdout).equals(Buffer.from(expected))).toBe(true);
    // asked to checkpoint at every slice, also while $die's loop runs: it may not unwind there
    const ck = runVm(job, 101, () => 'checkpoint');
    expect(ck.code).toBe(3);
    expect(Buffer.from(ck.stdout).equals(Buffer.from(expected))).toBe(true);
    expect(ck.checkpoints).toBeGreaterThan(50);
    expect(ck.fuel).toBe(plain.fuel);
    const moved = runVm(job, 1009, (n) => (n % 3 === 0 ? 'suspend' : 'continue'));
    expect(moved.code).toBe(3);
    expect(moved.machines).toBeGreaterThan(20);
    expect(Buffer.from(moved.stdout).equals(Buffer.from(expected))).toBe(true);
    expect(moved.fuel).toBe(plain.fuel);
  });
});

// Loops unrolled by two (vm/loops.ts): a byte loop with an early exit and a `continue` in the first half, a loop
// whose trip count is odd (it leaves from the first half), and one the unroller must leave alone (a branch to its
// body block's label would skip the back edge, i.e. leave the loop, where the copy would go on).
/** a tiny hash loop (unrolled by four), as a WAT function named `name` */
const hashLoop = (name: string): string => `  (func ${name} (param $n i32) (result i32)
    (local $i i32) (local $h i32)
    (loop $l
      (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 33)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $h))
`;
/** `$print`: writes its i32 argument's four bytes to stdout */
const PRINT = `  (func $print (param $v i32)
    (i32.store (i32.const 16) (local.get $v))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 4))))
`;

const LOOPS = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; bytes 0..4095 hold i*7; the sum of those that are not multiples of 5, up to the first 0xff
  (func $scan (param $n i32) (result i32)
    (local $i i32) (local $s i32) (local $b i32)
    (block $found
      (loop $l
        (local.set $b (i32.load8_u offset=64 (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $found (i32.eq (local.get $b) (i32.const 0xff)))
        (br_if $l (i32.eqz (i32.rem_u (local.get $b) (i32.const 5))))
        (local.set $s (i32.add (local.get $s) (local.get $b)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
    (i32.add (i32.mul (local.get $s) (i32.const 31)) (local.get $i)))
${hashLoop('$odd')}  (func $named (param $n i32) (result i32)
    (local $i i32) (local $h i32)
    (loop $l
      (block $body
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $body (i32.eqz (i32.and (local.get $i) (i32.const 3))))
        (local.set $h (i32.xor (i32.mul (local.get $h) (i32.const 5)) (local.get $i)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
    (i32.add (local.get $h) (local.get $i)))
${PRINT}  (func (export "_start")
    (local $i i32) (local $r i32)
    (loop $fill
      (i32.store8 offset=64 (local.get $i) (i32.mul (local.get $i) (i32.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 4096))))
    (local.set $i (i32.const 0))
    (loop $rounds
      (local.set $r (i32.add (local.get $r) (call $scan (i32.const 4096))))
      (local.set $r (i32.xor (local.get $r) (call $odd (i32.add (i32.const 2001) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $i) (i32.const 60))))
    (call $print (local.get $r))
    (call $print (call $named (i32.const 1001)))
    (call $print (call $scan (i32.const 37)))))`;

describe('loops unrolled by two, tiny ones by four', () => {
  const original = wat(LOOPS, FEATURES);
  const expected = reference(original);

  it('check once per two (four) iterations, compute what the original computes, and stay exact under checkpoints and suspensions', async () => {
    const { info } = instrument(original);
    // $scan, $odd and _start's two (not $named)
    expect(info.stats.unrolledLoops).toBe(4);
    expect(instrument(original, { unrollLoops: false }).info.stats.unrolledLoops).toBe(0);
    expect(expected.length).toBe(12);
    const { job, plain, each } = await withAndWithout(original, expected, { unrollLoops: false });
    // the checks counted: a quarter to a half as many (the loops dominate the work; $odd's loop and _start's
    // $fill are tiny, so by four: every trip count mod 4 is among $odd's 2001..2060)
    expect(plain.fuel).toBeLessThan(each.fuel * 0.42);
    expect(plain.fuel).toBeGreaterThan(each.fuel * 0.2);
    // the leaves only tick: a checkpoint waits for the next yield, in _start's loop of 60 rounds
    exactEverywhere(job, expected, plain.fuel, { slices: [1, 13, 4_099], checkpoint: { slice: 97, atLeast: 20 }, suspend: { slice: 131, every: 2, atLeast: 12 } });
  });
});

// A tiny loop (unrolled by four) and a small one (by two): the native tool's default unrolls only the first.
const TINY_AND_SMALL = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
${hashLoop('$tiny')}  (func $small (param $n i32) (result i32)
    (local $i i32) (local $a i32) (local $b i32) (local $c i32)
    (loop $l
      (local.set $a (i32.xor (i32.mul (local.get $a) (i32.const 31)) (i32.add (local.get $i) (i32.const 7))))
      (local.set $b (i32.add (i32.rotl (local.get $b) (i32.const 5)) (i32.xor (local.get $a) (local.get $i))))
      (local.set $c (i32.sub (i32.mul (local.get $c) (i32.const 17)) (i32.and (local.get $b) (i32.const 255))))
      (local.set $a (i32.add (local.get $a) (i32.shr_u (local.get $c) (i32.const 3))))
      (local.set $b (i32.xor (local.get $b) (i32.shl (local.get $a) (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (i32.add (local.get $a) (i32.add (local.get $b) (local.get $c))))
${PRINT}  (func (export "_start")
    (local $k i32)
    (loop $rounds
      (call $print (i32.xor (call $tiny (i32.add (i32.const 3001) (local.get $k))) (call $small (i32.add (i32.const 1999) (local.get $k)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $k) (i32.const 40))))))`;

describe('only tiny loops unrolled, the native tool\'s default (large modules)', () => {
  const original = wat(TINY_AND_SMALL, FEATURES);
  const expected = reference(original);

  it('unrolls the tiny loop by four and leaves the small one, computing what the original computes, exact under checkpoints and suspensions', async () => {
    expect(unrollLoopsOf({ asyncify: { id: 'x' } as InstrumentOptions['asyncify'] })).toBe('tiny');
    expect(unrollLoopsOf({})).toBe(true);
    expect(unrollLoopsOf({ asyncify: { id: 'x' } as InstrumentOptions['asyncify'], unrollLoops: false })).toBe(false);
    expect(instrument(original).info.stats.unrolledLoops).toBe(3); // both, and _start's
    expect(instrument(original, { unrollLoops: 'tiny' }).info.stats.unrolledLoops).toBe(2); // $tiny and _start's, not $small
    expect(expected.length).toBe(160);
    const job = await prepareJob(original, { instrument: { unrollLoops: 'tiny' } });
    const tiny = runVm(job, 200_000);
    const all = runVm(await prepareJob(original), 200_000);
    const none = runVm(await prepareJob(original, { instrument: { unrollLoops: false } }), 200_000);
    for (const r of [tiny, all, none]) expect(Buffer.from(r.stdout).equals(Buffer.from(expected))).toBe(true);
    expect(tiny.fuel).toBeLessThan(none.fuel);
    expect(tiny.fuel).toBeGreaterThan(all.fuel);
    // _start's loop (unrolled too) yields every fourth round: 10 checkpoints, and a suspension at each
    exactEverywhere(job, expected, tiny.fuel, { slices: [1, 13, 4_099], checkpoint: { slice: 97, atLeast: 8 }, suspend: { slice: 131, every: 1, atLeast: 8 } });
  });
});

const RECURSION = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $fib (param $n i32) (result i32)
    (if (i32.lt_u (local.get $n) (i32.const 2)) (then (return (local.get $n))))
    (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2)))))
  ;; a self-call in another's operand; returns from inside nested ifs
  (func $ack (param $m i32) (param $n i32) (result i32)
    (if (i32.eqz (local.get $m)) (then (return (i32.add (local.get $n) (i32.const 1)))))
    (if (i32.eqz (local.get $n)) (then (return (call $ack (i32.sub (local.get $m) (i32.const 1)) (i32.const 1)))))
    (call $ack (i32.sub (local.get $m) (i32.const 1)) (call $ack (local.get $m) (i32.sub (local.get $n) (i32.const 1)))))
  ;; no result, an early bare return, memory effects, and a local read before it is written (zero in every
  ;; activation: its copies' locals must be too)
  (func $walk (param $d i32)
    (local $acc i32)
    (if (i32.le_s (local.get $d) (i32.const 0)) (then (return)))
    (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 7)) (local.get $d)))
    (i32.store offset=256 (i32.shl (i32.and (local.get $d) (i32.const 15)) (i32.const 2))
      (i32.add (i32.mul (i32.load offset=256 (i32.shl (i32.and (local.get $d) (i32.const 15)) (i32.const 2))) (i32.const 31)) (local.get $acc)))
    (call $walk (i32.sub (local.get $d) (i32.const 1)))
    (if (i32.and (local.get $d) (i32.const 1)) (then (call $walk (i32.sub (local.get $d) (i32.const 2))))))
  ;; has a loop: not unrolled (a copy could run twice in one activation)
  (func $looped (param $n i32) (result i32)
    (local $i i32) (local $h i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
    (loop $l
      (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 3)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
    (i32.xor (local.get $h) (call $looped (i32.sub (local.get $n) (i32.const 1)))))
  (func $print (param $v i32)
    (i32.store (i32.const 16) (local.get $v))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 4))))
  (func (export "_start")
    (local $i i32) (local $h i32)
    (call $print (call $fib (i32.const 21)))
    (call $print (call $ack (i32.const 2) (i32.const 120)))
    (call $walk (i32.const 19))
    (loop $sum
      (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 17)) (i32.load offset=256 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $sum (i32.lt_u (local.get $i) (i32.const 64))))
    (call $print (local.get $h))
    (call $print (call $looped (i32.const 300)))))`;

describe('self-recursion unrolled by one level', () => {
  const original = wat(RECURSION, FEATURES);
  const expected = reference(original);

  it('checks once per two levels, computes what the original computes, and stays exact under checkpoints and suspensions', async () => {
    const { info } = instrument(original);
    // $fib (2 self-calls), $ack (3, one in another's operand), $walk (2); not $looped
    expect(info.stats.unrolledRecursion).toEqual({ functions: 3, calls: 7 });
    expect(instrument(original, { unrollRecursion: false }).info.stats.unrolledRecursion).toEqual({ functions: 0, calls: 0 });
    expect(expected.length).toBe(16);
    const { job, plain, each } = await withAndWithout(original, expected, { unrollRecursion: false });
    // a check per activation that recurses, and half as many of those (fib: one for up to three calls)
    expect(plain.fuel).toBeLessThan(each.fuel * 0.6);
    expect(plain.fuel).toBeGreaterThan(each.fuel * 0.2);
    exactEverywhere(job, expected, plain.fuel, { slices: [1, 13, 4_099], checkpoint: { slice: 211, atLeast: 30 }, suspend: { slice: 307, every: 2, atLeast: 12 } });
  });
});
