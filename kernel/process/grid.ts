/** Grid identity of a process and the blocking grid calls it can make (spawn, fork, wait). Plain data. */

/** A blocking grid call, decoded from the job's arguments: what the host (coordinator) must answer. */
export type GridCall =
  | { op: 'spawn'; path: string; argv: string[] }
  | { op: 'fork' }
  | { op: 'wait'; gpid: bigint };

/** The host's answer to a GridCall: `value` is returned to the job (a GPID or a negative errno); `status` is
 * written at `wait`'s status pointer (the child's exit code) when given. */
export interface GridResult {
  value: bigint;
  status?: number;
}

/**
 * Who this process is on the grid. Not part of ProcessState: the host passes it at every start and restore (a
 * forked child is restored from its parent's state with its own identity).
 */
export interface GridIdentity {
  /** grid-wide process id (> 0) */
  gpid: bigint;
  /** the parent's GPID, 0 if none */
  parent: bigint;
  /** rank within its group, and the group's size */
  rank: number;
  size: number;
  /** the node this process runs on now */
  node: string;
}

/** What /proc/<gpid>/status shows, supplied by the host (ProcessOptions.procInfo). */
export interface ProcStatus {
  gpid: bigint;
  name: string;
  state: string;
  node: string;
  cpuTimeMs: number;
  fuelUsed: number;
  memoryPeakBytes: number;
  checkpoints: number;
  migrations: number;
}

/** The identity used when the host gives none: a lone process. */
export const DEFAULT_IDENTITY: Readonly<GridIdentity> = Object.freeze({ gpid: 1n, parent: 0n, rank: 0, size: 1, node: '' });

/**
 * The hook a VM passes to Process.imports(): asked by spawn/fork/wait once their arguments are decoded. It either
 * suspends the job (starts an unwind and returns undefined: the value returned to the job then is ignored) or,
 * when the job is resumed at this call, returns the host's answer.
 */
export type BlockHook = (call: GridCall) => GridResult | undefined;
