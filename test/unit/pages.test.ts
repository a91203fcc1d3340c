import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PageEngine } from '../../vm/pages.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const PAGE = 65536;
let pages: typeof import('../../vm/pages.js');
let as: PageEngine;
let ts: PageEngine;

beforeAll(async () => {
  // The wasm bytes are generated (gitignored): build them when missing or older than the AssemblyScript source.
  const gen = join(root, 'vm/assembly/pages.wasm.gen.ts');
  const src = join(root, 'vm/assembly/pages.ts');
  if (!existsSync(gen) || statSync(gen).mtimeMs < statSync(src).mtimeMs) {
    execFileSync(process.execPath, [join(root, 'tools/build-as.mjs')], { cwd: root, stdio: 'inherit' });
  }
  pages = await import('../../vm/pages.js');
  as = pages.createPageEngine('assemblyscript');
  ts = pages.createPageEngine('typescript');
});

/** Deterministic xorshift32 bytes. */
function rng(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 255;
  return out;
}

/** Pages of mixed kinds: random, zero, one nonzero byte at first/last/middle, constant, repeated pattern, sparse. */
function structured(nPages: number, seed: number): Uint8Array {
  const r = rng(seed);
  const m = new Uint8Array(nPages * PAGE);
  for (let p = 0; p < nPages; p++) {
    const page = m.subarray(p * PAGE, (p + 1) * PAGE);
    switch (p % 8) {
      case 0: for (let i = 0; i < PAGE; i++) page[i] = r() & 255; break;
      case 1: break; // zero
      case 2: page[0] = 1; break;
      case 3: page[PAGE - 1] = 0x80; break;
      case 4: page.fill(0xff); break;
      case 5: for (let i = 0; i < PAGE; i++) page[i] = i % 64; break;
      case 6: for (let i = 0; i < 40; i++) page[r() % PAGE] = r() & 255; break;
      case 7: page[PAGE >> 1] = 7; break;
    }
  }
  return m;
}

function hashAll(e: PageEngine, mem: Uint8Array): Uint32Array {
  const n = mem.length / PAGE;
  e.area(mem.length).set(mem);
  const out = new Uint32Array(2 * n);
  e.hashPages(n, out);
  return out;
}

function zerosAll(e: PageEngine, mem: Uint8Array): Uint8Array {
  const n = mem.length / PAGE;
  e.area(mem.length).set(mem);
  const out = new Uint8Array(n);
  e.zeroPages(n, out);
  return out;
}

describe('page engine', () => {
  it('AssemblyScript and TypeScript engines report their kind; auto picks one that works', () => {
    expect(as.kind).toBe('assemblyscript');
    expect(ts.kind).toBe('typescript');
    expect(pages.createPageEngine('auto').kind).toBe(pages.AUTO_ENGINE);
  });

  it('hashPages gives identical results in both engines on random and structured memory', () => {
    for (const mem of [randomBytes(5 * PAGE, 1), structured(24, 2)]) {
      expect(Array.from(hashAll(as, mem))).toEqual(Array.from(hashAll(ts, mem)));
    }
  });

  it('hashPages depends only on page contents, and distinct structured pages hash differently', () => {
    const mem = structured(16, 3);
    const h = hashAll(as, mem);
    const key = (p: number) => `${h[2 * p]}:${h[2 * p + 1]}`;
    // pages p and p + 8 have the same contents except for the random kinds (0 and 6)
    for (const p of [1, 2, 3, 4, 5, 7]) expect(key(p + 8)).toBe(key(p));
    const distinct = [0, 1, 2, 3, 4, 5, 6, 7, 8, 14];
    expect(new Set(distinct.map(key)).size).toBe(distinct.length);
  });

  it('any single flipped bit changes the page hash (random positions, both engines)', () => {
    const base = randomBytes(PAGE, 4);
    const zero = new Uint8Array(PAGE);
    const r = rng(5);
    for (const page of [base, zero]) {
      for (const e of [as, ts]) {
        const area = e.area(PAGE);
        area.set(page);
        const h0 = new Uint32Array(2);
        e.hashPages(1, h0);
        const h1 = new Uint32Array(2);
        const positions = [0, PAGE * 8 - 1, ...Array.from({ length: 200 }, () => r() % (PAGE * 8))];
        for (const bit of positions) {
          area[bit >>> 3] ^= 1 << (bit & 7);
          e.hashPages(1, h1);
          area[bit >>> 3] ^= 1 << (bit & 7);
          expect(h1[0] !== h0[0] || h1[1] !== h0[1], `bit ${bit} (${e.kind})`).toBe(true);
        }
      }
    }
  });

  it('swapping two 64-byte blocks or two words changes the page hash', () => {
    const page = randomBytes(PAGE, 6);
    const h = (m: Uint8Array) => Array.from(hashAll(as, m));
    const swapped = page.slice();
    swapped.set(page.subarray(64, 128), 0);
    swapped.set(page.subarray(0, 64), 64);
    expect(h(swapped)).not.toEqual(h(page));
    const words = page.slice();
    words.set(page.subarray(4, 8), 0);
    words.set(page.subarray(0, 4), 4);
    expect(h(words)).not.toEqual(h(page));
  });

  it('zeroPages finds zero pages, including pages with one nonzero byte at the first or last byte', () => {
    const mem = structured(16, 7);
    const expected = Array.from({ length: 16 }, (_, p) => (p % 8 === 1 ? 1 : 0));
    expect(Array.from(zerosAll(as, mem))).toEqual(expected);
    expect(Array.from(zerosAll(ts, mem))).toEqual(expected);
    for (const pos of [0, 1, 3, 4, 15, 16, 63, 64, 127, 128, PAGE - 129, PAGE - 64, PAGE - 5, PAGE - 2, PAGE - 1]) {
      const m = new Uint8Array(3 * PAGE);
      m[PAGE + pos] = 1;
      expect(Array.from(zerosAll(as, m)), `pos ${pos}`).toEqual([1, 0, 1]);
      expect(Array.from(zerosAll(ts, m)), `pos ${pos}`).toEqual([1, 0, 1]);
    }
  });

  it('diffPages marks exactly the changed pages, for buffers inside and outside the area', () => {
    const n = 20;
    const a = structured(n, 8);
    const b = a.slice();
    const changed = [0, 3, 7, 8, 19];
    b[0] ^= 1;
    b[3 * PAGE + PAGE - 1] ^= 0x80;
    b[7 * PAGE + 12345] ^= 4;
    b.fill(9, 8 * PAGE, 9 * PAGE);
    b[20 * PAGE - 1] ^= 1;
    const expected = Array.from({ length: n }, (_, p) => (changed.includes(p) ? 1 : 0));
    for (const e of [as, ts]) {
      const out = new Uint8Array(n);
      expect(e.diffPages(a, b, n, out)).toBe(changed.length);
      expect(Array.from(out)).toEqual(expected);
      const area = e.area(2 * n * PAGE);
      area.set(a);
      area.set(b, n * PAGE);
      const inA = area.subarray(0, n * PAGE);
      const inB = area.subarray(n * PAGE);
      for (const [x, y] of [[inA, inB], [inA, b], [a, inB]] as const) {
        out.fill(7);
        expect(e.diffPages(x, y, n, out), e.kind).toBe(changed.length);
        expect(Array.from(out)).toEqual(expected);
      }
      expect(e.diffPages(a, a.slice(), n, out)).toBe(0);
      // unaligned views are handled too
      const ua = new Uint8Array(n * PAGE + 1);
      ua.set(a, 1);
      expect(e.diffPages(ua.subarray(1), b, n, out)).toBe(changed.length);
    }
  });

  it('hashBytes is identical in both engines for lengths 0..300, odd offsets and large inputs', () => {
    const data = randomBytes(300 + 8, 9);
    const seen = new Set<string>();
    for (let len = 0; len <= 300; len++) {
      const x = as.hashBytes(data.subarray(0, len));
      expect(x).toMatch(/^[0-9a-f]{16}$/);
      expect(ts.hashBytes(data.subarray(0, len))).toBe(x);
      // unaligned views hash the same bytes the same way
      const copy = new Uint8Array(len + 3);
      copy.set(data.subarray(0, len), 3);
      expect(as.hashBytes(copy.subarray(3))).toBe(x);
      expect(ts.hashBytes(copy.subarray(3))).toBe(x);
      seen.add(x);
    }
    expect(seen.size).toBe(301);
    // zero padding of the last block is not confused with real zero bytes: the length is hashed too
    const zeros = new Uint8Array(130);
    expect(as.hashBytes(zeros.subarray(0, 129))).not.toBe(as.hashBytes(zeros));
    const big = randomBytes(3 * 1024 * 1024 + 77, 10);
    expect(as.hashBytes(big)).toBe(ts.hashBytes(big));
    // a view into the AS engine's own memory is hashed in place, with the same result
    const area = as.area(big.length);
    area.set(big);
    expect(as.hashBytes(area)).toBe(ts.hashBytes(big));
  });

  it('hashBytes of parts is the hash of their concatenation, in both engines, without making it', () => {
    const big = randomBytes(5 * PAGE + 1000, 12);
    const whole = as.hashBytes(big);
    expect(ts.hashBytes(big)).toBe(whole);
    // parts of whole 64-byte blocks, one unaligned, one of them in the AS engine's own memory; the last part is ragged
    const unaligned = new Uint8Array(PAGE + 1);
    unaligned.set(big.subarray(PAGE, 2 * PAGE), 1);
    const area = as.area(2 * PAGE);
    area.set(big.subarray(2 * PAGE, 4 * PAGE));
    for (const e of [as, ts]) {
      const parts = [big.subarray(0, PAGE), unaligned.subarray(1), e === as ? area : big.subarray(2 * PAGE, 4 * PAGE), new Uint8Array(0), big.subarray(4 * PAGE, 4 * PAGE + 64), big.subarray(4 * PAGE + 64)];
      expect(e.hashBytes(parts)).toBe(whole);
      expect(e.hashBytes([big])).toBe(whole);
      expect(e.hashBytes([])).toBe(e.hashBytes(new Uint8Array(0)));
      // the same bytes split elsewhere hash the same; different bytes do not
      expect(e.hashBytes([big.subarray(0, 3 * PAGE), big.subarray(3 * PAGE)])).toBe(whole);
      expect(e.hashBytes([big.subarray(0, PAGE), big.subarray(0, PAGE)])).not.toBe(e.hashBytes(big.subarray(0, 2 * PAGE)));
      // only the last part may end inside a block
      expect(() => e.hashBytes([big.subarray(0, 100), big.subarray(100)])).toThrow(/part 0 is 100 bytes, not a multiple of 64/);
    }
  });

  it('hashBytes of one page matches that page in hashPages', () => {
    const page = randomBytes(PAGE, 11);
    const h = hashAll(ts, page);
    const hex = h[1].toString(16).padStart(8, '0') + h[0].toString(16).padStart(8, '0');
    expect(ts.hashBytes(page)).toBe(hex);
    expect(as.hashBytes(page)).toBe(hex);
  });

  it('area growth keeps the contents of the smaller area (both engines)', () => {
    for (const e of [pages.createPageEngine('assemblyscript'), pages.createPageEngine('typescript')]) {
      const small = e.area(2 * PAGE + 10);
      expect(small.length).toBe(2 * PAGE + 10);
      const data = randomBytes(small.length, 12);
      small.set(data);
      const big = e.area(7 * PAGE);
      expect(big.length).toBe(7 * PAGE);
      expect(Array.from(big.subarray(0, data.length)).every((v, i) => v === data[i])).toBe(true);
      // asking for less does not shrink or move it
      const again = e.area(PAGE);
      expect(again.buffer).toBe(big.buffer);
      expect(again[5]).toBe(data[5]);
      // the functions see the area (hashBytes of outside buffers does not clobber it)
      e.hashBytes(randomBytes(1000, 13));
      expect(e.area(7 * PAGE)[PAGE + 3]).toBe(data[PAGE + 3]);
    }
  });

  it('rejects page counts beyond the area or the output', () => {
    const e = pages.createPageEngine('assemblyscript');
    e.area(PAGE);
    expect(() => e.hashPages(2, new Uint32Array(4))).toThrow(RangeError);
    expect(() => e.zeroPages(1, new Uint8Array(0))).toThrow(RangeError);
    expect(() => ts.diffPages(new Uint8Array(PAGE), new Uint8Array(10), 1, new Uint8Array(1))).toThrow(RangeError);
  });

  it('decodeBase64 decodes without atob or Buffer', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = randomBytes(n, 14 + n);
      expect(Array.from(pages.decodeBase64(Buffer.from(bytes).toString('base64')))).toEqual(Array.from(bytes));
    }
  });
});
