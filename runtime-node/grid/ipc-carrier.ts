// The IPC carrier between the origin and process nodes (`--isolate process`): each wire-protocol message is sent
// as its encoded bytes over the child-process channel, except its big byte fields (snapshots: a pre-copy, a
// migration's delta), which go through files in MIGRATION_DIR (RAM-backed /dev/shm), written and read without
// msgpack copying them; only the file names cross the IPC channel. Node's IPC pipe moves ~0.7 GB/s here (a 2 MiB
// message: ~3 ms each way, measured) and msgpack spent ~80 ms packing a 64 MiB pre-copy; both are migration time.
import { readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { decodeMessage, encodeMessage, type Message } from '../../kernel/index.js';
import { MIGRATION_DIR } from './runner-types.js';
import { SPARE_NAME, SPARE_PREFIX } from './shm-files.js';

/** Byte fields of a message at least this big travel through a file each. */
export const FILE_CARRIER_BYTES = 128 * 1024;

const PREFIX = 'gridvm-msg-';
const NAME = /^gridvm-msg-\d+-[A-Za-z0-9_.-]+-\d+-[0-9a-f]{8}$/;
let counter = 0;

/** What goes over the IPC channel: the encoded message, with its big byte fields (top level) moved to files. */
export type Carried = Uint8Array | { msg: Uint8Array; files: Record<string, { file: string; bytes: number }> };

/**
 * Encode a message for the channel to `to` (a node id, or 'origin'). Its top-level byte fields (a snapshot, its
 * base) of FILE_CARRIER_BYTES or more are written straight to files (no msgpack copy of them) and sent empty.
 */
export function carry(m: Message, to: string): Carried {
  let files: Record<string, { file: string; bytes: number }> | undefined;
  let slim: Record<string, unknown> | undefined;
  // byte fields its sender already wrote to carrier files (a runner's pre-copy): their files go as they are
  const pre = (m as { carried?: Record<string, { file: string; bytes: number }> }).carried;
  if (pre) {
    for (const [k, f] of Object.entries(pre)) {
      if (!isCarrierFile(f.file)) throw new Error(`field ${k} is carried in ${f.file}, which is not a gridvm message file`);
    }
    files = { ...pre };
    slim = { ...m };
    delete slim.carried;
  }
  for (const [k, v] of Object.entries(m)) {
    if (!(v instanceof Uint8Array) || v.length < FILE_CARRIER_BYTES) continue;
    const file = carrierFileName(to);
    writeFileSync(file, v, { mode: 0o600 });
    (files ??= {})[k] = { file, bytes: v.length };
    (slim ??= { ...m })[k] = new Uint8Array(0);
  }
  const msg = encodeMessage((slim ?? m) as Message);
  return files ? { msg, files } : msg;
}

/**
 * A new carrier file name for a message from this process to `to`: carry() writes big fields to such files, and a
 * sender in another thread of this process may write one itself and name it in the message's `carried` field.
 */
export function carrierFileName(to: string): string {
  return join(MIGRATION_DIR, `${PREFIX}${process.pid}-${safe(to)}-${++counter}-${randomBytes(4).toString('hex')}`);
}

/** Decode what arrived over the channel; carrier files are read and removed. Throws on bad input. */
export function uncarry(raw: unknown): Message {
  if (raw instanceof Uint8Array) return decodeMessage(raw);
  if (raw instanceof ArrayBuffer) return decodeMessage(new Uint8Array(raw));
  const o = raw as { msg?: unknown; files?: unknown } | null;
  if (!o || !(o.msg instanceof Uint8Array) || typeof o.files !== 'object' || o.files === null) throw new Error('IPC message is neither bytes nor a carried message');
  const files = Object.entries(o.files as Record<string, { file?: unknown; bytes?: unknown }>);
  const parts: Record<string, Uint8Array> = {};
  try {
    for (const [k, f] of files) {
      if (!isCarrierFile(f?.file) || typeof f!.bytes !== 'number') {
        throw new Error(`IPC carrier file for field ${k} is not a gridvm message file`);
      }
      const b = readFileSync(f.file);
      if (b.length !== f.bytes) throw new Error(`IPC carrier file ${f.file} has ${b.length} bytes, not the ${f.bytes} announced`);
      parts[k] = new Uint8Array(b.buffer, b.byteOffset, b.length);
    }
  } finally {
    for (const [, f] of files) {
      const file = f?.file;
      if (isCarrierFile(file)) rmSync(file, { force: true });
    }
  }
  const m = decodeMessage(o.msg) as unknown as Record<string, unknown>;
  for (const [k, b] of Object.entries(parts)) {
    if (!(m[k] instanceof Uint8Array) || (m[k] as Uint8Array).length !== 0) throw new Error(`IPC carried message has no empty byte field ${k} for its file`);
    m[k] = b;
  }
  return m as unknown as Message;
}

/** One of our carrier files, in the migration directory (a peer cannot make us read or remove anything else). */
function isCarrierFile(file: unknown): file is string {
  return typeof file === 'string' && dirname(file) === MIGRATION_DIR && NAME.test(basename(file));
}

/**
 * Remove carrier files a process wrote (to one peer, or to all) that nobody will read: the reader has gone. For all
 * peers (`to` undefined: the process has ended or is ending), its spare migration files go too (shm-files.ts).
 */
export function sweepCarrierFiles(pid: number, to?: string): void {
  let names: string[];
  try {
    names = readdirSync(MIGRATION_DIR);
  } catch {
    return;
  }
  const start = `${PREFIX}${pid}-${to !== undefined ? `${safe(to)}-` : ''}`;
  const spares = `${SPARE_PREFIX}${pid}-`;
  for (const n of names) {
    if ((n.startsWith(start) && NAME.test(n)) || (to === undefined && n.startsWith(spares) && SPARE_NAME.test(n))) {
      try {
        unlinkSync(join(MIGRATION_DIR, n));
      } catch {
        // already read and removed
      }
    }
  }
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}
