import type { Process } from '../process/process.js';
import type { HostFn } from './link.js';
import { envImpls } from './wasi-env.js';
import { fdImpls } from './wasi-fd.js';
import { pathImpls } from './wasi-path.js';
import { pollImpls } from './wasi-poll.js';

/** Every wasi_snapshot_preview1 function for one process, keyed by name (link() checks against the table). */
export function wasiImpls(p: Process): Record<string, HostFn> {
  return { ...envImpls(p), ...fdImpls(p), ...pathImpls(p), ...pollImpls(p) };
}
