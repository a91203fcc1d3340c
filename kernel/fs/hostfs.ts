import { Errno, KernelError } from '../errors.js';
import type { HostFs, HostStat } from '../platform.js';
import type { DirEntry, FileHandle, FileRef, FsBackend, OpenFlags, Stat } from './types.js';

function fromHost(s: HostStat): Stat {
  return { dev: s.dev, ino: s.ino, kind: s.kind, nlink: s.nlink, size: s.size, atim: s.atimeNs, mtim: s.mtimeNs, ctim: s.ctimeNs };
}

/**
 * A host directory mounted into the guest (`--dir HOST::GUEST`). The VFS has already confined and resolved every
 * path (no '..', no symlink in parent components), so this only joins it to the host root.
 */
export class HostDirFs implements FsBackend {
  private readonly root: string;

  constructor(private readonly host: HostFs, root: string, readonly readonly = false) {
    this.root = root.length > 1 ? root.replace(/\/+$/, '') : root;
  }

  hostPath(path: string): string {
    if (path === '') return this.root;
    return this.root === '/' ? `/${path}` : `${this.root}/${path}`;
  }

  private checkWritable(): void {
    if (this.readonly) throw new KernelError(Errno.PERM, 'the mount is read-only');
  }

  lstat(path: string): Stat | null {
    try {
      return fromHost(this.host.stat(this.hostPath(path), false));
    } catch (e) {
      if (e instanceof KernelError && e.errno === Errno.NOENT) return null;
      throw e;
    }
  }

  readlink(path: string): string {
    return this.host.readlink(this.hostPath(path));
  }

  readdir(path: string): DirEntry[] {
    return this.host.readdir(this.hostPath(path));
  }

  open(path: string, flags: OpenFlags): { handle: FileHandle } {
    if (flags.write || flags.create || flags.trunc) this.checkWritable();
    const h = this.host.open(this.hostPath(path), { ...flags, append: false, directory: false });
    return { handle: this.handle(h) };
  }

  reopen(ref: FileRef): FileHandle {
    if (ref.write) this.checkWritable();
    const h = this.host.open(this.hostPath(ref.path), {
      read: ref.read, write: ref.write, create: false, excl: false, trunc: false, append: false, directory: false,
    });
    return this.handle(h);
  }

  private handle(h: number): FileHandle {
    const host = this.host;
    return {
      read: (buf, pos) => host.read(h, buf, BigInt(pos)),
      write: (buf, pos) => host.write(h, buf, BigInt(pos)),
      stat: () => fromHost(host.fstat(h)),
      truncate: (size) => host.ftruncate(h, BigInt(size)),
      sync: () => host.fsync(h),
      close: () => host.close(h),
    };
  }

  mkdir(path: string): void {
    this.checkWritable();
    this.host.mkdir(this.hostPath(path));
  }

  rmdir(path: string): void {
    this.checkWritable();
    this.host.rmdir(this.hostPath(path));
  }

  unlink(path: string): void {
    this.checkWritable();
    const st = this.lstat(path);
    if (st && st.kind === 'dir') throw new KernelError(Errno.ISDIR);
    this.host.unlink(this.hostPath(path));
  }

  rename(from: string, to: string): void {
    this.checkWritable();
    this.host.rename(this.hostPath(from), this.hostPath(to));
  }

  symlink(target: string, path: string): void {
    this.checkWritable();
    this.host.symlink(target, this.hostPath(path));
  }

  link(from: string, to: string): void {
    this.checkWritable();
    if (!this.host.link) throw new KernelError(Errno.NOTSUP, 'this host does not support hard links');
    this.host.link(this.hostPath(from), this.hostPath(to));
  }

  setTimes(path: string, atim: bigint | null, mtim: bigint | null): void {
    this.checkWritable();
    if (atim === null || mtim === null) {
      const st = this.host.stat(this.hostPath(path), true);
      atim ??= st.atimeNs;
      mtim ??= st.mtimeNs;
    }
    this.host.utimes(this.hostPath(path), atim, mtim);
  }
}
