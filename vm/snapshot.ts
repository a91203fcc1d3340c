import { Packr } from 'msgpackr';
import type { GridCall, ProcessState } from '../kernel/index.js';
import { SnapshotError } from './errors.js';
import type { GlobalValue, Snapshot } from './machine.js';
import { PAGE_SIZE, type PageEngine } from './pages.js';

/**
 * Checkpoint file format, version 1:
 *
 *   offset  size  field
 *   0       8     magic "GRIDVMCK"
 *   8       4     format version (u32 LE)
 *   12      4     header length H (u32 LE)
 *   16      8     data length D (u64 LE)
 *   24      16    header checksum (hex, ASCII)
 *   40      16    data checksum (hex, ASCII)
 *   56      H     header: msgpack (SnapshotHeader)
 *   56+H    D     data: the pages listed in header.dataPages, 64 KiB each, in that order
 *
 * A full snapshot lists every non-zero page (zero pages are elided). A delta lists the pages whose hash changed
 * since its base (`header.base` = the base's id) and the pages that became zero. The id of a snapshot is its two
 * checksums; a snapshot is valid only for the instrumented module whose hash it names.
 *
 * A snapshot taken at a blocking grid call has `header.blocked` (the decoded call). The field is optional, so the
 * format stays version 1: older files simply are not blocked.
 */
export const SNAPSHOT_FORMAT = 1;
const MAGIC = 'GRIDVMCK';
const PREFIX = 56;

export interface SnapshotHeader {
  format: number;
  kind: 'full' | 'delta';
  /** id of the snapshot a delta applies to */
  base?: string;
  /** file name of the base, relative to this file's directory (a hint for loaders) */
  baseFile?: string;
  moduleHash: string;
  seq: number;
  pages: number;
  /** u32 LE page numbers whose bytes follow in the data section */
  dataPages: Uint8Array;
  /** u32 LE page numbers that are all zero in this snapshot but were not in its base (deltas only) */
  zeroPages: Uint8Array;
  globals: GlobalValue[];
  asyncify: Uint8Array;
  kernel: ProcessState;
  fuelUsed: number;
  stdoutBytes: number;
  stderrBytes: number;
  createdAtMs: number;
  /** free-form facts the runtime wants kept (job name, args, limits) */
  meta?: Record<string, unknown>;
  /** the grid call the job is blocked in (snapshots taken at spawn/fork/wait) */
  blocked?: GridCall;
}

export interface DecodedSnapshot {
  id: string;
  header: SnapshotHeader;
  /** the data section (a view of the input bytes) */
  data: Uint8Array;
}

/** What a delta needs to know about the previous checkpoint of the same run. */
export interface DeltaBase {
  id: string;
  file?: string;
  pages: number;
  /** (lo, hi) u32 pairs per page (absent for a delta made from dirty-page tracking, which does not hash) */
  hashes?: Uint32Array;
  /** the Machine capture it was made from, with dirty-page tracking: a later capture of the same Machine lists
   * its changed pages without hashing */
  tracking?: { epoch: string; capture: number };
}

export interface Encoded {
  id: string;
  /** the file, as chunks to write in order (see `views` in encodeSnapshot) */
  chunks: Uint8Array[];
  size: number;
  header: SnapshotHeader;
  /** pass as `delta` to encode the next checkpoint as a delta of this one */
  base: DeltaBase;
}

const packr = new Packr({ useRecords: false, moreTypes: false });

function u32list(xs: number[]): Uint8Array {
  const out = new Uint8Array(xs.length * 4);
  const dv = new DataView(out.buffer);
  xs.forEach((x, i) => dv.setUint32(i * 4, x, true));
  return out;
}

export function readU32List(b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.byteLength; i += 4) out.push(dv.getUint32(i, true));
  return out;
}

/** Whether page p of mem is all zero. */
function isZeroPage(mem: Uint8Array, p: number): boolean {
  const o = mem.byteOffset + p * PAGE_SIZE;
  const w = o % 4 === 0 ? new Int32Array(mem.buffer, o, PAGE_SIZE / 4) : undefined;
  if (w) {
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  const b = mem.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Encode a snapshot; with `delta`, only the pages that changed since that base. Which pages changed comes from
 * dirty-page tracking when the snapshot and the base are captures of the same Machine (only those pages are
 * read), else from page hashes: the snapshot's memory is then copied into the engine's work area (unless it
 * already is the area, a live capture) and every page is hashed. A delta against a base that has neither (a
 * tracked delta's base, given to another Machine's snapshot) is encoded as a full snapshot instead: check
 * `header.kind`.
 *
 * With `views`, the data section's chunks are views of the memory the pages were read from (the snapshot's memory,
 * or the engine's work area), one per run of consecutive pages, instead of one copy: nothing the size of the
 * memory is allocated, and the chunks are valid only until that memory changes (the Machine's next capture, the
 * engine's next area()). Write them out at once.
 */
export function encodeSnapshot(
  s: Snapshot,
  engine: PageEngine,
  opts: { delta?: DeltaBase; createdAtMs?: number; meta?: Record<string, unknown>; file?: string; views?: boolean } = {},
): Encoded {
  const n = s.pages;
  const bytes = n * PAGE_SIZE;
  let d = opts.delta;
  if (d && d.pages > n) throw new SnapshotError('a delta cannot describe a memory that shrank');
  const t = s.tracking;
  const tracked = !!(d && t && d.tracking && d.tracking.epoch === t.epoch && d.tracking.capture <= t.capture);
  if (d && !tracked && !d.hashes) d = undefined;
  const dataPages: number[] = [];
  const zeroPages: number[] = [];
  let hashes: Uint32Array | undefined;
  let src: Uint8Array;
  if (tracked) {
    src = s.memory;
    const since = d!.tracking!.capture;
    for (let i = 0; i < n; i++) {
      if (i < d!.pages && t!.changedAt[i]! <= since) continue;
      if (isZeroPage(src, i)) zeroPages.push(i);
      else dataPages.push(i);
    }
  } else {
    const area = engine.area(bytes);
    if (!(area.buffer === s.memory.buffer && area.byteOffset === s.memory.byteOffset)) area.set(s.memory.subarray(0, bytes));
    src = area;
    hashes = new Uint32Array(2 * n);
    engine.hashPages(n, hashes);
    const zero = new Uint8Array(n);
    engine.zeroPages(n, zero);
    const dh = d?.hashes;
    for (let i = 0; i < n; i++) {
      if (d && dh && i < d.pages && dh[2 * i] === hashes[2 * i] && dh[2 * i + 1] === hashes[2 * i + 1]) continue;
      if (zero[i]) {
        if (d) zeroPages.push(i);
      } else dataPages.push(i);
    }
  }
  // the data section: one copy of the pages, or (views) the runs of consecutive pages where they are
  let data: Uint8Array[];
  if (opts.views) {
    data = [];
    for (let k = 0; k < dataPages.length; ) {
      let e = k + 1;
      while (e < dataPages.length && dataPages[e] === dataPages[e - 1]! + 1) e++;
      data.push(src.subarray(dataPages[k]! * PAGE_SIZE, (dataPages[e - 1]! + 1) * PAGE_SIZE));
      k = e;
    }
  } else {
    const copy = new Uint8Array(dataPages.length * PAGE_SIZE);
    dataPages.forEach((p, k) => copy.set(src.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), k * PAGE_SIZE));
    data = [copy];
  }
  const dataBytes = dataPages.length * PAGE_SIZE;
  const header: SnapshotHeader = {
    format: SNAPSHOT_FORMAT,
    kind: d ? 'delta' : 'full',
    ...(d ? { base: d.id, ...(d.file ? { baseFile: d.file } : {}) } : {}),
    moduleHash: s.moduleHash,
    seq: s.seq,
    pages: n,
    dataPages: u32list(dataPages),
    zeroPages: u32list(zeroPages),
    globals: s.globals,
    asyncify: s.asyncify,
    kernel: s.kernel,
    fuelUsed: s.fuelUsed,
    stdoutBytes: s.stdoutBytes,
    stderrBytes: s.stderrBytes,
    createdAtMs: opts.createdAtMs ?? 0,
    ...(opts.meta ? { meta: opts.meta } : {}),
    ...(s.blocked ? { blocked: s.blocked } : {}),
  };
  const hb = packr.pack(header) as Uint8Array;
  const hh = engine.hashBytes(hb);
  const dh = engine.hashBytes(data);
  const prefix = new Uint8Array(PREFIX);
  const dv = new DataView(prefix.buffer);
  for (let i = 0; i < 8; i++) prefix[i] = MAGIC.charCodeAt(i);
  dv.setUint32(8, SNAPSHOT_FORMAT, true);
  dv.setUint32(12, hb.length, true);
  dv.setBigUint64(16, BigInt(dataBytes), true);
  for (let i = 0; i < 16; i++) {
    prefix[24 + i] = hh.charCodeAt(i);
    prefix[40 + i] = dh.charCodeAt(i);
  }
  const id = hh + dh;
  return {
    id,
    chunks: [prefix, hb, ...data],
    size: PREFIX + hb.length + dataBytes,
    header,
    base: {
      id,
      ...(opts.file ? { file: opts.file } : {}),
      pages: n,
      ...(hashes ? { hashes } : {}),
      ...(t ? { tracking: { epoch: t.epoch, capture: t.capture } } : {}),
    },
  };
}

/** Parse and verify a checkpoint file. Throws SnapshotError saying what is wrong. */
export function decodeSnapshot(bytes: Uint8Array, engine: PageEngine): DecodedSnapshot {
  if (bytes.length < PREFIX) throw new SnapshotError(`not a gridvm checkpoint: ${bytes.length} bytes is shorter than the ${PREFIX}-byte header (truncated?)`);
  for (let i = 0; i < 8; i++) {
    if (bytes[i] !== MAGIC.charCodeAt(i)) throw new SnapshotError('not a gridvm checkpoint: bad magic number');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = dv.getUint32(8, true);
  if (format !== SNAPSHOT_FORMAT) throw new SnapshotError(`unsupported checkpoint format version ${format} (this gridvm reads version ${SNAPSHOT_FORMAT})`);
  const hl = dv.getUint32(12, true);
  const dl = Number(dv.getBigUint64(16, true));
  if (bytes.length !== PREFIX + hl + dl) {
    throw new SnapshotError(`checkpoint is truncated or has trailing garbage: expected ${PREFIX + hl + dl} bytes, found ${bytes.length}`);
  }
  const ascii = (o: number) => String.fromCharCode(...bytes.subarray(o, o + 16));
  const hh = ascii(24);
  const dh = ascii(40);
  const hb = bytes.subarray(PREFIX, PREFIX + hl);
  const data = bytes.subarray(PREFIX + hl);
  if (engine.hashBytes(hb) !== hh) throw new SnapshotError('checkpoint is corrupted: header checksum mismatch');
  if (engine.hashBytes(data) !== dh) throw new SnapshotError('checkpoint is corrupted: memory checksum mismatch');
  let header: SnapshotHeader;
  try {
    header = packr.unpack(hb) as SnapshotHeader;
  } catch (e) {
    throw new SnapshotError('checkpoint is corrupted: the header does not decode', { cause: e });
  }
  if (header.format !== SNAPSHOT_FORMAT || (header.kind !== 'full' && header.kind !== 'delta')) {
    throw new SnapshotError('checkpoint is corrupted: inconsistent header');
  }
  if (readU32List(header.dataPages).length * PAGE_SIZE !== data.length) {
    throw new SnapshotError('checkpoint is corrupted: page list does not match the data length');
  }
  if (header.blocked !== undefined && header.blocked !== null) header.blocked = gridCallOf(header.blocked);
  else delete header.blocked;
  return { id: hh + dh, header, data };
}

/** What a memory prepared before instantiation already holds (see applyChain). */
export interface PreparedMemory {
  /** how many links of the chain (oldest first) were applied to it before the Machine was made */
  links: number;
  /** the pages the module's data segments rewrote at instantiation: InstrumentInfo.dataPages */
  dataPages: readonly number[];
}

/**
 * Apply a chain [full, delta, delta, ...] (oldest first) to `dst`, which must be at least the last snapshot's
 * page count long. Pages not written by the chain are zeroed.
 *
 * With `prepared`, `dst` is a job memory that already holds the chain's first `prepared.links` links — applied
 * with applyChain into a (pooled) memory before the Machine was instantiated, e.g. while the job still ran on another
 * node — except the pages that instantiation rewrote with the module's data segments. Those pages are written again
 * as of that link, then only the newer links are applied: a migration copies the bulk early and only a delta while
 * the job is frozen. (Every delta lists all pages above its base's size, so pages the memory grew by are covered.)
 */
export function applyChain(chain: DecodedSnapshot[], dst: Uint8Array, prepared?: PreparedMemory): void {
  if (!chain.length) throw new SnapshotError('empty checkpoint chain');
  if (chain[0]!.header.kind !== 'full') throw new SnapshotError('a checkpoint chain must start with a full checkpoint');
  for (let k = 1; k < chain.length; k++) {
    const h = chain[k]!.header;
    if (h.kind !== 'delta' || h.base !== chain[k - 1]!.id) throw new SnapshotError(`checkpoint chain is broken at link ${k}: its base is not the previous checkpoint`);
    if (h.moduleHash !== chain[0]!.header.moduleHash) throw new SnapshotError('checkpoint chain mixes modules');
  }
  const last = chain[chain.length - 1]!.header;
  const apply = (c: DecodedSnapshot) => applyLink(c, dst);
  if (!prepared) {
    dst.fill(0, 0, last.pages * PAGE_SIZE);
    for (const c of chain) apply(c);
    return;
  }
  const k = prepared.links;
  if (!Number.isInteger(k) || k < 1 || k > chain.length) throw new RangeError(`applyChain: prepared.links must be 1..${chain.length}, not ${k}`);
  const basePages = chain[k - 1]!.header.pages;
  const lists = chain.slice(0, k).map((c) => ({ data: readU32List(c.header.dataPages), zero: new Set(readU32List(c.header.zeroPages)) }));
  for (const p of prepared.dataPages) {
    if (p >= basePages) continue;
    // the newest of those links that lists the page says what it held; none: it was zero
    let from: { j: number; at: number } | undefined;
    for (let j = k - 1; j >= 0; j--) {
      const at = lists[j]!.data.indexOf(p);
      if (at >= 0) from = { j, at };
      if (at >= 0 || lists[j]!.zero.has(p)) break;
    }
    if (from) dst.set(chain[from.j]!.data.subarray(from.at * PAGE_SIZE, (from.at + 1) * PAGE_SIZE), p * PAGE_SIZE);
    else dst.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  }
  for (const c of chain.slice(k)) apply(c);
}

/**
 * A link of a chain reduced to the data pages among `pages` (its id, header and zero pages otherwise unchanged), for
 * a link already applied to a prepared memory: applyChain with `prepared` reads only the pages instantiation
 * rewrites (PreparedMemory.dataPages) from such links, so a pre-copy need not keep its whole data section alive.
 */
export function keepPages(c: DecodedSnapshot, pages: readonly number[]): DecodedSnapshot {
  const want = new Set(pages);
  const kept: number[] = [];
  const at: number[] = [];
  readU32List(c.header.dataPages).forEach((p, k) => {
    if (want.has(p)) {
      kept.push(p);
      at.push(k);
    }
  });
  const data = new Uint8Array(kept.length * PAGE_SIZE);
  at.forEach((k, i) => data.set(c.data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE), i * PAGE_SIZE));
  return { id: c.id, header: { ...c.header, dataPages: u32list(kept) }, data };
}

/**
 * Write one link's pages into `dst` (its data pages, and zeros for its zero pages): on top of the links before it,
 * this gives the memory the link describes. `dst` must hold at least the link's page count.
 */
export function applyLink(c: DecodedSnapshot, dst: Uint8Array): void {
  readU32List(c.header.dataPages).forEach((p, k) => dst.set(c.data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE), p * PAGE_SIZE));
  for (const p of readU32List(c.header.zeroPages)) dst.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
}

/** The Snapshot (minus memory, which applyChain writes) described by the newest link of a chain. */
export function snapshotFromChain(chain: DecodedSnapshot[]): Snapshot {
  const h = chain[chain.length - 1]!.header;
  return {
    moduleHash: h.moduleHash,
    memory: new Uint8Array(0),
    pages: h.pages,
    globals: h.globals,
    asyncify: h.asyncify,
    kernel: h.kernel,
    fuelUsed: h.fuelUsed,
    stdoutBytes: h.stdoutBytes,
    stderrBytes: h.stderrBytes,
    seq: h.seq,
    ...(h.blocked ? { blocked: h.blocked } : {}),
  };
}

/** A decoded GridCall, checked and with its numbers as the types the kernel uses (msgpack may give a number). */
function gridCallOf(c: unknown): GridCall {
  const o = c as Record<string, unknown>;
  const bad = (): never => {
    throw new SnapshotError('checkpoint is corrupted: bad blocked grid call in the header');
  };
  if (typeof o !== 'object' || o === null) bad();
  switch (o.op) {
    case 'spawn':
      if (typeof o.path !== 'string' || !Array.isArray(o.argv)) bad();
      return { op: 'spawn', path: o.path as string, argv: (o.argv as unknown[]).map(String) };
    case 'fork':
      return { op: 'fork' };
    case 'wait':
      if (typeof o.gpid !== 'bigint' && typeof o.gpid !== 'number') bad();
      return { op: 'wait', gpid: BigInt(o.gpid as bigint | number) };
    default:
      return bad();
  }
}

/** The chunks in one buffer; `alloc` makes it (e.g. over a SharedArrayBuffer). */
export function concatChunks(chunks: Uint8Array[], alloc: (bytes: number) => Uint8Array = (n) => new Uint8Array(n)): Uint8Array {
  const out = alloc(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
