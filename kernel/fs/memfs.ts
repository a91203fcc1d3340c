import { Errno, KernelError } from '../errors.js';
import { splitPath } from './path.js';
import type { DirEntry, FileHandle, FileRef, FsBackend, OpenFlags, Stat, FileKind } from './types.js';

/** One in-memory inode, as plain data. */
export interface MemNodeState {
  ino: number;
  kind: 'file' | 'dir' | 'symlink';
  nlink: number;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
  /** file contents (exactly `size` bytes) */
  data?: Uint8Array;
  /** directory entries in creation order */
  entries?: Array<[string, number]>;
  /** symlink target */
  target?: string;
}

/** A whole in-memory file system as plain data (msgpackr-encodable). */
export interface MemFsState {
  nextIno: number;
  root: number;
  nodes: MemNodeState[];
}

interface MemNode {
  ino: number;
  kind: 'file' | 'dir' | 'symlink';
  nlink: number;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
  data: Uint8Array;
  size: number;
  entries: Map<string, number>;
  parent: number;
  target: string;
}

const EMPTY = new Uint8Array(0);

/** The in-memory file system of a 'memory' mount. All of its state is exported by `save()` as plain data. */
export class MemFs implements FsBackend {
  private nodes = new Map<number, MemNode>();
  private nextIno = 1;
  private rootIno = 0;
  /** open fds per inode: derived data, rebuilt from the fd table after a restore */
  private openRefs = new Map<number, number>();

  constructor(
    private readonly now: () => bigint,
    readonly readonly = false,
    private readonly dev = 1n,
    state?: MemFsState,
  ) {
    if (state) this.load(state);
    else this.rootIno = this.newNode('dir', 0).ino;
  }

  save(): MemFsState {
    const nodes: MemNodeState[] = [];
    for (const n of this.nodes.values()) {
      const s: MemNodeState = { ino: n.ino, kind: n.kind, nlink: n.nlink, atim: n.atim, mtim: n.mtim, ctim: n.ctim };
      if (n.kind === 'file') s.data = n.data.slice(0, n.size);
      else if (n.kind === 'dir') s.entries = [...n.entries.entries()];
      else s.target = n.target;
      nodes.push(s);
    }
    return { nextIno: this.nextIno, root: this.rootIno, nodes };
  }

  private load(state: MemFsState): void {
    this.nextIno = Number(state.nextIno);
    this.rootIno = Number(state.root);
    for (const s of state.nodes) {
      const data = s.data ? new Uint8Array(s.data) : EMPTY; // copy: a Buffer view from msgpackr is not ours
      this.nodes.set(Number(s.ino), {
        ino: Number(s.ino), kind: s.kind, nlink: Number(s.nlink),
        atim: BigInt(s.atim), mtim: BigInt(s.mtim), ctim: BigInt(s.ctim),
        data, size: data.length,
        entries: new Map((s.entries ?? []).map(([k, v]) => [k, Number(v)])),
        parent: 0, target: s.target ?? '',
      });
    }
    for (const n of this.nodes.values()) {
      if (n.kind !== 'dir') continue;
      for (const child of n.entries.values()) {
        const c = this.nodes.get(child);
        if (c && c.kind === 'dir') c.parent = n.ino;
      }
    }
    const root = this.nodes.get(this.rootIno);
    if (!root || root.kind !== 'dir') throw new Error('in-memory fs state has no root directory: the snapshot is corrupt');
    root.parent = root.ino;
  }

  /** Count an fd that refers to an inode (after open, or for each fd on restore). */
  retain(ino: number): void {
    this.openRefs.set(ino, (this.openRefs.get(ino) ?? 0) + 1);
  }

  release(ref: FileRef): void {
    if (ref.ino === undefined) return;
    const c = (this.openRefs.get(ref.ino) ?? 1) - 1;
    if (c > 0) this.openRefs.set(ref.ino, c);
    else {
      this.openRefs.delete(ref.ino);
      this.collect(ref.ino);
    }
  }

  private collect(ino: number): void {
    const n = this.nodes.get(ino);
    if (n && n.nlink <= 0 && !this.openRefs.has(ino)) this.nodes.delete(ino);
  }

  private newNode(kind: MemNode['kind'], parent: number): MemNode {
    const t = this.now();
    const ino = this.nextIno++;
    const n: MemNode = { ino, kind, nlink: 1, atim: t, mtim: t, ctim: t, data: EMPTY, size: 0, entries: new Map(), parent: parent || ino, target: '' };
    if (kind === 'dir') n.nlink = 2;
    this.nodes.set(ino, n);
    return n;
  }

  private lookup(path: string): MemNode | null {
    let n = this.nodes.get(this.rootIno)!;
    for (const c of splitPath(path)) {
      if (n.kind !== 'dir') throw new KernelError(Errno.NOTDIR);
      const next = n.entries.get(c);
      if (next === undefined) return null;
      n = this.nodes.get(next)!;
    }
    return n;
  }

  private require(path: string): MemNode {
    const n = this.lookup(path);
    if (!n) throw new KernelError(Errno.NOENT, `no such file or directory: ${path || '.'}`);
    return n;
  }

  /** The parent directory node and the final name of `path`. */
  private parentOf(path: string): { dir: MemNode; name: string } {
    const comps = splitPath(path);
    const name = comps.pop();
    if (name === undefined) throw new KernelError(Errno.EXIST, 'the mount root always exists');
    const dir = this.require(comps.join('/'));
    if (dir.kind !== 'dir') throw new KernelError(Errno.NOTDIR);
    return { dir, name };
  }

  private checkWritable(): void {
    if (this.readonly) throw new KernelError(Errno.PERM, 'the mount is read-only');
  }

  private statOf(n: MemNode): Stat {
    const kind: FileKind = n.kind;
    const size = n.kind === 'file' ? n.size : n.kind === 'symlink' ? new TextEncoder().encode(n.target).length : 4096;
    return { dev: this.dev, ino: BigInt(n.ino), kind, nlink: BigInt(n.nlink), size: BigInt(size), atim: n.atim, mtim: n.mtim, ctim: n.ctim };
  }

  lstat(path: string): Stat | null {
    const n = this.lookup(path);
    return n ? this.statOf(n) : null;
  }

  readlink(path: string): string {
    const n = this.require(path);
    if (n.kind !== 'symlink') throw new KernelError(Errno.INVAL, 'not a symbolic link');
    return n.target;
  }

  readdir(path: string): DirEntry[] {
    const n = this.require(path);
    if (n.kind !== 'dir') throw new KernelError(Errno.NOTDIR);
    const out: DirEntry[] = [];
    for (const [name, ino] of n.entries) out.push({ name, kind: this.nodes.get(ino)!.kind, ino: BigInt(ino) });
    return out;
  }

  /** Inode number of a path's parent directory (for readdir's '..'). */
  parentIno(path: string): bigint {
    const n = this.require(path);
    return BigInt(n.parent);
  }

  open(path: string, flags: OpenFlags): { handle: FileHandle; ino?: number } {
    if (this.readonly && (flags.write || flags.create || flags.trunc)) this.checkWritable();
    let n = this.lookup(path);
    if (!n) {
      if (!flags.create) throw new KernelError(Errno.NOENT, `no such file: ${path}`);
      const { dir, name } = this.parentOf(path);
      n = this.newNode('file', dir.ino);
      dir.entries.set(name, n.ino);
      dir.mtim = dir.ctim = n.ctim;
    } else {
      if (flags.create && flags.excl) throw new KernelError(Errno.EXIST);
      if (n.kind === 'dir') throw new KernelError(Errno.ISDIR);
      if (n.kind !== 'file') throw new KernelError(Errno.LOOP, 'cannot open a symlink itself');
      if (flags.trunc && n.size > 0) {
        n.size = 0;
        n.data = EMPTY;
        n.mtim = n.ctim = this.now();
      }
    }
    this.retain(n.ino);
    return { handle: this.handle(n.ino), ino: n.ino };
  }

  reopen(ref: FileRef): FileHandle {
    if (ref.ino === undefined || !this.nodes.has(ref.ino)) throw new KernelError(Errno.BADF, `in-memory file ${ref.path} is gone`);
    return this.handle(ref.ino);
  }

  private handle(ino: number): FileHandle {
    const fs = this;
    const node = (): MemNode => {
      const n = fs.nodes.get(ino);
      if (!n) throw new KernelError(Errno.BADF);
      return n;
    };
    return {
      read(buf, pos) {
        const n = node();
        if (pos >= n.size) return 0;
        const len = Math.min(buf.length, n.size - pos);
        buf.set(n.data.subarray(pos, pos + len));
        return len;
      },
      write(buf, pos) {
        if (fs.readonly) fs.checkWritable();
        const n = node();
        fs.ensure(n, pos + buf.length);
        n.data.set(buf, pos);
        if (pos + buf.length > n.size) n.size = pos + buf.length;
        n.mtim = n.ctim = fs.now();
        return buf.length;
      },
      stat: () => fs.statOf(node()),
      truncate(size) {
        if (fs.readonly) fs.checkWritable();
        const n = node();
        if (size > n.size) fs.ensure(n, size);
        else n.data.fill(0, size, n.size);
        n.size = size;
        n.mtim = n.ctim = fs.now();
      },
      sync() {},
      close() {},
    };
  }

  /** Grow a file's buffer to hold `size` bytes (bytes beyond the old size are zero). */
  private ensure(n: MemNode, size: number): void {
    if (size > 2 ** 32) throw new KernelError(Errno.FBIG, 'in-memory files are limited to 4 GiB');
    if (size <= n.data.length) {
      if (size > n.size) n.data.fill(0, n.size, size);
      return;
    }
    const next = new Uint8Array(Math.max(size, Math.min(n.data.length * 2, n.data.length + (64 << 20)), 256));
    next.set(n.data.subarray(0, n.size));
    n.data = next;
  }

  mkdir(path: string): void {
    this.checkWritable();
    const { dir, name } = this.parentOf(path);
    if (dir.entries.has(name)) throw new KernelError(Errno.EXIST);
    const n = this.newNode('dir', dir.ino);
    dir.entries.set(name, n.ino);
    dir.nlink++;
    dir.mtim = dir.ctim = n.ctim;
  }

  rmdir(path: string): void {
    this.checkWritable();
    const { dir, name } = this.parentOf(path);
    const ino = dir.entries.get(name);
    if (ino === undefined) throw new KernelError(Errno.NOENT);
    const n = this.nodes.get(ino)!;
    if (n.kind !== 'dir') throw new KernelError(Errno.NOTDIR);
    if (n.entries.size > 0) throw new KernelError(Errno.NOTEMPTY);
    dir.entries.delete(name);
    dir.nlink--;
    dir.mtim = dir.ctim = this.now();
    n.nlink = 0;
    this.collect(ino);
  }

  unlink(path: string): void {
    this.checkWritable();
    const { dir, name } = this.parentOf(path);
    const ino = dir.entries.get(name);
    if (ino === undefined) throw new KernelError(Errno.NOENT);
    const n = this.nodes.get(ino)!;
    if (n.kind === 'dir') throw new KernelError(Errno.ISDIR);
    dir.entries.delete(name);
    dir.mtim = dir.ctim = this.now();
    n.nlink--;
    n.ctim = dir.ctim;
    this.collect(ino);
  }

  rename(from: string, to: string): void {
    this.checkWritable();
    const src = this.parentOf(from);
    const ino = src.dir.entries.get(src.name);
    if (ino === undefined) throw new KernelError(Errno.NOENT);
    const n = this.nodes.get(ino)!;
    const dst = this.parentOf(to);
    if (n.kind === 'dir' && (to === from || to.startsWith(from + '/'))) {
      if (to === from) return;
      throw new KernelError(Errno.INVAL, 'cannot move a directory into itself');
    }
    const existing = dst.dir.entries.get(dst.name);
    if (existing === ino) return;
    if (existing !== undefined) {
      const e = this.nodes.get(existing)!;
      if (n.kind === 'dir' && e.kind !== 'dir') throw new KernelError(Errno.NOTDIR);
      if (n.kind !== 'dir' && e.kind === 'dir') throw new KernelError(Errno.ISDIR);
      if (e.kind === 'dir' && e.entries.size > 0) throw new KernelError(Errno.NOTEMPTY);
      dst.dir.entries.delete(dst.name);
      if (e.kind === 'dir') { dst.dir.nlink--; e.nlink = 0; } else e.nlink--;
      this.collect(existing);
    }
    src.dir.entries.delete(src.name);
    dst.dir.entries.set(dst.name, ino);
    if (n.kind === 'dir') {
      src.dir.nlink--;
      dst.dir.nlink++;
      n.parent = dst.dir.ino;
    }
    const t = this.now();
    src.dir.mtim = src.dir.ctim = dst.dir.mtim = dst.dir.ctim = n.ctim = t;
  }

  symlink(target: string, path: string): void {
    this.checkWritable();
    const { dir, name } = this.parentOf(path);
    if (dir.entries.has(name)) throw new KernelError(Errno.EXIST);
    const n = this.newNode('symlink', dir.ino);
    n.target = target;
    dir.entries.set(name, n.ino);
    dir.mtim = dir.ctim = n.ctim;
  }

  link(from: string, to: string): void {
    this.checkWritable();
    const n = this.require(from);
    if (n.kind === 'dir') throw new KernelError(Errno.PERM, 'cannot hard-link a directory');
    const { dir, name } = this.parentOf(to);
    if (dir.entries.has(name)) throw new KernelError(Errno.EXIST);
    dir.entries.set(name, n.ino);
    n.nlink++;
    n.ctim = dir.mtim = dir.ctim = this.now();
  }

  setTimes(path: string, atim: bigint | null, mtim: bigint | null): void {
    this.checkWritable();
    const n = this.require(path);
    if (atim !== null) n.atim = atim;
    if (mtim !== null) n.mtim = mtim;
    n.ctim = this.now();
  }
}
