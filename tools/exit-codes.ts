/** Exit codes of the gridvm CLI (a job's own exit code passes through unchanged). */
export const ExitCode = {
  /** the job trapped, ran out of fuel, or hit its memory limit (like wasmtime: 128 + SIGABRT) */
  TRAP: 134,
  /** the job ran past --timeout (like timeout(1)) */
  TIMEOUT: 124,
  /** gridvm could not run the job: bad module, bad checkpoint, bad arguments */
  ERROR: 125,
  /** the job was suspended to a checkpoint and can be resumed */
  SUSPENDED: 75,
} as const;
