/**
 * THE syscall table, defined once as data: every wasi_snapshot_preview1 function and the gridvm calls. Both
 * runtimes link from it (link.ts); ids are stable and never reused.
 */

export type WasmType = 'i32' | 'i64' | 'f32' | 'f64';
export type Namespace = 'wasi_snapshot_preview1' | 'gridvm';
/** Capability a job needs for a call (capabilities are off unless granted). */
export type Capability = 'env' | 'clock' | 'random' | 'fs' | 'poll' | 'proc' | 'sock' | 'grid' | 'internal';

export interface SyscallEntry {
  ns: Namespace;
  name: string;
  id: number;
  params: readonly WasmType[];
  results: readonly WasmType[];
  cap: Capability;
  doc: string;
  /** the call may suspend the job (Asyncify unwind) until the host answers: the VM lists it in `asyncify-imports` */
  blocking?: boolean;
}

const P1 = 'wasi_snapshot_preview1' as const;
const i32 = 'i32' as const;
const i64 = 'i64' as const;
const ERRNO = [i32] as const;
/** Errors every call with pointers can return. */
const PTR = 'FAULT if a pointer is outside memory';
const FD = 'BADF if the fd is not open';

function p1(id: number, name: string, params: WasmType[], cap: Capability, doc: string): SyscallEntry {
  return { ns: P1, name, id, params, results: ERRNO, cap, doc };
}

export const SYSCALLS: readonly SyscallEntry[] = Object.freeze([
  p1(1, 'args_get', [i32, i32], 'env', `args_get(argv: *u32, argv_buf: *u8). Returns: argv pointers and NUL-terminated UTF-8 strings. Errors: ${PTR}. Traps: none.`),
  p1(2, 'args_sizes_get', [i32, i32], 'env', `args_sizes_get(argc: *u32, buf_size: *u32). Returns: count and total bytes incl. NULs. Errors: ${PTR}. Traps: none.`),
  p1(3, 'environ_get', [i32, i32], 'env', `environ_get(environ: *u32, buf: *u8). Returns: "K=V" NUL-terminated strings. Errors: ${PTR}. Traps: none.`),
  p1(4, 'environ_sizes_get', [i32, i32], 'env', `environ_sizes_get(count: *u32, buf_size: *u32). Returns: count and total bytes. Errors: ${PTR}. Traps: none.`),
  p1(5, 'clock_res_get', [i32, i32], 'clock', `clock_res_get(id, res: *u64). Returns: resolution in ns. Errors: INVAL unknown clock; ${PTR}. Traps: none.`),
  p1(6, 'clock_time_get', [i32, i64, i32], 'clock', `clock_time_get(id, precision: u64, time: *u64). Returns: ns; monotonic never goes backwards, also across a restore. Errors: INVAL unknown clock; ${PTR}. Traps: none.`),
  p1(7, 'random_get', [i32, i32], 'random', `random_get(buf: *u8, len). Returns: len random bytes from the platform. Errors: ${PTR}. Traps: none.`),
  p1(8, 'fd_advise', [i32, i64, i64, i32], 'fs', `fd_advise(fd, offset, len, advice). Returns: success (advisory, no-op). Errors: ${FD}; INVAL bad advice; SPIPE stdio. Traps: none.`),
  p1(9, 'fd_allocate', [i32, i64, i64], 'fs', `fd_allocate(fd, offset, len). Returns: success; grows the file to offset+len if shorter. Errors: ${FD} or not writable; ISDIR; SPIPE. Traps: none.`),
  p1(10, 'fd_close', [i32], 'fs', `fd_close(fd). Returns: success; the number becomes free (lowest free is reused first). Errors: ${FD}. Traps: none.`),
  p1(11, 'fd_datasync', [i32], 'fs', `fd_datasync(fd). Returns: success. Errors: ${FD}; INVAL on stdio. Traps: none.`),
  p1(12, 'fd_fdstat_get', [i32, i32], 'fs', `fd_fdstat_get(fd, stat: *fdstat(24)). Returns: filetype u8 @0 (stdio: CHARACTER_DEVICE), flags u16 @2, rights_base u64 @8, rights_inheriting u64 @16. Errors: ${FD}; ${PTR}. Traps: none.`),
  p1(13, 'fd_fdstat_set_flags', [i32, i32], 'fs', `fd_fdstat_set_flags(fd, fdflags). Returns: success. Errors: ${FD}; INVAL unknown flag. Traps: none.`),
  p1(14, 'fd_fdstat_set_rights', [i32, i64, i64], 'fs', `fd_fdstat_set_rights(fd, base, inheriting). Returns: success (rights only shrink). Errors: ${FD}; NOTCAPABLE when adding rights. Traps: none.`),
  p1(15, 'fd_filestat_get', [i32, i32], 'fs', `fd_filestat_get(fd, buf: *filestat(64)). Returns: dev @0, ino @8, filetype u8 @16, nlink @24, size @32, atim @40, mtim @48, ctim @56. Errors: ${FD}; ${PTR}. Traps: none.`),
  p1(16, 'fd_filestat_set_size', [i32, i64], 'fs', `fd_filestat_set_size(fd, size). Returns: success (truncates or zero-extends). Errors: ${FD} or not writable; ISDIR; SPIPE; PERM read-only mount. Traps: none.`),
  p1(17, 'fd_filestat_set_times', [i32, i64, i64, i32], 'fs', `fd_filestat_set_times(fd, atim, mtim, fstflags). Returns: success. Errors: ${FD}; INVAL conflicting flags; PERM read-only mount. Traps: none.`),
  p1(18, 'fd_pread', [i32, i32, i32, i64, i32], 'fs', `fd_pread(fd, iovs, iovs_len, offset, nread: *u32). Returns: bytes read at offset; fd offset unchanged. Errors: ${FD} or not readable; ISDIR; SPIPE stdio; ${PTR}. Traps: none.`),
  p1(19, 'fd_prestat_get', [i32, i32], 'fs', `fd_prestat_get(fd, buf: *prestat(8)). Returns: tag u8 0 (dir) @0, name_len u32 @4. Errors: BADF if not a preopen (ends wasi-libc's scan); ${PTR}. Traps: none.`),
  p1(20, 'fd_prestat_dir_name', [i32, i32, i32], 'fs', `fd_prestat_dir_name(fd, path: *u8, len). Returns: the preopen name (no NUL). Errors: BADF not a preopen; NAMETOOLONG buffer too small; ${PTR}. Traps: none.`),
  p1(21, 'fd_pwrite', [i32, i32, i32, i64, i32], 'fs', `fd_pwrite(fd, iovs, iovs_len, offset, nwritten: *u32). Returns: bytes written at offset; fd offset unchanged. Errors: ${FD} or not writable; ISDIR; SPIPE stdio; PERM read-only; ${PTR}. Traps: none.`),
  p1(22, 'fd_read', [i32, i32, i32, i32], 'fs', `fd_read(fd, iovs, iovs_len, nread: *u32). Returns: bytes read (0 = EOF); stdin reads from the host. Errors: ${FD} or not readable; ISDIR on a directory; ${PTR}. Traps: none.`),
  p1(23, 'fd_readdir', [i32, i32, i32, i64, i32], 'fs', `fd_readdir(fd, buf, buf_len, cookie, bufused: *u32). Returns: dirents (d_next u64, d_ino u64, d_namlen u32, d_type u8, 24 bytes, then the name) from cookie; the last one is truncated when buf is full (bufused == buf_len). Errors: ${FD}; NOTDIR; ${PTR}. Traps: none.`),
  p1(24, 'fd_renumber', [i32, i32], 'fs', `fd_renumber(from, to). Returns: success; 'to' is closed and replaced by 'from'. Errors: BADF if either is not open. Traps: none.`),
  p1(25, 'fd_seek', [i32, i64, i32, i32], 'fs', `fd_seek(fd, offset: s64, whence, newoffset: *u64). Returns: new offset. Errors: ${FD} or a directory; SPIPE stdio; INVAL bad whence or negative result; ${PTR}. Traps: none.`),
  p1(26, 'fd_sync', [i32], 'fs', `fd_sync(fd). Returns: success. Errors: ${FD}; INVAL on stdio. Traps: none.`),
  p1(27, 'fd_tell', [i32, i32], 'fs', `fd_tell(fd, offset: *u64). Returns: current offset. Errors: ${FD}; SPIPE stdio; ${PTR}. Traps: none.`),
  p1(28, 'fd_write', [i32, i32, i32, i32], 'fs', `fd_write(fd, iovs, iovs_len, nwritten: *u32). Returns: bytes written; fd 1/2 go to the host's stdout/stderr; APPEND writes at the end. Errors: ${FD} or not writable; PERM read-only; ${PTR}. Traps: none.`),
  p1(29, 'path_create_directory', [i32, i32, i32], 'fs', `path_create_directory(fd, path, len). Returns: success. Errors: EXIST; NOENT parent; NOTDIR; PERM escape or read-only mount; ${PTR}. Traps: none.`),
  p1(30, 'path_filestat_get', [i32, i32, i32, i32, i32], 'fs', `path_filestat_get(fd, lookupflags, path, len, buf: *filestat(64)). Returns: filestat (layout as fd_filestat_get). Errors: NOENT; NOTDIR; PERM escape; LOOP; ${PTR}. Traps: none.`),
  p1(31, 'path_filestat_set_times', [i32, i32, i32, i32, i64, i64, i32], 'fs', `path_filestat_set_times(fd, lookupflags, path, len, atim, mtim, fstflags). Returns: success. Errors: NOENT; INVAL conflicting flags; PERM escape or read-only; ${PTR}. Traps: none.`),
  p1(32, 'path_link', [i32, i32, i32, i32, i32, i32, i32], 'fs', `path_link(old_fd, old_flags, old_path, old_len, new_fd, new_path, new_len). Returns: success (hard link). Errors: NOENT; EXIST; PERM directory, escape or read-only; XDEV across mounts; NOTSUP host without links; ${PTR}. Traps: none.`),
  p1(33, 'path_open', [i32, i32, i32, i32, i32, i64, i64, i32, i32], 'fs', `path_open(dirfd, lookupflags, path, len, oflags, rights_base, rights_inheriting, fdflags, fd: *u32). Returns: the lowest free fd. Errors: BADF; NOTDIR dirfd not a dir or O_DIRECTORY on a file; NOENT; EXIST (CREAT|EXCL); ISDIR write on a dir; LOOP symlink not followed; INVAL CREAT|DIRECTORY; PERM escape ('../', absolute, symlink out) or write on a read-only mount; MFILE; ${PTR}. Traps: none.`),
  p1(34, 'path_readlink', [i32, i32, i32, i32, i32, i32], 'fs', `path_readlink(fd, path, len, buf, buf_len, bufused: *u32). Returns: the target, truncated to buf_len. Errors: NOENT; INVAL not a symlink; PERM escape; ${PTR}. Traps: none.`),
  p1(35, 'path_remove_directory', [i32, i32, i32], 'fs', `path_remove_directory(fd, path, len). Returns: success. Errors: NOENT; NOTDIR; NOTEMPTY; INVAL the dirfd itself; PERM escape or read-only; ${PTR}. Traps: none.`),
  p1(36, 'path_rename', [i32, i32, i32, i32, i32, i32], 'fs', `path_rename(fd, old, old_len, new_fd, new, new_len). Returns: success (replaces a file or an empty dir). Errors: NOENT; NOTDIR; ISDIR; NOTEMPTY; INVAL dir into itself; XDEV across mounts; PERM; ${PTR}. Traps: none.`),
  p1(37, 'path_symlink', [i32, i32, i32, i32, i32], 'fs', `path_symlink(old_path, old_len, fd, new_path, new_len). Returns: success. Errors: EXIST; NOENT; PERM absolute target, escape or read-only; ${PTR}. Traps: none.`),
  p1(38, 'path_unlink_file', [i32, i32, i32], 'fs', `path_unlink_file(fd, path, len). Returns: success (an open file stays readable through its fd). Errors: NOENT; ISDIR; PERM escape or read-only; ${PTR}. Traps: none.`),
  p1(39, 'poll_oneoff', [i32, i32, i32, i32], 'poll', `poll_oneoff(in: *subscription(48)[n], out: *event(32)[n], n, nevents: *u32). Returns: events; fd subscriptions are ready at once, else sleeps until the first clock deadline. Errors: INVAL n == 0; per-event BADF / INVAL; ${PTR}. Traps: none.`),
  { ns: P1, name: 'proc_exit', id: 40, params: [i32], results: [], cap: 'proc', doc: 'proc_exit(code). Returns: never. Errors: none. Traps: throws ProcExit(code) to the host (not an error).' },
  p1(41, 'proc_raise', [i32], 'proc', 'proc_raise(sig). Returns: never succeeds. Errors: NOTSUP (signals are not supported). Traps: none.'),
  p1(42, 'sched_yield', [], 'proc', 'sched_yield(). Returns: success. Errors: none. Traps: none.'),
  p1(43, 'sock_accept', [i32, i32, i32], 'sock', `sock_accept(fd, flags, fd_out: *u32). Returns: never succeeds. Errors: ${FD}; NOTSUP (no sockets yet). Traps: none.`),
  p1(44, 'sock_recv', [i32, i32, i32, i32, i32, i32], 'sock', `sock_recv(fd, iovs, iovs_len, riflags, nread: *u32, roflags: *u16). Returns: never succeeds. Errors: ${FD}; NOTSUP. Traps: none.`),
  p1(45, 'sock_send', [i32, i32, i32, i32, i32], 'sock', `sock_send(fd, iovs, iovs_len, siflags, nwritten: *u32). Returns: never succeeds. Errors: ${FD}; NOTSUP. Traps: none.`),
  p1(46, 'sock_shutdown', [i32, i32], 'sock', `sock_shutdown(fd, how). Returns: never succeeds. Errors: ${FD}; NOTSUP. Traps: none.`),
  { ns: 'gridvm', name: 'yield', id: 1000, params: [], results: [], cap: 'internal', doc: 'gridvm.yield(). Called by instrumented code when its budget runs out; the VM may unwind here (asyncify). Returns: nothing. Errors: none. Traps: limits (fuel, time) or kill, as Trap.' },
  { ns: 'gridvm', name: 'tick', id: 1002, params: [], results: [], cap: 'internal', doc: 'gridvm.tick(). Called by instrumented leaf functions (which cannot unwind) when their budget runs out. Returns: nothing. Errors: none. Traps: limits (fuel, time) or kill, as Trap.' },
  { ns: 'gridvm', name: 'nounwind', id: 1010, params: [], results: [], cap: 'internal', doc: 'gridvm.nounwind(). Called by instrumented code on entering a function that never returns (exit, abort, a panic): the job is ending, and from then on the VM does not unwind it (those functions are not Asyncify-instrumented). Returns: nothing. Errors: none. Traps: none.' },
  { ns: 'gridvm', name: 'unwind_window', id: 1011, params: [i32], results: [], cap: 'internal', doc: 'gridvm.unwind_window(end). Called by code that gridvm\'s unwind instrumented when the frame it saves would end past the unwind window (the [current, end] pair at the data pointer): the VM makes the window reach at least `end` (saving the bytes it covers) or traps. Returns: nothing. Errors: none. Traps: Trap when the frames do not fit in memory.' },
  { ns: 'gridvm', name: 'memory_limit', id: 1001, params: [i32], results: [], cap: 'internal', doc: 'gridvm.memory_limit(pages). Called by instrumented code before memory.grow. Returns: nothing. Errors: none. Traps: Trap("memory-limit") when the job would exceed its memory limit.' },
  // grid calls (sdk/c/gridvm.h, sdk/assemblyscript/gridvm.ts). GPIDs are i64; errors are negative errnos.
  { ns: 'gridvm', name: 'spawn', id: 1003, params: [i32, i32, i32, i32], results: [i64], cap: 'grid', blocking: true, doc: `gridvm.spawn(path: *u8, path_len, argv: *u8, argv_len) -> s64. Starts a child process from the module at path (a guest-visible path, interpreted by the coordinator) with argv given as NUL-separated UTF-8 strings, argv[0] included. Blocks (the job is suspended, may be migrated) until the coordinator answers. Returns: the child's GPID (> 0). Errors: (returned as a negative errno) NOSYS without a grid host; NOENT empty or unknown path; ILSEQ not UTF-8; TOOBIG argv over 1 MiB; whatever the coordinator reports (AGAIN, NOMEM, ...); ${PTR}. Traps: none.` },
  { ns: 'gridvm', name: 'fork', id: 1004, params: [], results: [i64], cap: 'grid', blocking: true, doc: 'gridvm.fork() -> s64. Remote fork: the child starts from a copy of the snapshot taken at this call, on any node. Blocks until the coordinator answers. Returns: 0 in the child, the child\'s GPID in the parent. Errors: (returned as a negative errno) NOSYS without a grid host; whatever the coordinator reports. Traps: none.' },
  { ns: 'gridvm', name: 'wait', id: 1005, params: [i64, i32], results: [i64], cap: 'grid', blocking: true, doc: `gridvm.wait(gpid: s64, status: *s32) -> s64. Waits for child gpid (-1: any child) to exit; blocks until then. Returns: the child's GPID, its exit code written at status. Errors: (returned as a negative errno) CHILD no such child (or none left); INVAL gpid 0 or < -1; NOSYS without a grid host; ${PTR}. Traps: none.` },
  { ns: 'gridvm', name: 'gpid', id: 1006, params: [], results: [i64], cap: 'grid', doc: 'gridvm.gpid() -> s64. Returns: this process\'s grid-wide id (1 when run without a grid host). Errors: none. Traps: none.' },
  { ns: 'gridvm', name: 'parent', id: 1007, params: [], results: [i64], cap: 'grid', doc: 'gridvm.parent() -> s64. Returns: the parent\'s GPID, 0 if none. Errors: none. Traps: none.' },
  { ns: 'gridvm', name: 'rank', id: 1008, params: [], results: [i32], cap: 'grid', doc: 'gridvm.rank() -> s32. Returns: this process\'s rank in its group (0 without a grid host). Errors: none. Traps: none.' },
  { ns: 'gridvm', name: 'size', id: 1009, params: [], results: [i32], cap: 'grid', doc: 'gridvm.size() -> s32. Returns: the size of this process\'s group (1 without a grid host). Errors: none. Traps: none.' },
]);

/** Entry by namespace and name. */
export function syscall(ns: Namespace, name: string): SyscallEntry | undefined {
  return SYSCALLS.find((s) => s.ns === ns && s.name === name);
}
