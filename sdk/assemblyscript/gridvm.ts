// gridvm grid system calls for AssemblyScript jobs: `import { rank, size, spawn, wait } from "<path>/sdk/assemblyscript/gridvm"`.
// The raw imports come from the "gridvm" module (syscall table: kernel/abi/table.ts). GPIDs are i64 (> 0); calls
// that can fail return a negative errno (e.g. -52 NOSYS without a grid host, -12 CHILD from wait). spawn, fork and
// wait block: the job is suspended until the coordinator answers (and may move to another machine meanwhile).

@external("gridvm", "spawn")
declare function gridvm_spawn(path: usize, pathLen: u32, argv: usize, argvLen: u32): i64;
@external("gridvm", "fork")
declare function gridvm_fork(): i64;
@external("gridvm", "wait")
declare function gridvm_wait(gpid: i64, status: usize): i64;
@external("gridvm", "gpid")
declare function gridvm_gpid(): i64;
@external("gridvm", "parent")
declare function gridvm_parent(): i64;
@external("gridvm", "rank")
declare function gridvm_rank(): i32;
@external("gridvm", "size")
declare function gridvm_size(): i32;

/** Start a child process from the module at `path` with `argv` (argv[0] included). The child's GPID, or -errno. */
export function spawn(path: string, argv: string[]): i64 {
  const p = String.UTF8.encode(path);
  let joined = "";
  for (let i = 0; i < argv.length; i++) joined += argv[i] + "\0";
  const a = String.UTF8.encode(joined);
  return gridvm_spawn(changetype<usize>(p), <u32>p.byteLength, changetype<usize>(a), <u32>a.byteLength);
}

/** Remote fork: 0 in the child, the child's GPID in the parent, -errno on failure. */
export function fork(): i64 {
  return gridvm_fork();
}

/** What wait() returns: the child's GPID (or -errno) and, when gpid > 0, its exit code. */
export class WaitResult {
  constructor(public gpid: i64, public status: i32) {}
}

const statusBuf: usize = memory.data(4);

/** Wait for child `gpid` (-1: any child) to exit. */
export function wait(gpid: i64 = -1): WaitResult {
  store<i32>(statusBuf, 0);
  const r = gridvm_wait(gpid, statusBuf);
  return new WaitResult(r, load<i32>(statusBuf));
}

/** This process's GPID (1 without a grid host), its parent's (0 if none), its rank and its group's size. */
export function gpid(): i64 {
  return gridvm_gpid();
}
export function parent(): i64 {
  return gridvm_parent();
}
export function rank(): i32 {
  return gridvm_rank();
}
export function size(): i32 {
  return gridvm_size();
}
