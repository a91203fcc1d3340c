// vm/wasmcode.ts: a module optimised a part at a time and put back together computes what the original computes,
// with every type index inside the bodies mapped back to the original's type section (the optimiser writes its own,
// ordered by use, so each part's differs).
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { CodeFormatError, functionBodies, joinParts, modulePart, partition, remapBody } from '../../vm/wasmcode.js';
import { sections } from '../../vm/wasmbin.js';
import { wat } from '../harness/wat.js';

const F = binaryen.Features;
// Types used in different numbers by different functions, so each part's type section is ordered differently; type
// indices in call_indirect, in block types (multi-value) and in typed selects; immediates of every width around them
// (memargs, lanes, v128 constants, br_table, bulk memory, 64-bit and float constants).
const MODULE = `(module
  (type $ii (func (param i32) (result i32)))
  (type $ll (func (param i64) (result i64)))
  (type $dd (func (param f64) (result f64)))
  (type $pair (func (param i32) (result i32 i32)))
  (type $two (func (result i32 i32)))
  (memory (export "memory") 1)
  (table 4 funcref)
  (elem (i32.const 0) $inc $twice $half $sq)
  (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
  (func $twice (type $ll) (i64.mul (local.get 0) (i64.const 0x100000001)))
  (func $half (type $dd) (f64.mul (local.get 0) (f64.const 0.5)))
  (func $sq (type $ii) (i32.mul (local.get 0) (local.get 0)))
  (func $split (type $pair) (local.get 0) (i32.shr_u (local.get 0) (i32.const 16)))
  (func $ints (export "ints") (param $x i32) (result i32)
    (local $a i32) (local $b i32)
    (block $sw (block $c2 (block $c1 (block $c0
      (br_table $c0 $c1 $c2 $sw (i32.and (local.get $x) (i32.const 3))))
      (local.set $x (call_indirect (type $ii) (local.get $x) (i32.const 0))) (br $sw))
      (local.set $x (call_indirect (type $ii) (local.get $x) (i32.const 3))) (br $sw))
      (local.set $x (i32.wrap_i64 (call_indirect (type $ll) (i64.extend_i32_u (local.get $x)) (i32.const 1)))))
    (block $mv (type $two) (call $split (local.get $x)))
    (local.set $b) (local.set $a)
    (i32.store offset=8 (i32.const 0) (local.get $a))
    (memory.fill (i32.const 64) (i32.const 7) (i32.const 16))
    (memory.copy (i32.const 128) (i32.const 8) (i32.const 4))
    (i32.add (select (result i32) (local.get $a) (local.get $b) (local.get $x))
      (i32.add (i32.load offset=128 (i32.const 0)) (i32.load8_u offset=70 (i32.const 0)))))
  (func $floats (export "floats") (param $x f64) (result f64)
    (local $v v128)
    (local.set $v (f64x2.replace_lane 1 (v128.const f64x2 1.5 2.5) (local.get $x)))
    (v128.store offset=256 align=8 (i32.const 0) (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
    (f64.add (call_indirect (type $dd) (f64x2.extract_lane 1 (local.get $v)) (i32.const 2))
      (f64.load offset=256 (i32.const 0))))
  (func $longs (export "longs") (param $x i64) (result i64)
    (i64.add (call_indirect (type $ll) (local.get $x) (i32.const 1)) (i64.const -9007199254740993)))
)`;

function exportsOf(bytes: Uint8Array): Record<string, (x: number | bigint) => number | bigint> {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>)).exports as never;
}

/** a part through binaryen.js's function passes (not its whole-module ones), written out as binaryen writes */
function optimisePart(part: Uint8Array): Uint8Array {
  const m = binaryen.readBinary(part);
  try {
    m.setFeatures(F.MVP | F.MutableGlobals | F.SIMD128 | F.BulkMemory | (F as unknown as { BulkMemoryOpt: number }).BulkMemoryOpt | F.Multivalue | F.ReferenceTypes);
    binaryen.setOptimizeLevel(1);
    m.runPasses(['dce', 'remove-unused-brs', 'optimize-instructions', 'precompute', 'simplify-locals', 'vacuum', 'coalesce-locals', 'reorder-locals', 'merge-blocks']);
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

function typeSection(bytes: Uint8Array): string {
  const s = sections(bytes).find((x) => x.id === 1)!;
  return Buffer.from(bytes.subarray(s.body, s.end)).toString('hex');
}

describe('a module optimised a part at a time (vm/wasmcode.ts)', () => {
  const original = wat(MODULE, F.MVP | F.MutableGlobals | F.SIMD128 | F.BulkMemory | (F as unknown as { BulkMemoryOpt: number }).BulkMemoryOpt | F.Multivalue | F.ReferenceTypes);
  const want = exportsOf(original);
  const inputs = { ints: [0, 1, 2, 3, 0x12345, 0x7fffffff], floats: [0, 1.25, -3e300], longs: [0n, 1n, -5n, 0x7fffffffffffn] };
  const expected = Object.fromEntries(Object.entries(inputs).map(([k, xs]) => [k, xs.map((x) => want[k]!(x as never))]));

  it('computes what the original computes, its type indices mapped back from every part', () => {
    const bodies = functionBodies(original);
    expect(bodies.length).toBe(8);
    const ranges = partition(bodies, 1);
    expect(ranges).toEqual(bodies.map((_, i) => [i, i + 1]));
    const parts = ranges.map(([from, to]) => optimisePart(modulePart(original, bodies, from, to)));
    // the optimiser ordered its types its own way in some parts: without the mapping the bodies would be wrong
    expect(parts.filter((p) => typeSection(p) !== typeSection(original)).length).toBeGreaterThan(0);
    const joined = joinParts(original, ranges, parts);
    expect(WebAssembly.validate(joined as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(typeSection(joined)).toBe(typeSection(original));
    const got = exportsOf(joined);
    for (const [k, xs] of Object.entries(inputs)) expect(xs.map((x) => got[k]!(x as never))).toEqual(expected[k]);
    // in a few parts of several functions each too
    const two = partition(bodies, Math.ceil((bodies.at(-1)!.end - bodies[0]!.start) / 2));
    expect(two.length).toBeGreaterThanOrEqual(2);
    expect(two.length).toBeLessThan(bodies.length);
    const joined2 = joinParts(original, two, two.map(([a, b]) => optimisePart(modulePart(original, bodies, a, b))));
    const got2 = exportsOf(joined2);
    for (const [k, xs] of Object.entries(inputs)) expect(xs.map((x) => got2[k]!(x as never))).toEqual(expected[k]);
  });

  it('leaves a body unchanged when the mapping is the identity, and reads every immediate of it', () => {
    const bodies = functionBodies(original);
    const identity = Array.from({ length: 16 }, (_, i) => i);
    for (const b of bodies) expect(Buffer.from(remapBody(original, b, identity)).equals(Buffer.from(original.subarray(b.start, b.end)))).toBe(true);
    // a mapping that lacks a type a body uses is an error, not a wrong module
    expect(() => bodies.forEach((b) => remapBody(original, b, []))).toThrow(CodeFormatError);
  });

  it('refuses parts that do not fit the module', () => {
    const bodies = functionBodies(original);
    const ranges = partition(bodies, 1);
    const parts = ranges.map(([from, to]) => modulePart(original, bodies, from, to));
    // a part that lost a function (an optimiser's whole-module pass removing it)
    const short = wat('(module (memory 1) (func $f))', F.MVP);
    expect(() => joinParts(original, ranges, parts.map((p, i) => (i === 3 ? short : p)))).toThrow(/function bodies where the module has 8/);
  });
});
