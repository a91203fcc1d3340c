/** Kernel operations on paths (relative to a directory fd, confined to it: see Vfs.resolve). */
import { Lookupflags, Oflags, Rights, RIGHTS_DIR, RIGHTS_FILE } from '../abi/constants.js';
import { Errno, KernelError } from '../errors.js';
import { ESCAPE_ERRNO } from '../fs/path.js';
import type { Resolved } from '../fs/vfs.js';
import { filestatOf, timesFrom, type Filestat } from './fd-ops.js';
import type { FdEntry } from './fd.js';
import type { Process } from './process.js';

function resolveAt(p: Process, dirfd: number, path: string, follow: boolean): Resolved {
  const dir = p.dirFd(dirfd);
  return p.vfs.resolve(dir.mount, dir.path, path, follow);
}

function requireExisting(r: Resolved, path: string): NonNullable<Resolved['stat']> {
  if (!r.stat) throw new KernelError(Errno.NOENT, `no such file or directory: ${path}`);
  return r.stat;
}

/** path_open: returns the new fd. */
export function pathOpen(
  p: Process, dirfd: number, lookupflags: number, path: string, oflags: number, rightsBase: bigint,
  rightsInheriting: bigint, fdflags: number,
): number {
  const dir = p.dirFd(dirfd);
  if (oflags & ~0xf) throw new KernelError(Errno.INVAL, `bad oflags ${oflags}`);
  if (fdflags & ~0x1f) throw new KernelError(Errno.INVAL, `bad fdflags ${fdflags}`);
  const creat = (oflags & Oflags.CREAT) !== 0;
  const directory = (oflags & Oflags.DIRECTORY) !== 0;
  const excl = (oflags & Oflags.EXCL) !== 0;
  const trunc = (oflags & Oflags.TRUNC) !== 0;
  if (creat && directory) throw new KernelError(Errno.INVAL, 'O_CREAT with O_DIRECTORY');
  const base = BigInt.asUintN(64, rightsBase);
  // like wasmtime: any write-ish right means "open for writing"; no right at all means read-only
  const write = (base & (Rights.FD_WRITE | Rights.FD_DATASYNC | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)) !== 0n;
  const read = (base & (Rights.FD_READ | Rights.FD_READDIR)) !== 0n || !write;
  const mount = p.vfs.mount(dir.mount);
  if (mount.readonly && (write || creat || trunc)) throw new KernelError(Errno.PERM, `mount ${mount.guest} is read-only`);
  if (p.fds.size >= p.fds.capacity) throw new KernelError(Errno.MFILE, 'too many open files');

  const r = p.vfs.resolve(dir.mount, dir.path, path, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
  const inh = BigInt.asUintN(64, rightsInheriting) & dir.rightsInheriting;
  const entry: FdEntry = {
    kind: 'file', mount: dir.mount, path: r.path, offset: 0, fdflags, rightsBase: 0n, rightsInheriting: inh,
    isDir: false, read, write, preopen: null, readdirCookie: 0n,
  };
  if (r.stat) {
    if (creat && excl) throw new KernelError(Errno.EXIST, `${path} exists`);
    if (r.stat.kind === 'symlink') throw new KernelError(directory ? Errno.NOTDIR : Errno.LOOP, `${path} is a symbolic link (not followed)`);
    if (r.stat.kind === 'dir') {
      if (write || trunc) throw new KernelError(Errno.ISDIR, `${path} is a directory`);
      entry.kind = 'dir';
      entry.isDir = true;
      entry.read = true;
      entry.rightsBase = base & RIGHTS_DIR & dir.rightsInheriting;
      return p.fds.insert(entry);
    }
    if (directory) throw new KernelError(Errno.NOTDIR, `${path} is not a directory`);
  } else {
    if (!creat) throw new KernelError(Errno.NOENT, `no such file or directory: ${path}`);
    if (path.endsWith('/')) throw new KernelError(Errno.ISDIR, `cannot create a file named with a trailing slash: ${path}`);
  }
  entry.rightsBase = base & RIGHTS_FILE & dir.rightsInheriting;
  const opened = mount.fs.open(r.path, { read, write, create: creat, excl, trunc });
  if (opened.ino !== undefined) entry.ino = opened.ino;
  const fd = p.fds.insert(entry);
  p.handles.set(fd, opened.handle);
  return fd;
}

export function pathCreateDirectory(p: Process, dirfd: number, path: string): void {
  const r = resolveAt(p, dirfd, path, false);
  if (r.stat) throw new KernelError(Errno.EXIST, `${path} exists`);
  r.mount.fs.mkdir(r.path);
}

export function pathFilestatGet(p: Process, dirfd: number, lookupflags: number, path: string): Filestat {
  const r = resolveAt(p, dirfd, path, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
  return filestatOf(requireExisting(r, path));
}

export function pathFilestatSetTimes(
  p: Process, dirfd: number, lookupflags: number, path: string, atim: bigint, mtim: bigint, fst: number,
): void {
  const t = timesFrom(p, atim, mtim, fst);
  const r = resolveAt(p, dirfd, path, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
  requireExisting(r, path);
  r.mount.fs.setTimes(r.path, t.atim, t.mtim);
}

export function pathLink(p: Process, oldfd: number, oldflags: number, oldPath: string, newfd: number, newPath: string): void {
  const src = resolveAt(p, oldfd, oldPath, (oldflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
  const st = requireExisting(src, oldPath);
  if (st.kind === 'dir') throw new KernelError(Errno.PERM, 'cannot hard-link a directory');
  const dst = resolveAt(p, newfd, newPath, false);
  if (dst.stat) throw new KernelError(Errno.EXIST, `${newPath} exists`);
  if (src.mount !== dst.mount) throw new KernelError(Errno.XDEV, 'cannot link across mounts');
  src.mount.fs.link(src.path, dst.path);
}

export function pathReadlink(p: Process, dirfd: number, path: string): string {
  const r = resolveAt(p, dirfd, path, false);
  const st = requireExisting(r, path);
  if (st.kind !== 'symlink') throw new KernelError(Errno.INVAL, `${path} is not a symbolic link`);
  return r.mount.fs.readlink(r.path);
}

export function pathRemoveDirectory(p: Process, dirfd: number, path: string): void {
  const r = resolveAt(p, dirfd, path, false);
  const st = requireExisting(r, path);
  if (r.isBase) throw new KernelError(Errno.INVAL, 'cannot remove the directory fd itself');
  if (st.kind !== 'dir') throw new KernelError(Errno.NOTDIR, `${path} is not a directory`);
  r.mount.fs.rmdir(r.path);
}

export function pathRename(p: Process, oldfd: number, oldPath: string, newfd: number, newPath: string): void {
  const src = resolveAt(p, oldfd, oldPath, false);
  const st = requireExisting(src, oldPath);
  const dst = resolveAt(p, newfd, newPath, false);
  if (src.mount !== dst.mount) throw new KernelError(Errno.XDEV, 'cannot rename across mounts');
  if (src.isBase || dst.isBase) throw new KernelError(Errno.BUSY, 'cannot rename a directory fd itself');
  if (dst.stat) {
    if (st.kind === 'dir' && dst.stat.kind !== 'dir') throw new KernelError(Errno.NOTDIR, `${newPath} is not a directory`);
    if (st.kind !== 'dir' && dst.stat.kind === 'dir') throw new KernelError(Errno.ISDIR, `${newPath} is a directory`);
  }
  if (st.kind !== 'dir' && newPath.endsWith('/')) throw new KernelError(Errno.NOTDIR, `${oldPath} is not a directory`);
  src.mount.fs.rename(src.path, dst.path);
}

export function pathSymlink(p: Process, target: string, dirfd: number, newPath: string): void {
  if (target.startsWith('/')) throw new KernelError(ESCAPE_ERRNO, `absolute symlink target ${target} would leave the mount`);
  if (target === '') throw new KernelError(Errno.NOENT, 'empty symlink target');
  const r = resolveAt(p, dirfd, newPath, false);
  if (r.stat) throw new KernelError(Errno.EXIST, `${newPath} exists`);
  r.mount.fs.symlink(target, r.path);
}

export function pathUnlinkFile(p: Process, dirfd: number, path: string): void {
  const r = resolveAt(p, dirfd, path, false);
  const st = requireExisting(r, path);
  if (st.kind === 'dir') throw new KernelError(Errno.ISDIR, `${path} is a directory: use path_remove_directory`);
  r.mount.fs.unlink(r.path);
}
