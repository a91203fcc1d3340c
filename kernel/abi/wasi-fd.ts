/** ABI: fd_* calls. Decodes pointers and calls the kernel operations in process/fd-ops.ts. */
import { Errno, KernelError } from '../errors.js';
import * as ops from '../process/fd-ops.js';
import type { Process } from '../process/process.js';
import type { GuestMemory } from './memory.js';
import { encodeUtf8 } from './memory.js';
import type { HostFn } from './link.js';
import { SIZE } from './constants.js';

/** Write a 64-byte filestat. */
export function writeFilestat(m: GuestMemory, ptr: number, s: ops.Filestat): void {
  m.check(ptr, SIZE.FILESTAT);
  m.out(ptr, SIZE.FILESTAT).fill(0);
  m.setU64(ptr, s.dev);
  m.setU64(ptr + 8, s.ino);
  m.setU8(ptr + 16, s.filetype);
  m.setU64(ptr + 24, s.nlink);
  m.setU64(ptr + 32, s.size);
  m.setU64(ptr + 40, s.atim);
  m.setU64(ptr + 48, s.mtim);
  m.setU64(ptr + 56, s.ctim);
}

export function fdImpls(p: Process): Record<string, HostFn> {
  const m = p.memory;
  return {
    fd_advise: (fd: number, offset: bigint, len: bigint, advice: number) => ops.fdAdvise(p, fd, offset, len, advice),
    fd_allocate: (fd: number, offset: bigint, len: bigint) => ops.fdAllocate(p, fd, offset, len),
    fd_close: (fd: number) => ops.fdClose(p, fd),
    fd_datasync: (fd: number) => ops.fdSync(p, fd),
    fd_sync: (fd: number) => ops.fdSync(p, fd),
    fd_fdstat_get: (fd: number, ptr: number) => {
      const s = ops.fdFdstat(p, fd);
      m.check(ptr, SIZE.FDSTAT);
      m.out(ptr, SIZE.FDSTAT).fill(0);
      m.setU8(ptr, s.filetype);
      m.setU16(ptr + 2, s.flags);
      m.setU64(ptr + 8, s.rightsBase);
      m.setU64(ptr + 16, s.rightsInheriting);
    },
    fd_fdstat_set_flags: (fd: number, flags: number) => ops.fdFdstatSetFlags(p, fd, flags),
    fd_fdstat_set_rights: (fd: number, base: bigint, inh: bigint) => ops.fdFdstatSetRights(p, fd, base, inh),
    fd_filestat_get: (fd: number, ptr: number) => {
      m.check(ptr, SIZE.FILESTAT);
      writeFilestat(m, ptr, ops.fdFilestat(p, fd));
    },
    fd_filestat_set_size: (fd: number, size: bigint) => ops.fdFilestatSetSize(p, fd, size),
    fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint, fst: number) => ops.fdFilestatSetTimes(p, fd, atim, mtim, fst),
    fd_pread: (fd: number, iovs: number, n: number, offset: bigint, out: number) => {
      m.check(out, 4);
      m.setU32(out, ops.fdPread(p, fd, m.iovecsOut(iovs, n), offset));
    },
    fd_pwrite: (fd: number, iovs: number, n: number, offset: bigint, out: number) => {
      m.check(out, 4);
      m.setU32(out, ops.fdPwrite(p, fd, m.iovecs(iovs, n), offset));
    },
    fd_read: (fd: number, iovs: number, n: number, out: number) => {
      m.check(out, 4);
      m.setU32(out, ops.fdRead(p, fd, m.iovecsOut(iovs, n)));
    },
    fd_write: (fd: number, iovs: number, n: number, out: number) => {
      m.check(out, 4);
      m.setU32(out, ops.fdWrite(p, fd, m.iovecs(iovs, n)));
    },
    fd_prestat_get: (fd: number, ptr: number) => {
      const name = ops.fdPrestat(p, fd);
      m.check(ptr, SIZE.PRESTAT);
      m.setU32(ptr, 0); // tag 0 = dir, padding
      m.setU32(ptr + 4, encodeUtf8(name).length);
    },
    fd_prestat_dir_name: (fd: number, ptr: number, len: number) => {
      const name = encodeUtf8(ops.fdPrestat(p, fd));
      if ((len >>> 0) < name.length) throw new KernelError(Errno.NAMETOOLONG, 'buffer too small for the preopen name');
      m.write(ptr, name);
    },
    fd_readdir: (fd: number, buf: number, bufLen: number, cookie: bigint, out: number) => {
      m.check(out, 4);
      const len = bufLen >>> 0;
      m.check(buf, len);
      const entries = ops.fdReaddir(p, fd);
      const start = BigInt.asUintN(64, cookie);
      const header = new Uint8Array(SIZE.DIRENT);
      const hv = new DataView(header.buffer);
      const dst = m.out(buf, len);
      let used = 0;
      for (let i = start; i < BigInt(entries.length) && used < len; i++) {
        const d = entries[Number(i)]!;
        const name = encodeUtf8(d.name);
        hv.setBigUint64(0, d.next, true);
        hv.setBigUint64(8, d.ino, true);
        hv.setUint32(16, name.length, true);
        hv.setUint32(20, 0, true);
        header[20] = d.filetype;
        const h = Math.min(SIZE.DIRENT, len - used);
        dst.set(header.subarray(0, h), used);
        used += h;
        const n = Math.min(name.length, len - used);
        dst.set(name.subarray(0, n), used);
        used += n;
      }
      const e = p.fd(fd);
      e.readdirCookie = start;
      m.setU32(out, used);
    },
    fd_renumber: (from: number, to: number) => ops.fdRenumber(p, from, to),
    fd_seek: (fd: number, offset: bigint, whence: number, out: number) => {
      m.check(out, 8);
      m.setU64(out, ops.fdSeek(p, fd, offset, whence));
    },
    fd_tell: (fd: number, out: number) => {
      m.check(out, 8);
      m.setU64(out, ops.fdTell(p, fd));
    },
  };
}
