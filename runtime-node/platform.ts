/** The Node host platform for the kernel and VM: clocks, random, sleep, and host directories (node:fs, sync). */
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import { Errno, KernelError } from '../kernel/index.js';
import type { HostFs, HostPlatform, HostStat } from '../kernel/index.js';
import { useSha256 } from '../vm/compiled.js';

// module hashes through node:crypto (see useSha256): every Node entry point loads this file
useSha256((bytes) => createHash('sha256').update(bytes).digest('hex'));

/** THE table from Node error codes to WASI errno (one table for this runtime). Unknown codes map to IO. */
export const NODE_ERRNO: Readonly<Record<string, Errno>> = Object.freeze({
  E2BIG: Errno.TOOBIG, EACCES: Errno.ACCES, EADDRINUSE: Errno.ADDRINUSE, EADDRNOTAVAIL: Errno.ADDRNOTAVAIL,
  EAFNOSUPPORT: Errno.AFNOSUPPORT, EAGAIN: Errno.AGAIN, EWOULDBLOCK: Errno.AGAIN, EALREADY: Errno.ALREADY,
  EBADF: Errno.BADF, EBUSY: Errno.BUSY, ECANCELED: Errno.CANCELED, ECONNABORTED: Errno.CONNABORTED,
  ECONNREFUSED: Errno.CONNREFUSED, ECONNRESET: Errno.CONNRESET, EDEADLK: Errno.DEADLK, EDQUOT: Errno.DQUOT,
  EEXIST: Errno.EXIST, EFAULT: Errno.FAULT, EFBIG: Errno.FBIG, EHOSTUNREACH: Errno.HOSTUNREACH, EINTR: Errno.INTR,
  EINVAL: Errno.INVAL, EIO: Errno.IO, EISCONN: Errno.ISCONN, EISDIR: Errno.ISDIR, ELOOP: Errno.LOOP,
  EMFILE: Errno.MFILE, EMLINK: Errno.MLINK, EMSGSIZE: Errno.MSGSIZE, ENAMETOOLONG: Errno.NAMETOOLONG,
  ENETDOWN: Errno.NETDOWN, ENETUNREACH: Errno.NETUNREACH, ENFILE: Errno.NFILE, ENOBUFS: Errno.NOBUFS,
  ENODEV: Errno.NODEV, ENOENT: Errno.NOENT, ENOEXEC: Errno.NOEXEC, ENOMEM: Errno.NOMEM, ENOSPC: Errno.NOSPC,
  ENOSYS: Errno.NOSYS, ENOTCONN: Errno.NOTCONN, ENOTDIR: Errno.NOTDIR, ENOTEMPTY: Errno.NOTEMPTY,
  ENOTSOCK: Errno.NOTSOCK, ENOTSUP: Errno.NOTSUP, EOPNOTSUPP: Errno.NOTSUP, ENOTTY: Errno.NOTTY, ENXIO: Errno.NXIO,
  EOVERFLOW: Errno.OVERFLOW, EPERM: Errno.PERM, EPIPE: Errno.PIPE, ERANGE: Errno.RANGE, EROFS: Errno.ROFS,
  ESPIPE: Errno.SPIPE, ESRCH: Errno.SRCH, ETIMEDOUT: Errno.TIMEDOUT, ETXTBSY: Errno.TXTBSY, EXDEV: Errno.XDEV,
});

/** Map a thrown Node error to a KernelError through NODE_ERRNO (KernelErrors pass through). */
export function toKernelError(e: unknown, what: string): KernelError {
  if (e instanceof KernelError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const errno = typeof code === 'string' ? NODE_ERRNO[code] ?? Errno.IO : Errno.IO;
  return new KernelError(errno, `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

function host<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toKernelError(e, what);
  }
}

function kindOf(s: fs.BigIntStats | fs.Dirent): HostStat['kind'] {
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isDirectory()) return 'dir';
  if (s.isFile()) return 'file';
  return 'other';
}

function toHostStat(s: fs.BigIntStats): HostStat {
  return { dev: s.dev, ino: s.ino, kind: kindOf(s), nlink: s.nlink, size: s.size, atimeNs: s.atimeNs, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
}

const C = fs.constants;

/**
 * HostFs over node:fs synchronous calls. The kernel resolves symlinks itself, so open() adds O_NOFOLLOW: a final
 * component swapped for a symlink after the check cannot lead outside the mount. O_APPEND is never passed (the
 * kernel writes at explicit positions and implements append itself).
 */
export class NodeHostFs implements HostFs {
  stat(path: string, followSymlinks: boolean): HostStat {
    return host(`stat ${path}`, () => toHostStat(followSymlinks ? fs.statSync(path, { bigint: true }) : fs.lstatSync(path, { bigint: true })));
  }

  open(path: string, f: { read: boolean; write: boolean; create: boolean; excl: boolean; trunc: boolean; append: boolean; directory: boolean }): number {
    let flags = f.write ? (f.read ? C.O_RDWR : C.O_WRONLY) : C.O_RDONLY;
    if (f.create) flags |= C.O_CREAT;
    if (f.excl) flags |= C.O_EXCL;
    if (f.trunc) flags |= C.O_TRUNC;
    if (f.directory) flags |= C.O_DIRECTORY;
    flags |= C.O_NOFOLLOW ?? 0;
    return host(`open ${path}`, () => fs.openSync(path, flags, 0o666));
  }

  close(handle: number): void {
    host('close', () => fs.closeSync(handle));
  }

  read(handle: number, buf: Uint8Array, position: bigint): number {
    return host('read', () => fs.readSync(handle, buf, 0, buf.length, position));
  }

  write(handle: number, buf: Uint8Array, position: bigint): number {
    return host('write', () => fs.writeSync(handle, buf, 0, buf.length, Number(position)));
  }

  fstat(handle: number): HostStat {
    return host('fstat', () => toHostStat(fs.fstatSync(handle, { bigint: true })));
  }

  ftruncate(handle: number, size: bigint): void {
    host('ftruncate', () => fs.ftruncateSync(handle, Number(size)));
  }

  fsync(handle: number): void {
    host('fsync', () => fs.fsyncSync(handle));
  }

  readdir(path: string): Array<{ name: string; kind: HostStat['kind']; ino: bigint }> {
    return host(`readdir ${path}`, () =>
      fs.readdirSync(path, { withFileTypes: true }).map((d) => {
        let ino = 0n;
        try {
          ino = fs.lstatSync(`${path}/${d.name}`, { bigint: true }).ino;
        } catch {
          // raced with a removal: report ino 0
        }
        return { name: d.name, kind: kindOf(d), ino };
      }),
    );
  }

  mkdir(path: string): void {
    host(`mkdir ${path}`, () => fs.mkdirSync(path));
  }

  rmdir(path: string): void {
    host(`rmdir ${path}`, () => fs.rmdirSync(path));
  }

  unlink(path: string): void {
    host(`unlink ${path}`, () => fs.unlinkSync(path));
  }

  rename(from: string, to: string): void {
    host(`rename ${from}`, () => fs.renameSync(from, to));
  }

  readlink(path: string): string {
    return host(`readlink ${path}`, () => fs.readlinkSync(path, 'utf8'));
  }

  symlink(target: string, path: string): void {
    host(`symlink ${path}`, () => fs.symlinkSync(target, path));
  }

  link(existing: string, newPath: string): void {
    host(`link ${newPath}`, () => fs.linkSync(existing, newPath));
  }

  utimes(path: string, atimeNs: bigint, mtimeNs: bigint): void {
    // node takes seconds as a number: sub-microsecond precision is lost
    host(`utimes ${path}`, () => fs.lutimesSync(path, Number(atimeNs) / 1e9, Number(mtimeNs) / 1e9));
  }

  realpath(path: string): string {
    return host(`realpath ${path}`, () => fs.realpathSync(path));
  }
}

/**
 * What every platform of this thread can share: NodeHostFs has no state, and sleepMs waits on a cell nobody
 * notifies (Atomics.wait with a timeout is the sleep). A SharedArrayBuffer costs ~1 µs to create, a visible part of
 * a tiny job's start, so the cell is made once, when a job first sleeps.
 */
const sharedHostFs = new NodeHostFs();
let sleepCell: Int32Array | undefined;
function sleepMs(ms: number): void {
  if (ms > 0) Atomics.wait((sleepCell ??= new Int32Array(new SharedArrayBuffer(4))), 0, 0, ms);
}
const monotonicNs = (): bigint => process.hrtime.bigint();
const randomFill = (buf: Uint8Array): void => {
  randomFillSync(buf);
};

/** The Node HostPlatform. `hostFs: false` leaves it out (a job that may not touch host directories). */
export function createNodePlatform(opts: { hostFs?: boolean } = {}): HostPlatform {
  // the wall clock as of this platform's creation, advanced by the monotonic clock (one origin per job)
  const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  const platform: HostPlatform = {
    realtimeNs: () => origin + process.hrtime.bigint(),
    monotonicNs,
    randomFill,
    sleepMs,
  };
  if (opts.hostFs !== false) platform.hostFs = sharedHostFs;
  return platform;
}

/** Alias used by runtime-node/run.ts. */
export const nodePlatform = createNodePlatform;
