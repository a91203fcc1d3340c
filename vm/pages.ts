// The page engine: 64-bit page hashes, zero-page detection and page diffing for snapshots, in two implementations
// with identical results: AssemblyScript + Wasm SIMD (vm/assembly/pages.ts) and plain TypeScript (this file).
// Platform-free: no node:*, no DOM, no Buffer. The hash is defined in vm/assembly/pages.ts ("gridvm page hash v1");
// it is for change detection, not cryptographic.
import { PAGES_WASM_BASE64 } from './assembly/pages.wasm.gen.js';

export const PAGE_SIZE = 65536; // wasm page

export interface PageEngine {
  readonly kind: 'assemblyscript' | 'typescript';
  /**
   * A work area of at least `bytes` bytes (the view is exactly `bytes` long), valid until the next call to area()
   * with a larger size. The caller copies job memory into it and then calls the functions below on [0, bytes).
   * Growing keeps the contents: after area(n) then area(m > n), the first n bytes of the new view hold what the old
   * view held; older views must not be used again (the AS engine's are detached). Capacity never shrinks.
   * For the AS engine this is a view over the AS module's own imported WebAssembly.Memory (no extra copy).
   */
  area(bytes: number): Uint8Array;
  /** 64-bit hash of each 64 KiB page of area[0, nPages*PAGE_SIZE), as two u32 per page (lo, hi) into out. */
  hashPages(nPages: number, out: Uint32Array): void;
  /** 1 for each page of the area that is all zero, else 0. */
  zeroPages(nPages: number, out: Uint8Array): void;
  /**
   * Hash of arbitrary bytes (the snapshot file checksum): 16 lowercase hex chars, hi word first. Given a list of
   * parts, the hash of their concatenation, without making it: every part but the last must be a multiple of 64
   * bytes long (e.g. pages of a job memory, hashed where they are).
   */
  hashBytes(bytes: Uint8Array | readonly Uint8Array[]): string;
  /** For two buffers of at least nPages pages, mark pages that differ (1) in out; returns the count. */
  diffPages(a: Uint8Array, b: Uint8Array, nPages: number, out: Uint8Array): number;
}

/**
 * The engine that 'auto' picks. Decided by benchmarks/pages.bench.ts (`npx tsx benchmarks/pages.bench.ts`; re-run it
 * to re-decide) on 64 MiB, median of 7, Node 20.20, the 2-core Xeon dev machine (480 MiB L3, so 64 MiB is largely
 * cache-resident between runs), GB/s of one 64 MiB buffer, typical of 5 runs:
 *   hash pages                    AS 8.2-8.8   TS 1.2    (AS 6-7x)
 *   zero pages (all-zero scan)    AS 24-26     TS 2.7-3.1 (AS 8-9x)
 *   hashBytes (outside buffer)    AS 6.3-6.9   TS 1.1-1.3 (AS 5-6x)
 *   diff, both in area            AS 7.4-8.9   TS 1.8    (AS 4-5x)
 *   diff, a in area, b outside    AS 4.9-6.2   TS 1.8-1.9 (AS 2.7-3.2x)
 *   diff, both outside            AS 4.6-5.1   TS 1.8-1.9 (AS 2.5-2.8x)
 * AssemblyScript wins every operation. 'auto' still falls back to TypeScript where the Wasm module cannot be
 * instantiated (no Wasm SIMD, or a CSP that forbids Wasm compilation).
 */
export const AUTO_ENGINE: 'assemblyscript' | 'typescript' = 'assemblyscript';

/** hashBytes' input as a list of parts. */
function partsOf(input: Uint8Array | readonly Uint8Array[]): readonly Uint8Array[] {
  return input instanceof Uint8Array ? [input] : input;
}

export function createPageEngine(kind: 'assemblyscript' | 'typescript' | 'auto' = 'auto'): PageEngine {
  if (!LITTLE_ENDIAN) throw new Error('gridvm page engine: big-endian hosts are not supported (wasm memory is little-endian)');
  if (kind === 'typescript') return new TsPageEngine();
  if (kind === 'assemblyscript') return new AsPageEngine();
  if (AUTO_ENGINE === 'typescript') return new TsPageEngine();
  try {
    return new AsPageEngine();
  } catch {
    return new TsPageEngine();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The hash in TypeScript. Constants and steps mirror vm/assembly/pages.ts exactly.

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const Q1 = 0xc2b2ae3d | 0;
const Q2 = 0x27d4eb2f | 0;
const Q3 = 0x165667b1 | 0;
const BLOCK = 64;
const WORDS_PER_PAGE = PAGE_SIZE >>> 2;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function ra(acc: number, w: number): number {
  const x = (acc + w) | 0;
  return Math.imul((x << 13) | (x >>> 19), P1);
}

function rb(acc: number, w: number): number {
  const x = acc ^ w;
  return Math.imul((x << 17) | (x >>> 15), P2);
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b | 0);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35 | 0);
  h ^= h >>> 16;
  return h;
}

function tsHashInit(st: Int32Array): void {
  for (let k = 0; k < 16; k++) {
    st[k] = Math.imul(k + 1, P1);
    st[16 + k] = Math.imul(k + 1, P2);
  }
}

/** Absorbs nBlocks 64-byte blocks of words starting at word index i. Lanes live in locals (32 of them). */
function tsHashAbsorb(st: Int32Array, w: Int32Array, i: number, nBlocks: number): void {
  let a0 = st[0], a1 = st[1], a2 = st[2], a3 = st[3], a4 = st[4], a5 = st[5], a6 = st[6], a7 = st[7];
  let a8 = st[8], a9 = st[9], a10 = st[10], a11 = st[11], a12 = st[12], a13 = st[13], a14 = st[14], a15 = st[15];
  let b0 = st[16], b1 = st[17], b2 = st[18], b3 = st[19], b4 = st[20], b5 = st[21], b6 = st[22], b7 = st[23];
  let b8 = st[24], b9 = st[25], b10 = st[26], b11 = st[27], b12 = st[28], b13 = st[29], b14 = st[30], b15 = st[31];
  const end = i + nBlocks * 16;
  for (; i < end; i += 16) {
    let x = w[i];
    a0 = ra(a0, x); b0 = rb(b0, x);
    x = w[i + 1]; a1 = ra(a1, x); b1 = rb(b1, x);
    x = w[i + 2]; a2 = ra(a2, x); b2 = rb(b2, x);
    x = w[i + 3]; a3 = ra(a3, x); b3 = rb(b3, x);
    x = w[i + 4]; a4 = ra(a4, x); b4 = rb(b4, x);
    x = w[i + 5]; a5 = ra(a5, x); b5 = rb(b5, x);
    x = w[i + 6]; a6 = ra(a6, x); b6 = rb(b6, x);
    x = w[i + 7]; a7 = ra(a7, x); b7 = rb(b7, x);
    x = w[i + 8]; a8 = ra(a8, x); b8 = rb(b8, x);
    x = w[i + 9]; a9 = ra(a9, x); b9 = rb(b9, x);
    x = w[i + 10]; a10 = ra(a10, x); b10 = rb(b10, x);
    x = w[i + 11]; a11 = ra(a11, x); b11 = rb(b11, x);
    x = w[i + 12]; a12 = ra(a12, x); b12 = rb(b12, x);
    x = w[i + 13]; a13 = ra(a13, x); b13 = rb(b13, x);
    x = w[i + 14]; a14 = ra(a14, x); b14 = rb(b14, x);
    x = w[i + 15]; a15 = ra(a15, x); b15 = rb(b15, x);
  }
  st[0] = a0; st[1] = a1; st[2] = a2; st[3] = a3; st[4] = a4; st[5] = a5; st[6] = a6; st[7] = a7;
  st[8] = a8; st[9] = a9; st[10] = a10; st[11] = a11; st[12] = a12; st[13] = a13; st[14] = a14; st[15] = a15;
  st[16] = b0; st[17] = b1; st[18] = b2; st[19] = b3; st[20] = b4; st[21] = b5; st[22] = b6; st[23] = b7;
  st[24] = b8; st[25] = b9; st[26] = b10; st[27] = b11; st[28] = b12; st[29] = b13; st[30] = b14; st[31] = b15;
}

function tsHashFinal(st: Int32Array, length: number, out: Uint32Array, o: number): void {
  let h1 = (Q3 + (length >>> 0)) | 0;
  let h2 = Q2 ^ (Math.floor(length / 4294967296) >>> 0);
  for (let k = 0; k < 32; k++) {
    const x = st[k];
    let t = (h1 + x) | 0;
    h1 = Math.imul((t << 13) | (t >>> 19), Q1);
    t = h2 ^ x;
    h2 = Math.imul((t << 19) | (t >>> 13), Q2);
  }
  h1 = fmix(h1 ^ Math.imul(h2, Q3));
  h2 = fmix((h2 + h1) | 0);
  out[o] = h1;
  out[o + 1] = h2;
}

function hex64(lo: number, hi: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

function checkPages(what: string, nPages: number, capacity: number): void {
  if (!Number.isInteger(nPages) || nPages < 0 || nPages * PAGE_SIZE > capacity) {
    throw new RangeError(`${what}: ${nPages} pages do not fit in ${capacity} bytes; call area() with enough bytes first`);
  }
}

function checkOut(what: string, out: { length: number }, needed: number): void {
  if (out.length < needed) throw new RangeError(`${what}: out has length ${out.length}, needs at least ${needed}`);
}

// ---------------------------------------------------------------------------------------------------------------

class TsPageEngine implements PageEngine {
  readonly kind = 'typescript' as const;
  private buf = new ArrayBuffer(0);
  private bytes = new Uint8Array(this.buf);
  private words = new Int32Array(this.buf);
  private readonly st = new Int32Array(32);
  private readonly h = new Uint32Array(2);
  private readonly tail = new Uint8Array(PAGE_SIZE); // aligned staging for tails and unaligned input
  private readonly tailWords = new Int32Array(this.tail.buffer);

  area(bytes: number): Uint8Array {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`area: bad size ${bytes}`);
    if (bytes > this.buf.byteLength) {
      const size = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
      const next = new ArrayBuffer(size);
      new Uint8Array(next).set(this.bytes);
      this.buf = next;
      this.bytes = new Uint8Array(next);
      this.words = new Int32Array(next);
    }
    return this.bytes.subarray(0, bytes);
  }

  hashPages(nPages: number, out: Uint32Array): void {
    checkPages('hashPages', nPages, this.buf.byteLength);
    checkOut('hashPages', out, 2 * nPages);
    const st = this.st;
    for (let i = 0; i < nPages; i++) {
      tsHashInit(st);
      tsHashAbsorb(st, this.words, i * WORDS_PER_PAGE, PAGE_SIZE / BLOCK);
      tsHashFinal(st, PAGE_SIZE, out, 2 * i);
    }
  }

  zeroPages(nPages: number, out: Uint8Array): void {
    checkPages('zeroPages', nPages, this.buf.byteLength);
    checkOut('zeroPages', out, nPages);
    tsZeroPages(this.words, nPages, out);
  }

  hashBytes(input: Uint8Array | readonly Uint8Array[]): string {
    const st = this.st;
    tsHashInit(st);
    const parts = partsOf(input);
    let n = 0;
    parts.forEach((bytes, k) => {
      const len = bytes.length;
      const full = len - (len % BLOCK);
      if (bytes.byteOffset % 4 === 0) {
        const w = new Int32Array(bytes.buffer, bytes.byteOffset, full >>> 2);
        tsHashAbsorb(st, w, 0, full / BLOCK);
      } else {
        for (let off = 0; off < full; off += PAGE_SIZE) {
          const m = Math.min(PAGE_SIZE, full - off);
          this.tail.set(bytes.subarray(off, off + m));
          tsHashAbsorb(st, this.tailWords, 0, m / BLOCK);
        }
      }
      if (full < len) {
        if (k !== parts.length - 1) throw new RangeError(`hashBytes: part ${k} is ${len} bytes, not a multiple of ${BLOCK} (only the last part may be)`);
        this.tail.fill(0, 0, BLOCK);
        this.tail.set(bytes.subarray(full, len));
        tsHashAbsorb(st, this.tailWords, 0, 1);
      }
      n += len;
    });
    tsHashFinal(st, n, this.h, 0);
    return hex64(this.h[0], this.h[1]);
  }

  diffPages(a: Uint8Array, b: Uint8Array, nPages: number, out: Uint8Array): number {
    checkPages('diffPages(a)', nPages, a.length);
    checkPages('diffPages(b)', nPages, b.length);
    checkOut('diffPages', out, nPages);
    if (a.byteOffset % 4 !== 0 || b.byteOffset % 4 !== 0) return diffBytes(a, b, nPages, out);
    const wa = new Int32Array(a.buffer, a.byteOffset, nPages * WORDS_PER_PAGE);
    const wb = new Int32Array(b.buffer, b.byteOffset, nPages * WORDS_PER_PAGE);
    let count = 0;
    for (let i = 0; i < nPages; i++) {
      let j = i * WORDS_PER_PAGE;
      const end = j + WORDS_PER_PAGE;
      let differ = 0;
      for (; j < end; j += 4) {
        if (((wa[j] ^ wb[j]) | (wa[j + 1] ^ wb[j + 1]) | (wa[j + 2] ^ wb[j + 2]) | (wa[j + 3] ^ wb[j + 3])) !== 0) {
          differ = 1;
          break;
        }
      }
      out[i] = differ;
      count += differ;
    }
    return count;
  }
}

function tsZeroPages(w: Int32Array, nPages: number, out: Uint8Array): void {
  for (let i = 0; i < nPages; i++) {
    let j = i * WORDS_PER_PAGE;
    const end = j + WORDS_PER_PAGE;
    let zero = 1;
    for (; j < end; j += 8) {
      if ((w[j] | w[j + 1] | w[j + 2] | w[j + 3] | w[j + 4] | w[j + 5] | w[j + 6] | w[j + 7]) !== 0) {
        zero = 0;
        break;
      }
    }
    out[i] = zero;
  }
}

function diffBytes(a: Uint8Array, b: Uint8Array, nPages: number, out: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < nPages; i++) {
    let differ = 0;
    for (let j = i * PAGE_SIZE, end = j + PAGE_SIZE; j < end; j++) {
      if (a[j] !== b[j]) {
        differ = 1;
        break;
      }
    }
    out[i] = differ;
    count += differ;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------------------------
// The AssemblyScript engine. Its imported memory is laid out as:
//   [0, 128) hash state, [128, 132) touch sink   [1 KiB, 65 KiB)  per-page outputs (OUT_BATCH pages per call)
//   [128 KiB, 384 KiB)  staging chunk A      [384 KiB, 640 KiB) staging chunk B    [256, 320) tail block
//   [1 MiB, ...)        the area handed out by area()
// Buffers that are not views of this memory are staged through chunks A/B (cache-resident copies).

interface AsExports {
  hashInit(st: number): void;
  hashAbsorb(st: number, p: number, nBlocks: number): void;
  touch(p: number, bytes: number): number;
  hashFinal(st: number, lenLo: number, lenHi: number, out: number): void;
  hashPages(p: number, n: number, st: number, out: number): void;
  zeroPages(p: number, n: number, out: number): number;
  diffPages(pa: number, pb: number, n: number, out: number): number;
}

const ST = 0;
const TAIL = 256;
const OUT = 1024;
const OUT_BATCH = 8192; // 8 bytes of hash per page: 64 KiB
const CHUNK = 4 * PAGE_SIZE;
const CHUNK_A = 128 * 1024;
const CHUNK_B = CHUNK_A + CHUNK;
const AREA = 1024 * 1024;
const SCRATCH_PAGES = AREA / PAGE_SIZE;

let wasmModule: WebAssembly.Module | undefined;

class AsPageEngine implements PageEngine {
  readonly kind = 'assemblyscript' as const;
  private readonly memory: WebAssembly.Memory;
  private readonly x: AsExports;
  private capacity = 0;

  constructor() {
    wasmModule ??= new WebAssembly.Module(decodeBase64(PAGES_WASM_BASE64));
    this.memory = new WebAssembly.Memory({ initial: SCRATCH_PAGES });
    const instance = new WebAssembly.Instance(wasmModule, { env: { memory: this.memory } });
    this.x = instance.exports as unknown as AsExports;
  }

  area(bytes: number): Uint8Array {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`area: bad size ${bytes}`);
    if (bytes > this.capacity) {
      const pages = Math.ceil(bytes / PAGE_SIZE);
      this.memory.grow(pages - this.capacity / PAGE_SIZE);
      this.capacity = pages * PAGE_SIZE;
    }
    return new Uint8Array(this.memory.buffer, AREA, bytes);
  }

  hashPages(nPages: number, out: Uint32Array): void {
    checkPages('hashPages', nPages, this.capacity);
    checkOut('hashPages', out, 2 * nPages);
    for (let i = 0; i < nPages; i += OUT_BATCH) {
      const n = Math.min(OUT_BATCH, nPages - i);
      this.x.hashPages(AREA + i * PAGE_SIZE, n, ST, OUT);
      out.set(new Uint32Array(this.memory.buffer, OUT, 2 * n), 2 * i);
    }
  }

  zeroPages(nPages: number, out: Uint8Array): void {
    checkPages('zeroPages', nPages, this.capacity);
    checkOut('zeroPages', out, nPages);
    for (let i = 0; i < nPages; i += OUT_BATCH) {
      const n = Math.min(OUT_BATCH, nPages - i);
      this.x.zeroPages(AREA + i * PAGE_SIZE, n, OUT);
      out.set(new Uint8Array(this.memory.buffer, OUT, n), i);
    }
  }

  hashBytes(input: Uint8Array | readonly Uint8Array[]): string {
    const x = this.x;
    x.hashInit(ST);
    const mem = this.memory.buffer;
    const parts = partsOf(input);
    let n = 0;
    parts.forEach((bytes, k) => {
      const len = bytes.length;
      const full = len - (len % BLOCK);
      if (bytes.buffer === mem) {
        for (let off = 0; off < full; off += CHUNK) {
          const m = Math.min(CHUNK, full - off);
          x.touch(bytes.byteOffset + off, m); // see touch() in vm/assembly/pages.ts
          x.hashAbsorb(ST, bytes.byteOffset + off, m / BLOCK);
        }
      } else {
        const u8 = new Uint8Array(mem);
        for (let off = 0; off < full; off += CHUNK) {
          const m = Math.min(CHUNK, full - off);
          u8.set(bytes.subarray(off, off + m), CHUNK_A);
          x.hashAbsorb(ST, CHUNK_A, m / BLOCK);
        }
      }
      if (full < len) {
        if (k !== parts.length - 1) throw new RangeError(`hashBytes: part ${k} is ${len} bytes, not a multiple of ${BLOCK} (only the last part may be)`);
        const u8 = new Uint8Array(mem);
        u8.fill(0, TAIL, TAIL + BLOCK);
        u8.set(bytes.subarray(full, len), TAIL);
        x.hashAbsorb(ST, TAIL, 1);
      }
      n += len;
    });
    x.hashFinal(ST, n >>> 0, Math.floor(n / 4294967296) >>> 0, OUT);
    const h = new Uint32Array(mem, OUT, 2);
    return hex64(h[0], h[1]);
  }

  diffPages(a: Uint8Array, b: Uint8Array, nPages: number, out: Uint8Array): number {
    checkPages('diffPages(a)', nPages, a.length);
    checkPages('diffPages(b)', nPages, b.length);
    checkOut('diffPages', out, nPages);
    const mem = this.memory.buffer;
    const aIn = a.buffer === mem;
    const bIn = b.buffer === mem;
    // Both in our memory: one pass; otherwise stage the outside buffer(s) through cache-sized chunks.
    const step = aIn && bIn ? OUT_BATCH : CHUNK / PAGE_SIZE;
    const u8 = new Uint8Array(mem);
    let count = 0;
    for (let i = 0; i < nPages; i += step) {
      const n = Math.min(step, nPages - i);
      const from = i * PAGE_SIZE;
      const to = from + n * PAGE_SIZE;
      let pa = a.byteOffset + from;
      let pb = b.byteOffset + from;
      if (!aIn) {
        u8.set(a.subarray(from, to), CHUNK_A);
        pa = CHUNK_A;
      }
      if (!bIn) {
        u8.set(b.subarray(from, to), CHUNK_B);
        pb = CHUNK_B;
      }
      count += this.x.diffPages(pa, pb, n, OUT);
      out.set(u8.subarray(OUT, OUT + n), i);
    }
    return count;
  }
}

// ---------------------------------------------------------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Decodes standard base64 (padding optional, no whitespace) without atob or Buffer. */
export function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const rev = new Uint8Array(128).fill(255);
  for (let i = 0; i < 64; i++) rev[B64.charCodeAt(i)] = i;
  let len = s.length;
  while (len > 0 && s.charCodeAt(len - 1) === 61 /* = */) len--;
  const out = new Uint8Array((len * 3) >>> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? rev[c] : 255;
    if (v === 255) throw new Error(`decodeBase64: invalid character at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 255;
    }
  }
  return out;
}
