/**
 * THE wire protocol between a grid's coordinator (the origin), its nodes, and a node's runners. One set of message
 * types, carried as plain objects on the in-process Bus and between threads (structured clone), and msgpackr-encoded
 * where bytes cross a process or machine boundary (encodeMessage / decodeMessage: versioned and size-bounded).
 *
 * Subjects on the Bus:
 *   node.<id>   coordinator -> node        (NodeCommand)
 *   coord       node -> coordinator        (NodeEvent)
 * GPIDs are positive safe integers, unique in a grid, and never change when a process migrates.
 */
import { Packr } from 'msgpackr';

export const PROTOCOL_VERSION = 1;
/** Largest encoded message accepted (snapshots of big memories travel as messages). */
export const MAX_MESSAGE_BYTES = 1.5 * 1024 * 1024 * 1024;

export type Gpid = number;

/** What a process is started with (its first start; a restore takes args/env/fds from the snapshot). */
export interface ProcSpec {
  /** argv[0] */
  name: string;
  args: string[];
  env: string[];
  mounts: Array<{ guest: string; kind: 'host' | 'memory' | 'proc'; host?: string; readonly?: boolean }>;
  limits: { maxMemoryBytes?: number; fuel?: number; timeoutMs?: number };
  grid: { gpid: Gpid; parent: Gpid; rank: number; size: number };
}

/** Counters that follow a process from node to node. */
export interface ProcCounters {
  cpuMs: number;
  checkpoints: number;
  migrations: number;
}

/** The result of a blocking grid call (spawn, fork, wait), delivered when the process continues. */
export interface CallResult {
  value: number;
  status?: number;
}

export interface Usage {
  fuelUsed: number;
  cpuMs: number;
  memoryPeakBytes: number;
  checkpoints: number;
}

/** Checkpoint-interval policy a node applies to its processes (see kernel/sched AdaptiveInterval). */
export interface CheckpointPolicy {
  w: number;
  minMs: number;
  maxMs: number;
  initialMs: number;
  exportEvery: number;
  /** the grid's mean time between node losses so far, if any were lost */
  mtbfMs?: number;
  /** a node was lost recently: start with a shorter interval */
  failureSeen?: boolean;
}

export type NodeCommand =
  | { t: 'module'; hash: string; bytes: Uint8Array; info: unknown }
  | {
      t: 'start';
      gpid: Gpid;
      hash: string;
      spec: ProcSpec;
      counters: ProcCounters;
      /** an encoded snapshot (vm/snapshot format) to continue from, or a raw one between threads */
      snapshot?: SnapshotPayload;
      /** suspend to a raw snapshot: 'memory' between thread nodes, 'file' between process nodes of one machine */
      raw?: 'memory' | 'file';
      /** the full snapshot `snapshot` is a delta of (a migration with pre-copy) */
      base?: Uint8Array;
      /** deltas between `base` and `snapshot`, oldest first (later pre-copy rounds) */
      mids?: Uint8Array[];
      /** `snapshot` is a delta of the base this node was given in `prepare` for this process */
      prepared?: boolean;
      /** the answer to the blocking call the snapshot was taken at */
      resolve?: CallResult;
      policy?: CheckpointPolicy;
      /**
       * staged (the scheduler's lookahead): the node is busy; it queues the start and begins it when a slot frees,
       * unless it is taken back first ('control' 'unstage')
       */
      staged?: boolean;
      /** `snapshot` is raw and this node was streamed its memory ('stream'): the runner that holds it continues it */
      streamed?: boolean;
    }
  /**
   * 'precopy': a full pre-copy of a running process; 'precopy-delta': another round, a delta of the last one;
   * 'unstage': give a staged start back if it has not begun (answered by 'unstaged')
   */
  | { t: 'control'; gpid: Gpid; action: 'suspend' | 'checkpoint' | 'kill' | 'precopy' | 'precopy-delta' | 'unstage'; reason?: string }
  /**
   * pre-copy: load this full snapshot of a running process now, so that its start needs only a delta; with `delta`,
   * a later round: apply it to what was prepared
   */
  | { t: 'prepare'; gpid: Gpid; hash: string; snapshot: Uint8Array; delta?: boolean }
  /** forget a prepared process (its migration was abandoned) */
  | { t: 'drop'; gpid: Gpid }
  /**
   * Copy the memory a freezing process is being captured into a job memory while it is captured; the start that
   * follows ('start' with `streamed`) then copies only the data-segment pages. Between thread nodes of one process
   * the memory is `buffer`, with `progress[0]` the pages captured so far (-1: given up); between process nodes it
   * is the memory file `file` being written, with its progress in the file (runtime-node/grid/shm-files.ts).
   */
  | ({ t: 'stream'; gpid: Gpid; hash: string; pages: number } & StreamSource)
  /** fault injection (tests, chaos drills): end the runner thread of a process abruptly */
  | { t: 'fault'; gpid: Gpid; kind: 'runner-crash' }
  /** the node's slots changed (the origin's scheduler decides what runs; the node sizes its runners by it) */
  | { t: 'slots'; slots: number }
  | { t: 'shutdown' };

/** Where a freezing process's memory is being captured: shared memory (thread nodes) or a memory file (process nodes). */
export type StreamSource = { buffer: SharedArrayBuffer; progress: SharedArrayBuffer; file?: undefined } | { file: string; buffer?: undefined; progress?: undefined };

/**
 * Inside a process node only, never on the wire: the message's `snapshot` is empty and its bytes are already in a
 * carrier file, written by the runner thread that made them (runtime-node/grid/ipc-carrier.ts), which the node's
 * IPC carrier sends as it is.
 */
export interface CarriedSnapshot {
  snapshot: { file: string; bytes: number };
}

export type NodeEvent =
  | { t: 'hello'; node: string; slots: number; pid: number; incarnation: string }
  | { t: 'heartbeat'; node: string; incarnation: string; running: Gpid[] }
  /** `at`: epoch ms (performance.timeOrigin + performance.now()) just before the process runs again */
  | { t: 'started'; node: string; gpid: Gpid; at: number }
  /** a snapshot taken while the process keeps running (pre-copy of a migration): full, or with `delta` a delta of
   * the previous pre-copy round */
  | {
      t: 'precopy';
      node: string;
      gpid: Gpid;
      snapshot: Uint8Array;
      delta?: boolean;
      carried?: CarriedSnapshot;
    }
  | { t: 'prepared'; node: string; gpid: Gpid; ok: boolean; message?: string }
  | { t: 'output'; node: string; gpid: Gpid; fd: 1 | 2; offset: number; bytes: Uint8Array }
  | { t: 'checkpoint'; node: string; gpid: Gpid; seq: number; snapshot: Uint8Array; stdoutBytes: number; stderrBytes: number; usage: Usage; carried?: CarriedSnapshot }
  /** `delta`: the snapshot is a delta of this process's last pre-copy; `frozenAt`: when it stopped (epoch ms) */
  | { t: 'suspended'; node: string; gpid: Gpid; snapshot: SnapshotPayload; usage: Usage; delta: boolean; frozenAt: number; memoryBytes: number }
  | { t: 'blocked'; node: string; gpid: Gpid; snapshot: Uint8Array; call: GridCallMsg; usage: Usage }
  | { t: 'exit'; node: string; gpid: Gpid; code: number; usage: Usage }
  | { t: 'trap'; node: string; gpid: Gpid; reason: string; message: string; stack: string[]; usage: Usage }
  | { t: 'error'; node: string; gpid: Gpid; message: string }
  /** the node lost this process (its runner thread died) and has no local checkpoint of it: recover it */
  | { t: 'lost'; node: string; gpid: Gpid; why: string }
  /** the answer to 'unstage': ok, the staged start will not run here; not ok, it had begun (it runs here) */
  | { t: 'unstaged'; node: string; gpid: Gpid; ok: boolean }
  /** a node's process is being frozen into `buffer` or `file` (see 'stream'): its migration target may copy along */
  | ({ t: 'streaming'; node: string; gpid: Gpid; pages: number } & StreamSource);

/**
 * A snapshot handed over between threads of one process without encoding: the VM state and a copy of memory
 * whose buffer is transferred (never copied) from runner to node to runner. Used for migrations between thread
 * nodes; anything stored or sent across processes uses the encoded, checksummed format instead.
 */
export interface RawSnapshot {
  raw: true;
  moduleHash: string;
  pages: number;
  globals: Array<number | bigint>;
  asyncify: Uint8Array;
  kernel: unknown;
  fuelUsed: number;
  stdoutBytes: number;
  stderrBytes: number;
  seq: number;
  /** the memory (between threads), or empty when it is in `file` */
  memory: Uint8Array;
  /**
   * Between processes of one machine: the memory bytes are in this file (in /dev/shm when there is one), written
   * by the source node before the message is sent; the target reads it straight into the job's memory and then
   * owns it (keeps it as a spare file for its own next outgoing migration, or removes it).
   */
  file?: string;
  memoryBytes?: number;
}

export type SnapshotPayload = Uint8Array | RawSnapshot;

/** A blocking grid call as it travels (GPIDs as numbers). */
export type GridCallMsg = { op: 'spawn'; path: string; argv: string[] } | { op: 'fork' } | { op: 'wait'; gpid: number };

export type Message = NodeCommand | NodeEvent;

const MESSAGE_TYPES = new Set([
  'module', 'start', 'control', 'prepare', 'drop', 'fault', 'slots', 'shutdown',
  'hello', 'heartbeat', 'started', 'precopy', 'prepared', 'output', 'checkpoint', 'suspended', 'blocked', 'exit', 'trap', 'error', 'lost', 'unstaged', 'stream', 'streaming',
]);

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Encode a message for a byte carrier: [version u8][msgpack]. */
export function encodeMessage(m: Message): Uint8Array {
  const body = packr.pack(m) as Uint8Array;
  if (body.length + 1 > MAX_MESSAGE_BYTES) throw new ProtocolError(`message ${m.t} is ${body.length} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit`);
  const out = new Uint8Array(body.length + 1);
  out[0] = PROTOCOL_VERSION;
  out.set(body, 1);
  return out;
}

/** Decode and validate a message from a byte carrier. Throws ProtocolError saying what was wrong. */
export function decodeMessage(b: Uint8Array): Message {
  if (b.length < 2) throw new ProtocolError(`message of ${b.length} bytes is too short`);
  if (b.length > MAX_MESSAGE_BYTES) throw new ProtocolError(`message of ${b.length} bytes is above the ${MAX_MESSAGE_BYTES}-byte limit`);
  if (b[0] !== PROTOCOL_VERSION) throw new ProtocolError(`protocol version ${b[0]} is not supported (this gridvm speaks ${PROTOCOL_VERSION})`);
  let m: unknown;
  try {
    m = packr.unpack(b.subarray(1));
  } catch (e) {
    throw new ProtocolError('message does not decode (garbled msgpack)', { cause: e });
  }
  return validateMessage(m);
}

/** Check the shape of a message received from outside (type tag and the fields every handler relies on). */
export function validateMessage(m: unknown): Message {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new ProtocolError('message is not an object');
  const t = (m as { t?: unknown }).t;
  if (typeof t !== 'string' || !MESSAGE_TYPES.has(t)) throw new ProtocolError(`unknown message type ${JSON.stringify(t)}`);
  const o = m as Record<string, unknown>;
  const needNum = (k: string) => {
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) throw new ProtocolError(`message ${t}: field ${k} must be a number`);
  };
  const needBytes = (k: string) => {
    if (!(o[k] instanceof Uint8Array)) throw new ProtocolError(`message ${t}: field ${k} must be bytes`);
  };
  if (t !== 'module' && t !== 'shutdown' && t !== 'hello' && t !== 'heartbeat' && t !== 'slots') needNum('gpid');
  if (t === 'slots' && !(Number.isInteger(o.slots) && (o.slots as number) >= 0)) throw new ProtocolError('message slots: field slots must be an integer >= 0');
  if (t === 'output') {
    needNum('offset');
    needBytes('bytes');
    if (o.fd !== 1 && o.fd !== 2) throw new ProtocolError('message output: fd must be 1 or 2');
  }
  if (t === 'checkpoint' || t === 'blocked' || t === 'precopy' || t === 'prepare') needBytes('snapshot');
  if (t === 'suspended' && !(o.snapshot instanceof Uint8Array)) {
    const r = o.snapshot as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || typeof r.file !== 'string' || typeof r.memoryBytes !== 'number') {
      throw new ProtocolError('message suspended: a raw snapshot crossing a process must name its memory file');
    }
  }
  if (t === 'module') needBytes('bytes');
  if (t === 'exit') needNum('code');
  if (t === 'unstaged' && typeof o.ok !== 'boolean') throw new ProtocolError('message unstaged: field ok must be a boolean');
  if (o.carried !== undefined) throw new ProtocolError(`message ${t}: field carried is in-process only, never on the wire`);
  if (t === 'stream' || t === 'streaming') {
    if (!Number.isInteger(o.pages) || (o.pages as number) < 1) throw new ProtocolError(`message ${t}: pages must be an integer >= 1`);
    const shared = typeof SharedArrayBuffer !== 'undefined' && o.buffer instanceof SharedArrayBuffer && o.progress instanceof SharedArrayBuffer;
    if (!shared && typeof o.file !== 'string') {
      throw new ProtocolError(`message ${t}: needs shared memory (buffer and progress, between threads) or a memory file name`);
    }
  }
  return m as Message;
}
