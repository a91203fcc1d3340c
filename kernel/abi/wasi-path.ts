/** ABI: path_* calls. Decodes pointers and strings and calls the kernel operations in process/path-ops.ts. */
import * as ops from '../process/path-ops.js';
import type { Process } from '../process/process.js';
import type { HostFn } from './link.js';
import { encodeUtf8 } from './memory.js';
import { writeFilestat } from './wasi-fd.js';

export function pathImpls(p: Process): Record<string, HostFn> {
  const m = p.memory;
  const str = (ptr: number, len: number): string => m.string(ptr, len);
  return {
    path_create_directory: (fd: number, path: number, len: number) => ops.pathCreateDirectory(p, fd, str(path, len)),
    path_filestat_get: (fd: number, flags: number, path: number, len: number, buf: number) => {
      m.check(buf, 64);
      writeFilestat(m, buf, ops.pathFilestatGet(p, fd, flags, str(path, len)));
    },
    path_filestat_set_times: (fd: number, flags: number, path: number, len: number, atim: bigint, mtim: bigint, fst: number) =>
      ops.pathFilestatSetTimes(p, fd, flags, str(path, len), atim, mtim, fst),
    path_link: (oldfd: number, oldflags: number, oldp: number, oldlen: number, newfd: number, newp: number, newlen: number) =>
      ops.pathLink(p, oldfd, oldflags, str(oldp, oldlen), newfd, str(newp, newlen)),
    path_open: (
      fd: number, dirflags: number, path: number, len: number, oflags: number, base: bigint, inh: bigint, fdflags: number, out: number,
    ) => {
      m.check(out, 4);
      m.setU32(out, ops.pathOpen(p, fd, dirflags, str(path, len), oflags, base, inh, fdflags));
    },
    path_readlink: (fd: number, path: number, len: number, buf: number, bufLen: number, out: number) => {
      m.check(out, 4);
      m.check(buf, bufLen);
      const target = encodeUtf8(ops.pathReadlink(p, fd, str(path, len)));
      const n = Math.min(target.length, bufLen >>> 0);
      m.write(buf, target.subarray(0, n));
      m.setU32(out, n);
    },
    path_remove_directory: (fd: number, path: number, len: number) => ops.pathRemoveDirectory(p, fd, str(path, len)),
    path_rename: (fd: number, oldp: number, oldlen: number, newfd: number, newp: number, newlen: number) =>
      ops.pathRename(p, fd, str(oldp, oldlen), newfd, str(newp, newlen)),
    path_symlink: (oldp: number, oldlen: number, fd: number, newp: number, newlen: number) =>
      ops.pathSymlink(p, str(oldp, oldlen), fd, str(newp, newlen)),
    path_unlink_file: (fd: number, path: number, len: number) => ops.pathUnlinkFile(p, fd, str(path, len)),
  };
}
