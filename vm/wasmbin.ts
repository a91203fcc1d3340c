/**
 * Small readers and rewriters of the Wasm binary format for what Binaryen's JS API does not expose: which memory
 * pages the active data segments write, and an export for a memory that has none.
 */
import { readU32, uleb128 } from './namesection.js';
import { concatChunks } from './snapshot.js';

const PAGE = 65536;
const enc = new TextEncoder();
const dec = new TextDecoder();

function readS(b: Uint8Array, p: number): [number, number] {
  let r = 0n;
  let shift = 0n;
  for (;;) {
    if (p >= b.length) throw new RangeError('truncated LEB128');
    const x = b[p++]!;
    r |= BigInt(x & 0x7f) << shift;
    shift += 7n;
    if (!(x & 0x80)) {
      if (x & 0x40) r -= 1n << shift;
      return [Number(BigInt.asIntN(64, r)), p];
    }
  }
}

export interface Section {
  id: number;
  /** offset of the section id byte */
  start: number;
  /** offset of the payload */
  body: number;
  /** offset just past the payload */
  end: number;
}

export function sections(bytes: Uint8Array): Section[] {
  const out: Section[] = [];
  let p = 8;
  while (p < bytes.length) {
    const start = p;
    const id = bytes[p++]!;
    const [size, body] = readU32(bytes, p);
    p = body + size;
    out.push({ id, start, body, end: p });
  }
  return out;
}

/**
 * Evaluate a constant offset expression (`i32.const`, `i64.const`, extended-const add/sub/mul) at `p`.
 * Returns [value or undefined when it reads a global, next position]; throws on anything else.
 */
function constExpr(b: Uint8Array, p: number): [number | undefined, number] {
  const stack: Array<number | undefined> = [];
  for (;;) {
    const op = b[p++];
    if (op === 0x0b) return [stack.pop(), p];
    if (op === 0x41 || op === 0x42) {
      let v: number;
      [v, p] = readS(b, p);
      stack.push(op === 0x41 ? v >>> 0 : v);
    } else if (op === 0x23) {
      [, p] = readU32(b, p);
      stack.push(undefined);
    } else if (op === 0x6a || op === 0x6b || op === 0x6c || op === 0x7c || op === 0x7d || op === 0x7e) {
      const y = stack.pop();
      const x = stack.pop();
      if (x === undefined || y === undefined) stack.push(undefined);
      else {
        const r = op === 0x6a || op === 0x7c ? x + y : op === 0x6b || op === 0x7d ? x - y : x * y;
        stack.push(op >= 0x7c ? r : r >>> 0);
      }
    } else throw new Error(`unsupported opcode 0x${(op ?? 0).toString(16)} in a data segment offset`);
  }
}

/**
 * The memory pages (64 KiB) that the module's active data segments write when it is instantiated, sorted. A segment
 * whose offset is not a constant (reads an imported global) makes the answer every page below `initialPages`.
 */
export function activeDataPages(bytes: Uint8Array, initialPages: number): number[] {
  const all = () => Array.from({ length: initialPages }, (_, i) => i);
  const data = sections(bytes).find((s) => s.id === 11);
  if (!data) return [];
  const pages = new Set<number>();
  try {
    let [count, p] = readU32(bytes, data.body);
    for (let i = 0; i < count; i++) {
      let flags: number;
      [flags, p] = readU32(bytes, p);
      let offset: number | undefined;
      if (flags === 1) offset = undefined;
      else if (flags === 0 || flags === 2) {
        if (flags === 2) [, p] = readU32(bytes, p);
        [offset, p] = constExpr(bytes, p);
        if (offset === undefined) return all();
      } else throw new Error(`unknown data segment flags ${flags}`);
      let len: number;
      [len, p] = readU32(bytes, p);
      p += len;
      if (flags === 1 || len === 0) continue;
      for (let pg = Math.floor(offset! / PAGE); pg <= Math.floor((offset! + len - 1) / PAGE); pg++) pages.add(pg);
    }
  } catch {
    return all();
  }
  return [...pages].sort((a, b) => a - b);
}

/**
 * If the module has a memory (imported or defined) that it does not export, add an export for it (`memory`, or
 * `gridvm_memory` when that name is taken), so that Binaryen can name it. Returns the bytes unchanged otherwise.
 */
export function exportMemory(bytes: Uint8Array): Uint8Array {
  const secs = sections(bytes);
  let hasMemory = secs.some((s) => s.id === 5);
  const imp = secs.find((s) => s.id === 2);
  if (imp && !hasMemory) {
    let [n, p] = readU32(bytes, imp.body);
    for (let i = 0; i < n && !hasMemory; i++) {
      for (let k = 0; k < 2; k++) {
        let l: number;
        [l, p] = readU32(bytes, p);
        p += l;
      }
      const kind = bytes[p++]!;
      if (kind === 0) [, p] = readU32(bytes, p);
      else if (kind === 1) {
        p++; // reftype
        let fl: number;
        [fl, p] = readU32(bytes, p);
        [, p] = readU32(bytes, p);
        if (fl & 1) [, p] = readU32(bytes, p);
      } else if (kind === 2) hasMemory = true;
      else if (kind === 3) p += 2;
      else if (kind === 4) {
        p++;
        [, p] = readU32(bytes, p);
      } else return bytes; // unknown import kind: leave it to Binaryen
    }
  }
  if (!hasMemory) return bytes;
  const ex = secs.find((s) => s.id === 7);
  if (!ex) return bytes; // no exports at all: not a WASI command (instrument says so)
  let [n, p] = readU32(bytes, ex.body);
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    let l: number;
    [l, p] = readU32(bytes, p);
    const name = dec.decode(bytes.subarray(p, p + l));
    p += l;
    const kind = bytes[p++]!;
    [, p] = readU32(bytes, p);
    if (kind === 2) return bytes;
    names.add(name);
  }
  const name = enc.encode(names.has('memory') ? 'gridvm_memory' : 'memory');
  const [, entries] = readU32(bytes, ex.body);
  const payload = concatChunks([
    Uint8Array.from(uleb128(n + 1)),
    bytes.subarray(entries, ex.end),
    Uint8Array.from(uleb128(name.length)),
    name,
    Uint8Array.from([2, 0]),
  ]);
  return concatChunks([bytes.subarray(0, ex.start), Uint8Array.from([7, ...uleb128(payload.length)]), payload, bytes.subarray(ex.end)]);
}

/**
 * The limits (64 KiB pages) with which the module imports the memory `module`.`name`, read from its import section
 * (the Wasm JS API does not tell), or undefined if it does not import it.
 */
export function memoryImportLimits(bytes: Uint8Array, module = 'gridvm', name = 'memory'): { initial: number; maximum?: number; shared?: boolean } | undefined {
  let p = 8;
  while (p < bytes.length) {
    const id = bytes[p++]!;
    const [size, body] = readU32(bytes, p);
    p = body + size;
    if (id === 0 || id === 1) continue;
    if (id !== 2) return undefined; // sections are ordered: only custom and type sections come before imports
    let [n, q] = readU32(bytes, body);
    for (let i = 0; i < n; i++) {
      const strs: string[] = [];
      for (let k = 0; k < 2; k++) {
        let l: number;
        [l, q] = readU32(bytes, q);
        strs.push(dec.decode(bytes.subarray(q, q + l)));
        q += l;
      }
      const kind = bytes[q++]!;
      if (kind === 0) [, q] = readU32(bytes, q);
      else if (kind === 1) {
        q++;
        let fl: number;
        [fl, q] = readU32(bytes, q);
        [, q] = readU32(bytes, q);
        if (fl & 1) [, q] = readU32(bytes, q);
      } else if (kind === 2) {
        let fl: number;
        let initial: number;
        let maximum: number | undefined;
        [fl, q] = readU32(bytes, q);
        [initial, q] = readU32(bytes, q);
        if (fl & 1) [maximum, q] = readU32(bytes, q);
        if (strs[0] === module && strs[1] === name) {
          return { initial, ...(maximum !== undefined ? { maximum } : {}), ...(fl & 2 ? { shared: true } : {}) };
        }
      } else if (kind === 3) q += 2;
      else if (kind === 4) {
        q++;
        [, q] = readU32(bytes, q);
      } else return undefined;
    }
    return undefined;
  }
  return undefined;
}

/** Whether the module has a start section (a function that runs when it is instantiated). */
export function hasStartSection(bytes: Uint8Array): boolean {
  return sections(bytes).some((s) => s.id === 8);
}
