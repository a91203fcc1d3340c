// Messages between a NodeHost and its runner threads (runner.ts), and the runner's shared control words.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { CheckpointPolicy, ProcSpec, SnapshotPayload, StreamSource } from '../../kernel/index.js';
import type { InstrumentInfo } from '../../vm/runtime.js';

export interface RunnerData {
  node: string;
  /**
   * CONTROL_SLOTS slots of CONTROL_WORDS Int32 words, one slot per start given to the runner (the one it runs and
   * those queued behind it): [0] the vm Control word of that process, [1] PRECOPY_FLAG / PRECOPY_DELTA_FLAG = the
   * next checkpoint the control word asks for is a migration's pre-copy, [2] the start's generation << 2 (see
   * `stamp`), with BEGUN once the runner has begun it or UNSTAGED if the node took it back first: one
   * compare-and-swap from the bare generation decides which. The generation makes a start that was taken back but
   * is still queued at the runner fail its swap after the slot was given to another start.
   */
  control: SharedArrayBuffer;
}

export const CONTROL_WORDS = 4;
/** starts a runner holds at once: the one it runs and up to CONTROL_SLOTS - 1 staged behind it */
export const CONTROL_SLOTS = 32;
export const BEGUN = 1;
export const UNSTAGED = 2;
/** Word [2] of a slot given to the start of generation `gen`, with `state` (0, BEGUN or UNSTAGED). */
export const stamp = (gen: number, state = 0): number => ((gen & 0x1fffffff) << 2) | state;
/** The control words of `slot` in a runner's control buffer. */
export const slotWords = (control: SharedArrayBuffer, slot: number): Int32Array => new Int32Array(control, slot * CONTROL_WORDS * 4, CONTROL_WORDS);

/** Messages from the NodeHost to a runner. */
export type RunnerCommand =
  | { t: 'module'; hash: string; module: WebAssembly.Module; info: InstrumentInfo }
  | { t: 'prepare'; gpid: number; hash: string; snapshot: Uint8Array; delta?: boolean }
  | { t: 'drop'; gpid: number }
  /** several starts in one message, begun in order (NodeHost batches the starts of one turn) */
  | { t: 'starts'; list: RunnerCommand[] }
  /** copy a freezing process's memory into a job memory while it is captured (NodeCommand 'stream') */
  | ({ t: 'stream-in'; gpid: number; hash: string; pages: number } & StreamSource)
  | {
      t: 'start';
      gpid: number;
      hash: string;
      spec: ProcSpec;
      counters: { cpuMs: number; checkpoints: number; migrations: number };
      snapshot?: SnapshotPayload;
      raw?: 'memory' | 'file';
      base?: Uint8Array;
      mids?: Uint8Array[];
      prepared?: boolean;
      resolve?: { value: number; status?: number };
      policy?: CheckpointPolicy;
      /** a used (so already page-faulted) buffer to copy memory into if the process is suspended to a raw snapshot */
      spare?: ArrayBufferLike;
      /** its control slot (RunnerData.control), given to it as generation `gen` */
      slot: number;
      gen: number;
      /** its memory was streamed to this runner ('stream-in') */
      streamed?: boolean;
    };

/** Runner -> NodeHost only (never forwarded): a local checkpoint that is not exported, kept by the node. */
export interface LocalCheckpointEvent {
  t: 'local';
  gpid: number;
  snapshot: Uint8Array;
}

/** Runner -> NodeHost only (never forwarded): a buffer it no longer needs, for the node's spare pool. */
export interface RecycleEvent {
  t: 'recycle';
  buffer: ArrayBufferLike;
}

/** control word [1]: the next checkpoint is a migration's pre-copy (full), or a later round (a delta of the last) */
export const PRECOPY_FLAG = 1;
export const PRECOPY_DELTA_FLAG = 2;

/** Where raw snapshots between process nodes go: RAM-backed /dev/shm when the machine has it. */
export const MIGRATION_DIR = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
