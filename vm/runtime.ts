// The Grid VM's binaryen-free surface: everything needed to run, snapshot and restore a module that gridvm has
// already instrumented. Nodes, runner threads and browsers load this (tens of ms) instead of vm/index.ts, whose
// instrumenter pulls in binaryen (~0.5 s and tens of MiB per thread).
export { compileInstrumented, sha256Hex, useSha256, type CompiledJob } from './compiled.js';
export type { InstrumentInfo, InstrumentOptions, AsyncifyRunner } from './instrument.js';
export { INSTRUMENT_VERSION } from './version.js';
export { InstrumentError } from './errors.js';
export { Machine, Control, CAPTURE_CHUNK, type MachineOptions, type CaptureSink, type Snapshot, type RunOutcome, type YieldAction, type GlobalValue, type DirtyTracking } from './machine.js';
export {
  encodeSnapshot,
  decodeSnapshot,
  applyChain,
  applyLink,
  keepPages,
  snapshotFromChain,
  concatChunks,
  readU32List,
  SNAPSHOT_FORMAT,
  type SnapshotHeader,
  type DecodedSnapshot,
  type DeltaBase,
  type Encoded,
  type PreparedMemory,
} from './snapshot.js';
export { MemoryPool, createMemory, memoryLimits, memoryPages, prefault, limitsCompatible, type MemoryLimits, type MemoryPoolOptions, type MemoryPoolStats } from './mempool.js';
export { SnapshotError, LinkError } from './errors.js';
export { createPageEngine, PAGE_SIZE, type PageEngine } from './pages.js';
export { guestStackFromError } from './trapstack.js';
export { InstancePool, type InstancePoolOptions, type InstancePoolStats } from './instances.js';
