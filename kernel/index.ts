/** Public surface of the kernel. Other layers import only this. */
export { Errno, errnoName, KernelError, Trap, ProcExit } from './errors.js';
export type { HostPlatform, HostFs, HostStat } from './platform.js';
export { Process, type ProcessOptions, type ProcessState, type MountState, type MountSpec, type VmHooks } from './process/process.js';
export { DEFAULT_IDENTITY, type GridCall, type GridResult, type GridIdentity, type ProcStatus, type BlockHook } from './process/grid.js';
export { ResourceTable } from './process/resource-table.js';
export type { FdEntry, FdState } from './process/fd.js';
export type { ClockState } from './process/clock.js';
export { SYSCALLS, syscall, link, GuestMemory, type SyscallEntry, type WasmType, type Namespace, type Capability, type HostFn, type Impls } from './abi/index.js';
export { Filetype, ClockId, Whence, Oflags, Fdflags, Lookupflags, Fstflags, EventType, Rights, RIGHTS_ALL } from './abi/constants.js';
export { MemFs, type MemFsState, type MemNodeState } from './fs/memfs.js';
export { HostDirFs } from './fs/hostfs.js';
export { ProcFs, formatProcStatus, type ProcSource } from './fs/procfs.js';
export { Vfs, type Mount } from './fs/vfs.js';
export { ESCAPE_ERRNO } from './fs/path.js';
export type { FsBackend, FileHandle, Stat, DirEntry, FileKind } from './fs/types.js';
export * from './net/index.js';
export * from './sched/index.js';
