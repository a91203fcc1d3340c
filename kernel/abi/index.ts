export { SYSCALLS, syscall, type SyscallEntry, type WasmType, type Namespace, type Capability } from './table.js';
export { link, type HostFn, type Impls } from './link.js';
export { GuestMemory } from './memory.js';
export * from './constants.js';
