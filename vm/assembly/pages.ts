// Page engine hot paths: page hashing, zero-page detection and page diffing over the module's imported memory.
// Built by tools/build-as.mjs (SIMD, -O3, --runtime stub, --importMemory) into vm/assembly/pages.wasm.gen.ts.
// vm/pages.ts holds the TypeScript twin and MUST stay bit-identical to this file (test/unit/pages.test.ts checks).
//
// The hash ("gridvm page hash v1"), defined on little-endian u32 words and 64-byte blocks:
//   state: 32 u32 lanes, a[0..15] and b[0..15]; a[k] = (k+1)*P1, b[k] = (k+1)*P2 initially.
//   block of 16 words w[0..15]: for each k:
//     a[k] = rotl(a[k] + w[k], 13) * P1
//     b[k] = rotl(b[k] ^ w[k], 17) * P2
//   Every step is a bijection of the lane for a fixed word and injective in the word for a fixed lane, so any change
//   of a single word (e.g. one flipped bit) always changes the final lane value; two chains with different
//   operations see every word, so a multi-word change that cancels in one chain survives in the other.
//   Bytes not filling a last block are zero-padded; the byte length goes into the final mix.
//   final: h1 = Q3 + lenLo, h2 = Q2 ^ lenHi; for x in a[0..15], b[0..15]:
//     h1 = rotl(h1 + x, 13) * Q1;  h2 = rotl(h2 ^ x, 19) * Q2
//   h1 = fmix(h1 ^ h2*Q3); h2 = fmix(h2 + h1); result (lo, hi) = (h1, h2). Injective in any single lane.
// SIMD layout: v128 lane i of vector j holds word 4j+i of each block, so one v128.load feeds four lanes.

const PAGE: usize = 65536;
const BLOCKS_PER_PAGE: usize = 1024;
const P1: u32 = 0x9e3779b1;
const P2: u32 = 0x85ebca77;
const Q1: u32 = 0xc2b2ae3d;
const Q2: u32 = 0x27d4eb2f;
const Q3: u32 = 0x165667b1;

// @ts-ignore: decorator
@inline function roundA(acc: v128, w: v128): v128 {
  const x = i32x4.add(acc, w);
  return i32x4.mul(v128.or(i32x4.shl(x, 13), i32x4.shr_u(x, 19)), i32x4.splat(P1));
}

// @ts-ignore: decorator
@inline function roundB(acc: v128, w: v128): v128 {
  const x = v128.xor(acc, w);
  return i32x4.mul(v128.or(i32x4.shl(x, 17), i32x4.shr_u(x, 15)), i32x4.splat(P2));
}

// @ts-ignore: decorator
@inline function rotl32(x: u32, r: u32): u32 {
  return (x << r) | (x >>> (32 - r));
}

// @ts-ignore: decorator
@inline function fmix(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

/** Writes the initial 128-byte hash state at st. */
export function hashInit(st: usize): void {
  for (let k: u32 = 0; k < 16; k++) {
    store<u32>(st + ((<usize>k) << 2), (k + 1) * P1);
    store<u32>(st + 64 + ((<usize>k) << 2), (k + 1) * P2);
  }
}

/** Absorbs nBlocks 64-byte blocks at p into the state at st. */
export function hashAbsorb(st: usize, p: usize, nBlocks: usize): void {
  let a0 = v128.load(st, 0);
  let a1 = v128.load(st, 16);
  let a2 = v128.load(st, 32);
  let a3 = v128.load(st, 48);
  let b0 = v128.load(st, 64);
  let b1 = v128.load(st, 80);
  let b2 = v128.load(st, 96);
  let b3 = v128.load(st, 112);
  const end = p + (nBlocks << 6);
  while (p < end) {
    const w0 = v128.load(p, 0);
    const w1 = v128.load(p, 16);
    const w2 = v128.load(p, 32);
    const w3 = v128.load(p, 48);
    a0 = roundA(a0, w0);
    b0 = roundB(b0, w0);
    a1 = roundA(a1, w1);
    b1 = roundB(b1, w1);
    a2 = roundA(a2, w2);
    b2 = roundB(b2, w2);
    a3 = roundA(a3, w3);
    b3 = roundB(b3, w3);
    p += 64;
  }
  v128.store(st, a0, 0);
  v128.store(st, a1, 16);
  v128.store(st, a2, 32);
  v128.store(st, a3, 48);
  v128.store(st, b0, 64);
  v128.store(st, b1, 80);
  v128.store(st, b2, 96);
  v128.store(st, b3, 112);
}

/** Mixes the state at st and the byte length into 64 bits, written as (lo, hi) u32 at out. */
export function hashFinal(st: usize, lenLo: u32, lenHi: u32, out: usize): void {
  let h1: u32 = Q3 + lenLo;
  let h2: u32 = Q2 ^ lenHi;
  for (let k: usize = 0; k < 32; k++) {
    const x = load<u32>(st + (k << 2));
    h1 = rotl32(h1 + x, 13) * Q1;
    h2 = rotl32(h2 ^ x, 19) * Q2;
  }
  h1 = fmix(h1 ^ (h2 * Q3));
  h2 = fmix(h2 + h1);
  store<u32>(out, h1);
  store<u32>(out, h2, 4);
}

/**
 * Loads one word of every 64-byte line of [p, p + bytes) (a trailing part under 256 bytes is skipped) and returns
 * their OR. Hashing 64 MiB straight measured 2.9 GB/s: the hash loop is too long for the CPU to keep enough cache
 * misses in flight. Touching each page first with this light loop brings it in at memory speed, and the hash then
 * runs from cache: 8.6 GB/s.
 */
export function touch(p: usize, bytes: usize): u32 {
  let acc: u32 = 0;
  const end = p + bytes;
  while (p + 256 <= end) {
    acc |= load<u32>(p, 0) | load<u32>(p, 64) | load<u32>(p, 128) | load<u32>(p, 192);
    p += 256;
  }
  return acc;
}

/** Hash of each of n pages at p, (lo, hi) per page at out; st is a 128-byte scratch state (+4 bytes sink). */
export function hashPages(p: usize, n: usize, st: usize, out: usize): void {
  let sink: u32 = 0;
  for (let i: usize = 0; i < n; i++) {
    sink |= touch(p + i * PAGE, PAGE);
    hashInit(st);
    hashAbsorb(st, p + i * PAGE, BLOCKS_PER_PAGE);
    hashFinal(st, <u32>PAGE, 0, out + (i << 3));
  }
  store<u32>(st, sink, 128);
}

/** out[i] = 1 if page i at p is all zero, else 0; returns the number of zero pages. */
export function zeroPages(p: usize, n: usize, out: usize): u32 {
  let count: u32 = 0;
  for (let i: usize = 0; i < n; i++) {
    let q = p + i * PAGE;
    const end = q + PAGE;
    let zero: u32 = 1;
    while (q < end) {
      const x = v128.or(
        v128.or(v128.load(q, 0), v128.load(q, 16)),
        v128.or(v128.load(q, 32), v128.load(q, 48)),
      );
      const y = v128.or(
        v128.or(v128.load(q, 64), v128.load(q, 80)),
        v128.or(v128.load(q, 96), v128.load(q, 112)),
      );
      if (v128.any_true(v128.or(x, y))) {
        zero = 0;
        break;
      }
      q += 128;
    }
    store<u8>(out + i, <u8>zero);
    count += zero;
  }
  return count;
}

/** out[i] = 1 if page i at pa differs from page i at pb, else 0; returns the number of differing pages. */
export function diffPages(pa: usize, pb: usize, n: usize, out: usize): u32 {
  let count: u32 = 0;
  for (let i: usize = 0; i < n; i++) {
    let qa = pa + i * PAGE;
    let qb = pb + i * PAGE;
    const end = qa + PAGE;
    let differ: u32 = 0;
    while (qa < end) {
      const x = v128.or(
        v128.or(v128.xor(v128.load(qa, 0), v128.load(qb, 0)), v128.xor(v128.load(qa, 16), v128.load(qb, 16))),
        v128.or(v128.xor(v128.load(qa, 32), v128.load(qb, 32)), v128.xor(v128.load(qa, 48), v128.load(qb, 48))),
      );
      const y = v128.or(
        v128.or(v128.xor(v128.load(qa, 64), v128.load(qb, 64)), v128.xor(v128.load(qa, 80), v128.load(qb, 80))),
        v128.or(v128.xor(v128.load(qa, 96), v128.load(qb, 96)), v128.xor(v128.load(qa, 112), v128.load(qb, 112))),
      );
      if (v128.any_true(v128.or(x, y))) {
        differ = 1;
        break;
      }
      qa += 128;
      qb += 128;
    }
    store<u8>(out + i, <u8>differ);
    count += differ;
  }
  return count;
}
