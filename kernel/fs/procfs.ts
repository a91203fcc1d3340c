import { Errno, KernelError } from '../errors.js';
import type { ProcStatus } from '../process/grid.js';
import type { DirEntry, FileHandle, FileRef, FsBackend, OpenFlags, Stat } from './types.js';

/** Where /proc gets its facts: this process's GPID and the host's status of any GPID. */
export interface ProcSource {
  self(): bigint;
  status(gpid: bigint): ProcStatus | undefined;
}

const encoder = new TextEncoder();
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/;

/** Linux-like `Key:\tvalue` lines. */
export function formatProcStatus(s: ProcStatus): string {
  const line = (k: string, v: string | number | bigint): string => `${k}:\t${String(v).replace(/\n/g, ' ')}\n`;
  return line('Name', s.name) + line('Gpid', s.gpid) + line('State', s.state) + line('Node', s.node) +
    line('CpuTimeMs', Math.round(s.cpuTimeMs)) + line('FuelUsed', s.fuelUsed) + line('MemoryPeakBytes', s.memoryPeakBytes) +
    line('Checkpoints', s.checkpoints) + line('Migrations', s.migrations);
}

function refused(): never {
  throw new KernelError(Errno.PERM, '/proc is read-only');
}

/**
 * The /proc mount: `self/status` and `<gpid>/status`, text generated from the host's procInfo when read. Nothing is
 * stored: an open fd is its path and offset (plain data in ProcessState), so after a restore it reads from the new
 * host. `self` is a directory (not a symlink) naming this process.
 */
export class ProcFs implements FsBackend {
  readonly readonly = true;

  constructor(private readonly src: ProcSource, private readonly dev: bigint) {}

  /** The GPID a process directory name stands for, if that process is known. */
  private gpidOf(dir: string): bigint | undefined {
    let g: bigint;
    if (dir === 'self') g = this.src.self();
    else if (DECIMAL.test(dir)) g = BigInt(dir);
    else return undefined;
    return this.src.status(g) ? g : undefined;
  }

  private text(path: string): Uint8Array | undefined {
    const [dir, file, more] = path.split('/');
    if (file !== 'status' || more !== undefined) return undefined;
    const g = this.gpidOf(dir!);
    const s = g === undefined ? undefined : this.src.status(g);
    return s ? encoder.encode(formatProcStatus(s)) : undefined;
  }

  private stat(kind: 'file' | 'dir', ino: bigint, size: number): Stat {
    return { dev: this.dev, ino, kind, nlink: kind === 'dir' ? 2n : 1n, size: BigInt(size), atim: 0n, mtim: 0n, ctim: 0n };
  }

  private inoOf(dir: string): bigint {
    return dir === 'self' ? 2n : 16n + 2n * BigInt(dir);
  }

  lstat(path: string): Stat | null {
    if (path === '') return this.stat('dir', 1n, 0);
    const parts = path.split('/');
    if (this.gpidOf(parts[0]!) === undefined) return null;
    if (parts.length === 1) return this.stat('dir', this.inoOf(parts[0]!), 0);
    const t = this.text(path);
    return t ? this.stat('file', this.inoOf(parts[0]!) + 1n, t.length) : null;
  }

  readlink(path: string): string {
    throw new KernelError(this.lstat(path) ? Errno.INVAL : Errno.NOENT, `${path} is not a symbolic link`);
  }

  readdir(path: string): DirEntry[] {
    if (path === '') {
      const self = this.src.self();
      const out: DirEntry[] = [{ name: 'self', kind: 'dir', ino: 2n }];
      if (this.src.status(self)) out.push({ name: String(self), kind: 'dir', ino: this.inoOf(String(self)) });
      return out;
    }
    const st = this.lstat(path);
    if (!st) throw new KernelError(Errno.NOENT, `no such directory: /proc/${path}`);
    if (st.kind !== 'dir') throw new KernelError(Errno.NOTDIR, `/proc/${path} is not a directory`);
    return [{ name: 'status', kind: 'file', ino: st.ino + 1n }];
  }

  open(path: string, flags: OpenFlags): { handle: FileHandle } {
    if (flags.write || flags.create || flags.trunc) refused();
    return { handle: this.handle(path) };
  }

  reopen(ref: FileRef): FileHandle {
    if (ref.write) refused();
    return this.handle(ref.path);
  }

  /**
   * A status file's handle. The text is generated at the first read and again at every read from offset 0 (a
   * rewind), so a read in several chunks sees one consistent text.
   */
  private handle(path: string): FileHandle {
    let text: Uint8Array | undefined;
    const current = (fresh: boolean): Uint8Array => {
      if (fresh || !text) {
        const t = this.text(path);
        if (!t) throw new KernelError(Errno.SRCH, `/proc/${path}: the process is not known here any more`);
        text = t;
      }
      return text;
    };
    return {
      read: (buf, pos) => {
        const t = current(pos === 0);
        if (pos >= t.length) return 0;
        const n = Math.min(buf.length, t.length - pos);
        buf.set(t.subarray(pos, pos + n));
        return n;
      },
      write: () => refused(),
      stat: () => this.stat('file', this.inoOf(path.split('/')[0]!) + 1n, current(false).length),
      truncate: () => refused(),
      sync: () => {},
      close: () => {},
    };
  }

  mkdir(): void {
    refused();
  }
  rmdir(): void {
    refused();
  }
  unlink(): void {
    refused();
  }
  rename(): void {
    refused();
  }
  symlink(): void {
    refused();
  }
  link(): void {
    refused();
  }
  setTimes(): void {
    refused();
  }
}
