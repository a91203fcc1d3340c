/**
 * Optimising a module too big for the optimiser's memory, a part at a time: the module is cut into parts by function
 * bodies (each part: the whole module with the bodies outside the part replaced by `unreachable`), each part goes
 * through the optimiser's function passes on its own, and the optimised bodies are put back together into the
 * original module. Only bodies change, so every index (functions, globals, tables, tags, data, elements) and every
 * other section stay the original's; type indices inside bodies are mapped back, since the optimiser writes its own
 * type section (ordered by use). Binary level only: no Binaryen.
 */
import { readU32, uleb128 } from './namesection.js';
import { concatChunks } from './snapshot.js';
import { sections, type Section } from './wasmbin.js';

const CODE = 10;
const TYPE = 1;
const FUNCTION = 3;
const CUSTOM = 0;

/** A body that is valid for any function type and takes no room: no locals, `unreachable`, `end`. */
const STUB = new Uint8Array([3, 0, 0x00, 0x0b]);

export class CodeFormatError extends Error {}

interface Body {
  /** offset of the body's size field */
  start: number;
  /** offset just past the body */
  end: number;
}

/** The code section's entries: each function body's extent, size field included. */
export function functionBodies(bytes: Uint8Array): Body[] {
  const code = sections(bytes).find((s) => s.id === CODE);
  if (!code) return [];
  let [count, p] = readU32(bytes, code.body);
  const out: Body[] = [];
  for (let i = 0; i < count; i++) {
    const start = p;
    let size: number;
    [size, p] = readU32(bytes, p);
    p += size;
    out.push({ start, end: p });
  }
  if (p !== code.end) throw new CodeFormatError('the code section does not end where its bodies do');
  return out;
}

/** Byte extents of the parts: consecutive runs of bodies of at most `maxBytes` of code each (at least one body). */
export function partition(bodies: Body[], maxBytes: number): Array<[number, number]> {
  const parts: Array<[number, number]> = [];
  let from = 0;
  let size = 0;
  for (let i = 0; i < bodies.length; i++) {
    const n = bodies[i]!.end - bodies[i]!.start;
    if (i > from && size + n > maxBytes) {
      parts.push([from, i]);
      from = i;
      size = 0;
    }
    size += n;
  }
  if (bodies.length) parts.push([from, bodies.length]);
  return parts;
}

function section(id: number, payload: Uint8Array[]): Uint8Array {
  const size = payload.reduce((a, c) => a + c.length, 0);
  return concatChunks([new Uint8Array([id, ...uleb128(size)]), ...payload]);
}

/** The module with its code section replaced by these entries (each with its size field), everything else as is. */
function withCode(bytes: Uint8Array, entries: Uint8Array[]): Uint8Array {
  const out: Uint8Array[] = [bytes.subarray(0, 8)];
  for (const s of sections(bytes)) {
    if (s.id === CODE) out.push(section(CODE, [new Uint8Array(uleb128(entries.length)), ...entries]));
    else if (s.id === CUSTOM && customName(bytes, s) === 'name') out.push(functionNamesOnly(bytes, s));
    else out.push(bytes.subarray(s.start, s.end));
  }
  return concatChunks(out);
}

function customName(bytes: Uint8Array, s: Section): string {
  const [len, p] = readU32(bytes, s.body);
  return new TextDecoder().decode(bytes.subarray(p, p + len));
}

/**
 * The name section without its local-names (and label-names) subsections: they name the locals of the bodies as
 * they were, which the optimiser renumbers. Function names stay (trap stacks show them).
 */
function functionNamesOnly(bytes: Uint8Array, s: Section): Uint8Array {
  const [len, start] = readU32(bytes, s.body);
  let p = start + len;
  const keep: Uint8Array[] = [bytes.subarray(s.body, p)];
  while (p < s.end) {
    const id = bytes[p]!;
    const [size, body] = readU32(bytes, p + 1);
    if (id !== 2 && id !== 3) keep.push(bytes.subarray(p, body + size));
    p = body + size;
  }
  return section(CUSTOM, keep);
}

/** Part `[from, to)` of the module: the bodies outside it replaced by `unreachable`. */
export function modulePart(bytes: Uint8Array, bodies: Body[], from: number, to: number): Uint8Array {
  return withCode(bytes, bodies.map((b, i) => (i >= from && i < to ? bytes.subarray(b.start, b.end) : STUB)));
}

/** The entries of the type section, each as its bytes (function types only: 0x60 params results). */
function typeEntries(bytes: Uint8Array): string[] {
  const s = sections(bytes).find((x) => x.id === TYPE);
  if (!s) return [];
  let [count, p] = readU32(bytes, s.body);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const start = p;
    if (bytes[p++] !== 0x60) throw new CodeFormatError(`type ${i} is not a function type (GC types are not handled)`);
    for (let k = 0; k < 2; k++) {
      let n: number;
      [n, p] = readU32(bytes, p);
      for (let j = 0; j < n; j++) {
        if (!VALTYPES.has(bytes[p]!)) throw new CodeFormatError(`type ${i} has a value type 0x${bytes[p]!.toString(16)} that is not handled`);
        p++;
      }
    }
    out.push(Array.from(bytes.subarray(start, p), (x) => x.toString(16)).join(','));
  }
  return out;
}

/** the function section: the type index of each defined function */
function functionTypes(bytes: Uint8Array): number[] {
  const s = sections(bytes).find((x) => x.id === FUNCTION);
  if (!s) return [];
  let [count, p] = readU32(bytes, s.body);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    let t: number;
    [t, p] = readU32(bytes, p);
    out.push(t);
  }
  return out;
}

/** i32 i64 f32 f64 v128 funcref externref */
const VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);

/**
 * Put the optimised parts back together: `parts[k]` is the optimiser's output for part `ranges[k]` of `original`.
 * Returns `original` with the parts' bodies in place of its own (type indices in them mapped to the original's type
 * section). Throws CodeFormatError if the parts do not fit (a function count or type that differs).
 */
export function joinParts(original: Uint8Array, ranges: Array<[number, number]>, parts: Uint8Array[]): Uint8Array {
  const types = typeEntries(original);
  const typeIndex = new Map<string, number>();
  types.forEach((t, i) => typeIndex.has(t) || typeIndex.set(t, i));
  const fnTypes = functionTypes(original);
  const entries: Uint8Array[] = [];
  ranges.forEach(([from, to], k) => {
    const part = parts[k]!;
    const map = typeEntries(part).map((t, i) => {
      const j = typeIndex.get(t);
      return j ?? -1 - i;
    });
    const bodies = functionBodies(part);
    if (bodies.length !== fnTypes.length) throw new CodeFormatError(`part ${k} has ${bodies.length} function bodies where the module has ${fnTypes.length}`);
    const partFnTypes = functionTypes(part);
    for (let i = from; i < to; i++) {
      if (map[partFnTypes[i]!] !== fnTypes[i]) throw new CodeFormatError(`function ${i} changed its type in part ${k}`);
      entries.push(remapBody(part, bodies[i]!, map));
    }
  });
  return withCode(original, entries);
}

/**
 * A body with every type index in it (block types, call_indirect, return_call_indirect, typed ref.null) mapped
 * through `map` (a negative entry: a type the original does not have). Returns the entry, size field included.
 */
export function remapBody(bytes: Uint8Array, body: Body, map: readonly number[]): Uint8Array {
  const [size, start] = readU32(bytes, body.start);
  const end = start + size;
  const out: Uint8Array[] = [];
  let copied = start;
  const type = (p: number, q: number, idx: number): void => {
    const to = map[idx];
    if (to === undefined || to < 0) throw new CodeFormatError(`type index ${idx} in a body has no counterpart in the original module`);
    if (to === idx) return;
    out.push(bytes.subarray(copied, p), new Uint8Array(uleb128(to)));
    copied = q;
  };
  const u32 = (p: number): number => readU32(bytes, p)[1];
  const leb = (p: number): number => {
    while (bytes[p++]! & 0x80) if (p >= end) throw new CodeFormatError('truncated LEB128 in a body');
    return p;
  };
  const memarg = (p: number): number => {
    const [align, q] = readU32(bytes, p);
    return leb(align & 0x40 ? u32(q) : q);
  };
  const blockType = (p: number): number => {
    const b = bytes[p]!;
    if (b === 0x40 || VALTYPES.has(b)) return p + 1;
    const [idx, q] = readS33(bytes, p);
    if (idx < 0) throw new CodeFormatError(`block type 0x${b.toString(16)} is not handled`);
    type(p, q, idx);
    return q;
  };
  // the locals
  let [groups, p] = readU32(bytes, start);
  for (let i = 0; i < groups; i++) {
    p = u32(p);
    if (!VALTYPES.has(bytes[p]!)) throw new CodeFormatError(`a local of type 0x${bytes[p]!.toString(16)} is not handled`);
    p++;
  }
  while (p < end) {
    const op = bytes[p++]!;
    if (op === 0x02 || op === 0x03 || op === 0x04 || op === 0x06) p = blockType(p);
    else if (op === 0x11 || op === 0x13) {
      const [idx, q] = readU32(bytes, p);
      type(p, q, idx);
      p = u32(q);
    } else if (op === 0x07 || op === 0x08 || op === 0x09 || op === 0x18 || op === 0x0c || op === 0x0d || op === 0x10 || op === 0x12 ||
      (op >= 0x20 && op <= 0x26) || op === 0xd2 || op === 0xd4 || op === 0xd6) p = u32(p);
    else if (op === 0x0e) {
      let n: number;
      [n, p] = readU32(bytes, p);
      for (let i = 0; i <= n; i++) p = u32(p);
    } else if (op === 0x1c) {
      let n: number;
      [n, p] = readU32(bytes, p);
      for (let i = 0; i < n; i++) {
        if (!VALTYPES.has(bytes[p]!)) throw new CodeFormatError('a typed select of a reference type is not handled');
        p++;
      }
    } else if (op >= 0x28 && op <= 0x3e) p = memarg(p);
    else if (op === 0x3f || op === 0x40) p = u32(p);
    else if (op === 0x41 || op === 0x42) p = leb(p);
    else if (op === 0x43) p += 4;
    else if (op === 0x44) p += 8;
    else if (op === 0xd0) {
      const b = bytes[p]!;
      if (b === 0x70 || b === 0x6f) p++;
      else {
        const [idx, q] = readS33(bytes, p);
        if (idx < 0) throw new CodeFormatError(`ref.null of heap type 0x${b.toString(16)} is not handled`);
        type(p, q, idx);
        p = q;
      }
    } else if (op === 0xfc) {
      let sub: number;
      [sub, p] = readU32(bytes, p);
      if (sub <= 7) continue;
      if (sub === 8 || sub === 10 || sub === 12 || sub === 14) p = u32(u32(p));
      else if (sub === 9 || sub === 11 || sub === 13 || (sub >= 15 && sub <= 17)) p = u32(p);
      else throw new CodeFormatError(`opcode 0xfc ${sub} is not handled`);
    } else if (op === 0xfd) {
      let sub: number;
      [sub, p] = readU32(bytes, p);
      if (sub <= 11 || sub === 92 || sub === 93) p = memarg(p);
      else if (sub === 12 || sub === 13) p += 16;
      else if (sub >= 21 && sub <= 34) p += 1;
      else if (sub >= 84 && sub <= 91) p = memarg(p) + 1;
    } else if (op === 0xfe) {
      let sub: number;
      [sub, p] = readU32(bytes, p);
      p = sub === 3 ? p + 1 : memarg(p);
    } else if (op === 0xfb || op === 0x14 || op === 0x15 || op === 0x0a || op === 0x1f) {
      throw new CodeFormatError(`opcode 0x${op.toString(16)} (GC, typed function references or new exception handling) is not handled`);
    }
    // every other opcode has no immediates
  }
  if (p !== end) throw new CodeFormatError('a body does not end where its size says');
  if (copied === start) return bytes.subarray(body.start, body.end);
  out.push(bytes.subarray(copied, end));
  const inner = concatChunks(out);
  return concatChunks([new Uint8Array(uleb128(inner.length)), inner]);
}

/** a signed LEB128 (s33, as block types and heap types are): [value, next position] */
function readS33(b: Uint8Array, p: number): [number, number] {
  let r = 0;
  let mul = 1;
  for (;;) {
    const x = b[p++]!;
    r += (x & 0x7f) * mul;
    mul *= 128;
    if (!(x & 0x80)) {
      if (x & 0x40) r -= mul;
      return [r, p];
    }
  }
}
