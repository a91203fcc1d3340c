/** Kernel operations on file descriptors. Semantics live here; kernel/abi only decodes pointers and calls these. */
import { Filetype, Fdflags, Fstflags, Whence } from '../abi/constants.js';
import { Errno, KernelError } from '../errors.js';
import { splitPath } from '../fs/path.js';
import type { FileKind, Stat } from '../fs/types.js';
import type { FdEntry } from './fd.js';
import type { Process } from './process.js';

export interface Fdstat {
  filetype: number;
  flags: number;
  rightsBase: bigint;
  rightsInheriting: bigint;
}

export interface Filestat {
  dev: bigint;
  ino: bigint;
  filetype: number;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

export interface Dirent {
  next: bigint;
  ino: bigint;
  name: string;
  filetype: number;
}

export function filetypeOf(kind: FileKind): number {
  switch (kind) {
    case 'file': return Filetype.REGULAR_FILE;
    case 'dir': return Filetype.DIRECTORY;
    case 'symlink': return Filetype.SYMBOLIC_LINK;
    default: return Filetype.UNKNOWN;
  }
}

export function filestatOf(s: Stat): Filestat {
  return { dev: s.dev, ino: s.ino, filetype: filetypeOf(s.kind), nlink: s.nlink, size: s.size, atim: s.atim, mtim: s.mtim, ctim: s.ctim };
}

const isStdio = (e: FdEntry): boolean => e.kind === 'stdin' || e.kind === 'stdout' || e.kind === 'stderr';

/** The entry of a regular-file fd; stdio is SPIPE (not seekable), directories ISDIR. */
function fileFd(p: Process, fd: number): FdEntry {
  const e = p.fd(fd);
  if (e.kind === 'file') return e;
  if (e.isDir) throw new KernelError(Errno.ISDIR, `fd ${fd} is a directory`);
  throw new KernelError(Errno.SPIPE, `fd ${fd} is not seekable`);
}

function readAt(p: Process, fd: number, e: FdEntry, iovs: Uint8Array[], pos: number): number {
  const h = p.handle(fd, e);
  let total = 0;
  for (const buf of iovs) {
    if (buf.length === 0) continue;
    const n = h.read(buf, pos + total);
    total += n;
    if (n < buf.length) break;
  }
  return total;
}

function writeAt(p: Process, fd: number, e: FdEntry, iovs: Uint8Array[], pos: number): number {
  const h = p.handle(fd, e);
  let total = 0;
  for (const buf of iovs) {
    if (buf.length === 0) continue;
    const n = h.write(buf, pos + total);
    total += n;
    if (n < buf.length) break;
  }
  return total;
}

export function fdRead(p: Process, fd: number, iovs: Uint8Array[]): number {
  const e = p.fd(fd);
  if (!e.read) throw new KernelError(Errno.BADF, `fd ${fd} is not open for reading`);
  if (e.kind === 'stdin') {
    let max = 0;
    for (const b of iovs) max += b.length;
    const data = p.readStdin(max);
    let off = 0;
    for (const b of iovs) {
      if (off >= data.length) break;
      const n = Math.min(b.length, data.length - off);
      b.set(data.subarray(off, off + n));
      off += n;
    }
    return data.length;
  }
  if (e.isDir) throw new KernelError(Errno.ISDIR, `fd ${fd} is a directory: use fd_readdir`);
  if (e.kind !== 'file') throw new KernelError(Errno.BADF);
  const n = readAt(p, fd, e, iovs, e.offset);
  e.offset += n;
  return n;
}

export function fdPread(p: Process, fd: number, iovs: Uint8Array[], offset: bigint): number {
  const e = fileFd(p, fd);
  if (!e.read) throw new KernelError(Errno.BADF, `fd ${fd} is not open for reading`);
  return readAt(p, fd, e, iovs, toOffset(offset));
}

export function fdWrite(p: Process, fd: number, iovs: Uint8Array[]): number {
  const e = p.fd(fd);
  if (!e.write) throw new KernelError(Errno.BADF, `fd ${fd} is not open for writing`);
  if (e.kind === 'stdout' || e.kind === 'stderr') {
    let total = 0;
    for (const b of iovs) total += b.length;
    if (total === 0) return 0;
    if (p.gatherOutput(e.kind === 'stdout' ? 1 : 2, iovs, total)) return total;
    // one copy of all the iovecs (printf's writev has two): the callee may keep the bytes, and guest memory changes
    // under it (a borrowing callee gets one iovec as it is: a view of guest memory for the call)
    let bytes: Uint8Array;
    if (iovs.length === 1) bytes = p.opts.borrowOutput ? iovs[0]! : iovs[0]!.slice();
    else {
      bytes = new Uint8Array(total);
      let o = 0;
      for (const b of iovs) {
        bytes.set(b, o);
        o += b.length;
      }
    }
    if (e.kind === 'stdout') p.writeStdout(bytes);
    else p.writeStderr(bytes);
    return total;
  }
  if (e.kind !== 'file') throw new KernelError(Errno.BADF);
  const pos = e.fdflags & Fdflags.APPEND ? Number(p.handle(fd, e).stat().size) : e.offset;
  const n = writeAt(p, fd, e, iovs, pos);
  e.offset = pos + n;
  return n;
}

export function fdPwrite(p: Process, fd: number, iovs: Uint8Array[], offset: bigint): number {
  const e = fileFd(p, fd);
  if (!e.write) throw new KernelError(Errno.BADF, `fd ${fd} is not open for writing`);
  return writeAt(p, fd, e, iovs, toOffset(offset));
}

function toOffset(v: bigint): number {
  const u = BigInt.asUintN(64, v);
  if (u > BigInt(Number.MAX_SAFE_INTEGER)) throw new KernelError(Errno.OVERFLOW, 'offset too large');
  return Number(u);
}

export function fdSeek(p: Process, fd: number, offset: bigint, whence: number): bigint {
  const e = p.fd(fd);
  if (isStdio(e)) throw new KernelError(Errno.SPIPE, `fd ${fd} is not seekable`);
  if (e.isDir) throw new KernelError(Errno.BADF, `fd ${fd} is a directory`);
  const delta = BigInt.asIntN(64, offset);
  let base: bigint;
  switch (whence) {
    case Whence.SET: base = 0n; break;
    case Whence.CUR: base = BigInt(e.offset); break;
    case Whence.END: base = p.handle(fd, e).stat().size; break;
    default: throw new KernelError(Errno.INVAL, `bad whence ${whence}`);
  }
  const next = base + delta;
  if (next < 0n) throw new KernelError(Errno.INVAL, 'seek to a negative offset');
  if (next > BigInt(Number.MAX_SAFE_INTEGER)) throw new KernelError(Errno.OVERFLOW);
  e.offset = Number(next);
  return next;
}

export function fdTell(p: Process, fd: number): bigint {
  const e = p.fd(fd);
  if (isStdio(e)) throw new KernelError(Errno.SPIPE);
  if (e.isDir) throw new KernelError(Errno.BADF);
  return BigInt(e.offset);
}

export function fdClose(p: Process, fd: number): void {
  p.closeFd(fd);
}

/** Move `from` onto `to` (which must be open, and is closed first). */
/**
 * Move `from` onto `to`, closing `to` first if it is open. Like dup2, a closed `to` is accepted (wasmtime and
 * uvwasi refuse it with BADF; real programs such as YoWASP's Yosys rely on it: renumber(1, 7) then renumber(6, 1)).
 */
export function fdRenumber(p: Process, from: number, to: number): void {
  const e = p.fd(from);
  if (from === to) return;
  if (!Number.isInteger(to) || to < 0 || to >= p.fds.capacity) throw new KernelError(Errno.BADF, `fd ${to} is out of range`);
  if (p.fds.get(to) !== undefined) p.closeFd(to);
  const h = p.handles.get(from);
  p.fds.remove(from);
  p.handles.delete(from);
  p.fds.insertAt(to, e);
  if (h) p.handles.set(to, h);
}

export function fdFdstat(p: Process, fd: number): Fdstat {
  const e = p.fd(fd);
  const filetype = isStdio(e) ? Filetype.CHARACTER_DEVICE : e.isDir ? Filetype.DIRECTORY : Filetype.REGULAR_FILE;
  return { filetype, flags: e.fdflags, rightsBase: e.rightsBase, rightsInheriting: e.rightsInheriting };
}

export function fdFdstatSetFlags(p: Process, fd: number, flags: number): void {
  const e = p.fd(fd);
  if (flags & ~0x1f) throw new KernelError(Errno.INVAL, `bad fdflags 0x${flags.toString(16)}`);
  e.fdflags = flags;
}

/** Rights can only shrink (NOTCAPABLE when asked to add one). */
export function fdFdstatSetRights(p: Process, fd: number, base: bigint, inheriting: bigint): void {
  const e = p.fd(fd);
  base = BigInt.asUintN(64, base);
  inheriting = BigInt.asUintN(64, inheriting);
  if ((base & ~e.rightsBase) !== 0n || (inheriting & ~e.rightsInheriting) !== 0n) {
    throw new KernelError(Errno.NOTCAPABLE, 'fd_fdstat_set_rights can only drop rights');
  }
  e.rightsBase = base;
  e.rightsInheriting = inheriting;
}

export function fdFilestat(p: Process, fd: number): Filestat {
  const e = p.fd(fd);
  if (isStdio(e)) return { dev: 0n, ino: 0n, filetype: Filetype.CHARACTER_DEVICE, nlink: 1n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n };
  if (e.isDir) {
    const st = p.vfs.mount(e.mount).fs.lstat(e.path);
    if (!st) throw new KernelError(Errno.NOENT, 'the directory was removed');
    return filestatOf(st);
  }
  return filestatOf(p.handle(fd, e).stat());
}

export function fdFilestatSetSize(p: Process, fd: number, size: bigint): void {
  const e = fileFd(p, fd);
  if (!e.write) throw new KernelError(Errno.BADF, `fd ${fd} is not open for writing`);
  p.handle(fd, e).truncate(toOffset(size));
}

/** Decode fstflags into new times (null = unchanged). */
export function timesFrom(p: Process, atim: bigint, mtim: bigint, fst: number): { atim: bigint | null; mtim: bigint | null } {
  if ((fst & Fstflags.ATIM && fst & Fstflags.ATIM_NOW) || (fst & Fstflags.MTIM && fst & Fstflags.MTIM_NOW) || fst & ~0xf) {
    throw new KernelError(Errno.INVAL, `bad fstflags ${fst}`);
  }
  const now = fst & (Fstflags.ATIM_NOW | Fstflags.MTIM_NOW) ? p.clock.realtime() : 0n;
  return {
    atim: fst & Fstflags.ATIM ? BigInt.asUintN(64, atim) : fst & Fstflags.ATIM_NOW ? now : null,
    mtim: fst & Fstflags.MTIM ? BigInt.asUintN(64, mtim) : fst & Fstflags.MTIM_NOW ? now : null,
  };
}

export function fdFilestatSetTimes(p: Process, fd: number, atim: bigint, mtim: bigint, fst: number): void {
  const e = p.fd(fd);
  if (isStdio(e)) throw new KernelError(Errno.BADF);
  const t = timesFrom(p, atim, mtim, fst);
  p.vfs.mount(e.mount).fs.setTimes(e.path, t.atim, t.mtim);
}

export function fdAdvise(p: Process, fd: number, _offset: bigint, _len: bigint, advice: number): void {
  const e = p.fd(fd);
  if (advice < 0 || advice > 5) throw new KernelError(Errno.INVAL, `bad advice ${advice}`);
  if (e.kind !== 'file') throw new KernelError(isStdio(e) ? Errno.SPIPE : Errno.BADF);
}

/** Make sure [offset, offset+len) is allocated: grows the file when it is shorter. */
export function fdAllocate(p: Process, fd: number, offset: bigint, len: bigint): void {
  const e = fileFd(p, fd);
  if (!e.write) throw new KernelError(Errno.BADF, `fd ${fd} is not open for writing`);
  const end = toOffset(offset) + toOffset(len);
  const h = p.handle(fd, e);
  if (BigInt(end) > h.stat().size) h.truncate(end);
}

export function fdSync(p: Process, fd: number): void {
  const e = p.fd(fd);
  if (isStdio(e)) throw new KernelError(Errno.INVAL, `fd ${fd} cannot be synced`);
  if (e.kind === 'file') p.handle(fd, e).sync();
}

/** The preopen name of fd, or BADF (wasi-libc scans fds from 3 until BADF). */
export function fdPrestat(p: Process, fd: number): string {
  const e = p.fd(fd);
  if (e.preopen === null) throw new KernelError(Errno.BADF, `fd ${fd} is not a preopened directory`);
  return e.preopen;
}

/** All entries of a directory fd ('.', '..', then its children); entry i has cookie i and d_next i+1. */
export function fdReaddir(p: Process, fd: number): Dirent[] {
  const e = p.fd(fd);
  if (!e.isDir) throw new KernelError(Errno.NOTDIR, `fd ${fd} is not a directory`);
  if (!e.read) throw new KernelError(Errno.BADF);
  const mount = p.vfs.mount(e.mount);
  const self = mount.fs.lstat(e.path);
  if (!self) throw new KernelError(Errno.NOENT, 'the directory was removed');
  let parentIno = self.ino;
  if (mount.memfs) parentIno = mount.memfs.parentIno(e.path);
  else if (e.path !== '') {
    const comps = splitPath(e.path);
    comps.pop();
    parentIno = mount.fs.lstat(comps.join('/'))?.ino ?? self.ino;
  }
  const out: Dirent[] = [
    { next: 1n, ino: self.ino, name: '.', filetype: Filetype.DIRECTORY },
    { next: 2n, ino: parentIno, name: '..', filetype: Filetype.DIRECTORY },
  ];
  for (const d of mount.fs.readdir(e.path)) {
    out.push({ next: BigInt(out.length + 1), ino: d.ino, name: d.name, filetype: filetypeOf(d.kind) });
  }
  return out;
}
