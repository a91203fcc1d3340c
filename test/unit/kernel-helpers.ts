/** Helpers for the kernel unit tests: drive WASI syscalls directly against a real WebAssembly.Memory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Process, type HostPlatform, type MountSpec, type ProcessState } from '../../kernel/index.js';
import { createNodePlatform } from '../../runtime-node/platform.js';

export const enc = new TextEncoder();
export const dec = new TextDecoder();

export const RIGHTS_RW = (1n << 1n) | (1n << 6n) | (1n << 2n) | (1n << 5n); // read, write, seek, tell
export const RIGHTS_RO = (1n << 1n) | (1n << 2n) | (1n << 5n);
export const RIGHTS_WO = (1n << 6n) | (1n << 2n) | (1n << 5n);
export const OFLAGS = { CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 } as const;

type Fn = (...a: any[]) => any;

export interface GuestOptions {
  args?: string[];
  env?: string[];
  mounts?: MountSpec[];
  platform?: HostPlatform;
  stdin?: (max: number) => Uint8Array | null;
  state?: ProcessState;
  maxFds?: number;
  borrowOutput?: boolean;
}

/** A process plus a memory and a bump allocator, standing in for a guest. */
export class Guest {
  readonly mem = new WebAssembly.Memory({ initial: 1 });
  readonly proc: Process;
  readonly wasi: Record<string, Fn>;
  readonly out: Uint8Array[] = [];
  readonly err: Uint8Array[] = [];
  private heap = 1024;

  constructor(o: GuestOptions = {}) {
    this.proc = new Process(
      {
        args: o.args ?? ['prog'],
        env: o.env ?? [],
        mounts: o.mounts ?? [{ guest: '/work', kind: 'memory' }],
        platform: o.platform ?? createNodePlatform(),
        stdout: (b) => this.out.push(b),
        stderr: (b) => this.err.push(b),
        ...(o.stdin ? { stdin: o.stdin } : {}),
        ...(o.maxFds ? { maxFds: o.maxFds } : {}),
        ...(o.borrowOutput ? { borrowOutput: true } : {}),
      },
      o.state,
    );
    const imports = this.proc.imports({ yield: () => {}, tick: () => {}, memory_limit: () => {} });
    this.wasi = imports.wasi_snapshot_preview1 as Record<string, Fn>;
    this.proc.setMemory(this.mem);
  }

  get u8(): Uint8Array {
    return new Uint8Array(this.mem.buffer);
  }
  get dv(): DataView {
    return new DataView(this.mem.buffer);
  }

  alloc(n: number): number {
    const p = (this.heap + 7) & ~7;
    this.heap = p + n;
    if (this.heap > this.mem.buffer.byteLength) throw new Error('test heap exhausted');
    return p;
  }

  bytes(data: Uint8Array | string): [number, number] {
    const b = typeof data === 'string' ? enc.encode(data) : data;
    const p = this.alloc(b.length);
    this.u8.set(b, p);
    return [p, b.length];
  }

  u32(p: number): number {
    return this.dv.getUint32(p, true);
  }
  u16(p: number): number {
    return this.dv.getUint16(p, true);
  }
  u64(p: number): bigint {
    return this.dv.getBigUint64(p, true);
  }
  read(p: number, n: number): Uint8Array {
    return this.u8.slice(p, p + n);
  }

  /** Write an iovec array for the given buffers; returns [iovs, count]. */
  iovs(...bufs: Array<Uint8Array | string>): [number, number] {
    const iov = this.alloc(bufs.length * 8);
    bufs.forEach((b, i) => {
      const [p, l] = this.bytes(b);
      this.dv.setUint32(iov + i * 8, p, true);
      this.dv.setUint32(iov + i * 8 + 4, l, true);
    });
    return [iov, bufs.length];
  }

  call(name: string, ...args: unknown[]): number {
    const f = this.wasi[name];
    if (!f) throw new Error(`no import ${name}`);
    return f(...args);
  }

  /** path_open; returns [errno, fd]. */
  open(dirfd: number, path: string, oflags = 0, rights = RIGHTS_RW, fdflags = 0, lookup = 1): [number, number] {
    const [p, l] = this.bytes(path);
    const out = this.alloc(4);
    const e = this.call('path_open', dirfd, lookup, p, l, oflags, rights, rights, fdflags, out);
    return [e, e === 0 ? this.u32(out) : -1];
  }

  /** path_open that must succeed. */
  openOk(dirfd: number, path: string, oflags = 0, rights = RIGHTS_RW, fdflags = 0): number {
    const [e, fd] = this.open(dirfd, path, oflags, rights, fdflags);
    if (e !== 0) throw new Error(`path_open ${path} failed with errno ${e}`);
    return fd;
  }

  /** fd_write; returns [errno, nwritten]. */
  write(fd: number, ...data: Array<Uint8Array | string>): [number, number] {
    const [iov, n] = this.iovs(...data);
    const out = this.alloc(4);
    const e = this.call('fd_write', fd, iov, n, out);
    return [e, this.u32(out)];
  }

  /** fd_read of up to n bytes; returns [errno, bytes]. */
  readFd(fd: number, n: number): [number, Uint8Array] {
    const buf = this.alloc(n);
    const iov = this.alloc(8);
    this.dv.setUint32(iov, buf, true);
    this.dv.setUint32(iov + 4, n, true);
    const out = this.alloc(4);
    this.dv.setUint32(out, 0, true);
    const e = this.call('fd_read', fd, iov, 1, out);
    return [e, this.read(buf, this.u32(out))];
  }

  /** Call a path_* function whose first args are (fd, path, len). */
  pathCall(name: string, fd: number, path: string): number {
    const [p, l] = this.bytes(path);
    return this.call(name, fd, p, l);
  }

  seek(fd: number, offset: bigint, whence: number): [number, bigint] {
    const out = this.alloc(8);
    const e = this.call('fd_seek', fd, offset, whence, out);
    return [e, this.u64(out)];
  }

  filestat(fd: number): { errno: number; filetype: number; size: bigint; ino: bigint; nlink: bigint; atim: bigint; mtim: bigint } {
    const buf = this.alloc(64);
    const errno = this.call('fd_filestat_get', fd, buf);
    return { errno, filetype: this.u8[buf + 16]!, size: this.u64(buf + 32), ino: this.u64(buf + 8), nlink: this.u64(buf + 24), atim: this.u64(buf + 40), mtim: this.u64(buf + 48) };
  }

  stdoutText(): string {
    return this.out.map((b) => dec.decode(b)).join('');
  }
}

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gridvm-kernel-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
