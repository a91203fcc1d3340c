// The Grid VM: load, validate, instrument, instantiate, run, snapshot, restore. Platform-free.
export { instrument, INSTRUMENT_VERSION, SUSPENDING_IMPORTS, type InstrumentInfo, type InstrumentOptions } from './instrument.js';
export { prepareJob, moduleCacheKey, compileInstrumented, checkWasmHeader, sha256Hex, type CompiledJob, type ModuleCache } from './job.js';
export { Machine, Control, type MachineOptions, type Snapshot, type RunOutcome, type YieldAction, type GlobalValue } from './machine.js';
export {
  encodeSnapshot,
  decodeSnapshot,
  applyChain,
  snapshotFromChain,
  concatChunks,
  readU32List,
  SNAPSHOT_FORMAT,
  type SnapshotHeader,
  type DecodedSnapshot,
  type DeltaBase,
  type Encoded,
} from './snapshot.js';
export { InstrumentError, SnapshotError, LinkError } from './errors.js';
export { createPageEngine, PAGE_SIZE, type PageEngine } from './pages.js';
export { guestStackFromError } from './trapstack.js';
