/**
 * Rename functions in a module's "name" custom section. A module that was already built with Asyncify (CRuby's
 * WASI build) names its own functions `asyncify_start_unwind`…; Binaryen's Asyncify pass adds functions under
 * those names and fails at its very end. Binaryen cannot rename a function, so the name section is rewritten
 * before parsing; every other name is kept.
 */
import { concatChunks } from './snapshot.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Read an unsigned LEB128 u32 at `p`: [value, next position]. */
export function readU32(b: Uint8Array, p: number): [number, number] {
  let r = 0;
  let shift = 0;
  for (;;) {
    if (p >= b.length) throw new RangeError('truncated LEB128');
    const x = b[p++]!;
    r += (x & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(x & 0x80)) return [r, p];
  }
}

/** Unsigned LEB128 encoding of a u32. */
export function uleb128(n: number): number[] {
  const out: number[] = [];
  do {
    let x = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) x |= 0x80;
    out.push(x);
  } while (n);
  return out;
}


/** Rewrite the function-names subsection so that names for which `rename` returns a string get it. */
export function renameFunctionNames(bytes: Uint8Array, rename: (name: string) => string | undefined): { bytes: Uint8Array; renamed: string[] } {
  let p = 8;
  while (p < bytes.length) {
    const start = p;
    const id = bytes[p++]!;
    const [size, body] = readU32(bytes, p);
    const end = body + size;
    p = end;
    if (id !== 0) continue;
    const [nlen, q0] = readU32(bytes, body);
    if (dec.decode(bytes.subarray(q0, q0 + nlen)) !== 'name') continue;
    let q = q0 + nlen;
    const parts: Uint8Array[] = [];
    const renamed: string[] = [];
    while (q < end) {
      const sid = bytes[q++]!;
      const [slen, s0] = readU32(bytes, q);
      let sub = bytes.subarray(s0, s0 + slen);
      q = s0 + slen;
      if (sid === 1) {
        let [count, r] = readU32(sub, 0);
        const out: Uint8Array[] = [Uint8Array.from(uleb128(count))];
        for (let i = 0; i < count; i++) {
          let idx: number;
          let l: number;
          [idx, r] = readU32(sub, r);
          [l, r] = readU32(sub, r);
          let name = dec.decode(sub.subarray(r, r + l));
          r += l;
          const to = rename(name);
          if (to !== undefined) {
            renamed.push(name);
            name = to;
          }
          const nb = enc.encode(name);
          out.push(Uint8Array.from([...uleb128(idx), ...uleb128(nb.length)]), nb);
        }
        sub = concatChunks(out);
      }
      parts.push(Uint8Array.from([sid, ...uleb128(sub.length)]), sub);
    }
    if (!renamed.length) return { bytes, renamed };
    const payload = concatChunks([Uint8Array.from([...uleb128(4)]), enc.encode('name'), ...parts]);
    return { bytes: concatChunks([bytes.subarray(0, start), Uint8Array.from([0, ...uleb128(payload.length)]), payload, bytes.subarray(end)]), renamed };
  }
  return { bytes, renamed: [] };
}
