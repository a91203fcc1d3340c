// Memory files of migrations between process nodes (`--isolate process`), in MIGRATION_DIR (RAM-backed /dev/shm).
//
// A fresh tmpfs file allocates and zeroes every page it is written to: writing 64 MiB into a new file took ~14 ms
// here, into one whose pages exist ~6-10 ms, and removing a 64 MiB file ~2.5 ms. So files are reused: a runner
// that has read an incoming migration's file keeps it as a spare (renamed to its own name) and writes its next
// outgoing migration into a spare (renamed to a migration name) instead of a new file, and a file it cannot keep is
// removed off the frozen path (asynchronously, on libuv's threads).
//
// Ownership: a file has one owner at a time. The writer owns a migration file until it has closed it and sent its
// name; the reader owns it from the message on (nobody else has its name), and a spare belongs to the runner that
// renamed it to its own spare name. Spares carry the node process's pid: they are swept with its carrier files
// when the process ends (ipc-carrier.ts sweepCarrierFiles), and migration files of a process by the coordinator.
//
// A suspension to a file also skips the safe point's copy of memory: the Machine writes the live memory to the
// file before the unwind (MachineOptions.captureSink) and repairs Asyncify's window from the file (a read of the
// few bytes the unwind wrote at offset 0).
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, renameSync, rmSync, statSync, unlink, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { CAPTURE_CHUNK, PAGE_SIZE, type CaptureSink } from '../../vm/runtime.js';
import { MIGRATION_DIR } from './runner-types.js';

export const SNAP_PREFIX = 'gridvm-snap-';
export const SPARE_PREFIX = 'gridvm-spare-';
/** gridvm-snap-<writer pid>-<gpid>-<n>-<hex8>.raw (the coordinator sweeps them by the writer's pid) */
const SNAP_NAME = /^gridvm-snap-\d+-\d+-\d+-[0-9a-f]{8}\.raw$/;
/** gridvm-spare-<owner pid>-<thread id>-<n>-<hex8> */
export const SPARE_NAME = /^gridvm-spare-\d+-\d+-\d+-[0-9a-f]{8}$/;

let counter = 0;
const hex8 = () => randomBytes(4).toString('hex');

/** A name for the memory file of a migration (or preemption) written by this process. */
export function migrationFileName(gpid: number): string {
  return join(MIGRATION_DIR, `${SNAP_PREFIX}${process.pid}-${gpid}-${++counter}-${hex8()}.raw`);
}

/** The pid of the process that wrote migration memory file `file` (its name says: gridvm-snap-<pid>-...). */
export function writerPid(file: string): number {
  return Number(/^gridvm-snap-(\d+)-/.exec(basename(file))?.[1] ?? 0);
}

/** Whether `file` is a migration memory file in MIGRATION_DIR (a message cannot make us rename anything else). */
export function isMigrationFile(file: unknown): file is string {
  return typeof file === 'string' && dirname(file) === MIGRATION_DIR && SNAP_NAME.test(basename(file));
}

/** Write all of `src` at offset `pos` of fd. */
export function writeAll(fd: number, src: Uint8Array, pos = 0): void {
  let off = 0;
  while (off < src.length) off += writeSync(fd, src, off, src.length - off, pos + off);
}

/** Fill all of `dst` from offset `pos` of fd; throws if the file ends first. */
export function readAll(fd: number, dst: Uint8Array, pos: number, what: string): void {
  let off = 0;
  while (off < dst.length) {
    const n = readSync(fd, dst, off, dst.length - off, pos + off);
    if (n === 0) throw new Error(`${what} is truncated at ${pos + off} of ${pos + dst.length} bytes`);
    off += n;
  }
}

export interface SpareFilesOptions {
  /** spares kept at most (default 2) */
  maxCount?: number;
  /** bytes of spares kept at most (default 512 MiB) */
  maxBytes?: number;
}

/**
 * The spare memory files of one runner thread: files whose tmpfs pages exist, so writing a migration's memory into
 * one costs about a copy instead of a page allocation each. Only the owning thread uses it.
 */
export class SpareFiles {
  private spares: Array<{ path: string; bytes: number }> = [];
  private readonly maxCount: number;
  private readonly maxBytes: number;
  /** files removed so far because they did not fit (tests) */
  evicted = 0;

  constructor(opts: SpareFilesOptions = {}) {
    this.maxCount = opts.maxCount ?? 2;
    this.maxBytes = opts.maxBytes ?? 512 * 1024 * 1024;
  }

  /** The spares, smallest first (copies). */
  list(): Array<{ path: string; bytes: number }> {
    return this.spares.map((s) => ({ ...s }));
  }

  /**
   * A file named `path`, open for writing `bytes` bytes: the smallest spare of at least that size (else the
   * largest, which the write extends) renamed to `path`, or a new file. Returns the fd and whether it was a spare.
   * With `upTo`, only a spare of at most that many bytes is taken (a small file that will not come back, such as a
   * carrier file, should not use up a spare the size of a job's memory).
   */
  claim(path: string, bytes: number, upTo = Infinity): { fd: number; reused: boolean } {
    let i = this.spares.findIndex((s) => s.bytes >= bytes);
    if (i < 0) i = this.spares.length - 1;
    if (i >= 0 && this.spares[i]!.bytes > upTo) i = -1;
    while (i >= 0) {
      const [s] = this.spares.splice(i, 1);
      try {
        renameSync(s!.path, path);
        return { fd: openSync(path, 'r+'), reused: true };
      } catch {
        // gone (swept?): try the next, or make a new one
        rmSync(path, { force: true });
        i = this.spares.length - 1;
        if (i >= 0 && this.spares[i]!.bytes > upTo) i = -1;
      }
    }
    return { fd: openSync(path, 'w+', 0o600), reused: false };
  }

  /**
   * Take over a migration file this runner has read (it is ours now: nobody else has its name): keep it as a
   * spare, or remove it in the background when the spares are full. Files that are not migration files are
   * left alone.
   */
  adopt(file: string): void {
    if (!isMigrationFile(file)) return;
    let bytes = 0;
    let path = join(MIGRATION_DIR, `${SPARE_PREFIX}${process.pid}-${threadId}-${++counter}-${hex8()}`);
    try {
      bytes = statSync(file).size;
      renameSync(file, path);
    } catch {
      path = file;
      bytes = -1;
    }
    if (bytes < 0 || bytes > this.maxBytes) {
      this.drop(path);
      return;
    }
    this.spares.push({ path, bytes });
    // over the bounds: drop the smallest others first (a big file saves the most page allocation)
    this.spares.sort((a, b) => a.bytes - b.bytes);
    let total = this.spares.reduce((n, s) => n + s.bytes, 0);
    while (this.spares.length > this.maxCount || total > this.maxBytes) {
      const k = this.spares.findIndex((s) => s.path !== path);
      const [s] = this.spares.splice(k < 0 ? 0 : k, 1);
      total -= s!.bytes;
      this.drop(s!.path);
    }
  }

  /** Remove every spare (synchronously). */
  clear(): void {
    for (const s of this.spares.splice(0)) rmSync(s.path, { force: true });
  }

  /** Remove a file without waiting: freeing a big tmpfs file takes milliseconds, not spent in a freeze. */
  private drop(path: string): void {
    this.evicted++;
    unlink(path, () => {});
  }
}

/**
 * A capture sink that stores a suspension's memory in a migration file: the live memory is written before the
 * unwind, the window is read back from it after. `finish()` closes it and names the file for the message.
 */
export class FileSink implements CaptureSink {
  private fd = -1;
  /** bytes written, once the whole memory is in the file */
  written = -1;
  /** the file was a spare (its pages existed) */
  reused = false;

  /**
   * With `announce`, the file is streamed: once claimed, its progress trailer (streamProgress) is set to 0 and
   * `announce(path, bytes)` is called, so that a reader in another process can copy the memory while it is
   * written; the memory then goes in CAPTURE_CHUNK pieces, the trailer counting the pages written.
   */
  constructor(
    private readonly spares: SpareFiles,
    readonly path: string,
    private readonly announce?: (path: string, bytes: number) => void,
  ) {}

  write(memory: Uint8Array): void {
    const { fd, reused } = this.spares.claim(this.path, memory.length);
    this.fd = fd;
    this.reused = reused;
    const bytes = memory.length;
    try {
      if (!this.announce) writeAll(fd, memory, 0);
      else {
        setProgress(fd, bytes, 0);
        this.announce(this.path, bytes);
        for (let at = 0; at < bytes; ) {
          const end = Math.min(bytes, at + CAPTURE_CHUNK);
          writeAll(fd, memory.subarray(at, end), at);
          at = end;
          setProgress(fd, bytes, at / PAGE_SIZE);
        }
      }
    } catch (e) {
      this.discard(bytes);
      throw e;
    }
    this.written = bytes;
  }

  readBack(dst: Uint8Array): void {
    if (this.written < dst.length) throw new Error(`migration file ${this.path}: the window's ${dst.length} bytes were not written`);
    readAll(this.fd, dst, 0, `migration file ${this.path}`);
  }

  /** Close the file; it is then the message's. Returns the bytes of memory in it. */
  finish(): number {
    if (this.written < 0) throw new Error(`migration file ${this.path} was not written`);
    this.close();
    return this.written;
  }

  /** Not used after all: close and remove the file (a streaming reader is told it was given up). */
  discard(bytes = this.written): void {
    if (this.announce && this.fd >= 0 && bytes >= 0) {
      try {
        setProgress(this.fd, bytes, -1);
      } catch {
        // the reader stops at its stall limit instead
      }
    }
    this.close();
    this.written = -1;
    rmSync(this.path, { force: true });
  }

  private close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * A streamed memory file's progress trailer: an i32 (LE) just past the memory's `bytes`, the pages written so far,
 * -1 once the writer gave up. Written after the pages it counts, so a reader that sees n may read n pages.
 */
const trailer = new Int32Array(1);
const trailerBytes = new Uint8Array(trailer.buffer);

function setProgress(fd: number, bytes: number, pages: number): void {
  trailer[0] = pages;
  writeAll(fd, trailerBytes, bytes);
}

/** The progress trailer of a streamed memory file of `bytes` bytes: pages written so far, -1 if given up. */
export function streamProgress(fd: number, bytes: number): number {
  const n = readSync(fd, trailerBytes, 0, 4, bytes);
  return n === 4 ? trailer[0]! : 0;
}

/** The spare files of this runner thread. */
export const spareFiles = new SpareFiles();
let pendingSink: { gpid: number; sink: FileSink } | undefined;

/**
 * The sink for a suspension of process `gpid` that will leave through a file (a runner's captureSink). A sink
 * left over from a capture that never reached its suspended outcome (the job trapped in the unwind) is discarded.
 */
export function suspendSink(gpid: number, announce?: (path: string, bytes: number) => void): FileSink {
  pendingSink?.sink.discard();
  const sink = new FileSink(spareFiles, migrationFileName(gpid), announce);
  pendingSink = { gpid, sink };
  return sink;
}

/**
 * The file the suspension of `gpid` was captured into, closed, if its `bytes` of memory are all there; undefined
 * when it was captured by copy (then any unused sink is discarded).
 */
export function takeSuspendFile(gpid: number, bytes: number): string | undefined {
  const p = pendingSink;
  pendingSink = undefined;
  if (!p) return undefined;
  if (p.gpid === gpid && p.sink.written === bytes) {
    p.sink.finish();
    return p.sink.path;
  }
  p.sink.discard();
  return undefined;
}
