/** The module cannot be run by gridvm (malformed, not WASI, unsupported construct). Raised before it runs. */
export class InstrumentError extends Error {
  override name = 'InstrumentError';
}

/** A checkpoint cannot be used: corrupted, truncated, wrong version, or for another module. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/** The module needs imports gridvm does not provide. */
export class LinkError extends Error {
  override name = 'LinkError';
  constructor(readonly missing: string[]) {
    super(`the module imports functions gridvm does not provide: ${missing.join(', ')}`);
  }
}
