import type { InstrumentInfo } from './instrument.js';

/** An instrumented job, compiled and ready to instantiate any number of times. */
export interface CompiledJob {
  /** sha-256 of the instrumented bytes: a snapshot is valid only for this exact module */
  hash: string;
  /** sha-256 of the original module (the cache key) */
  sourceHash: string;
  bytes: Uint8Array;
  module: WebAssembly.Module;
  info: InstrumentInfo;
  /** whether the instrumented module came from a cache */
  cached: boolean;
}

/** A host's synchronous sha-256 (hex), used in place of crypto.subtle when set (useSha256). */
let hostSha256: ((bytes: Uint8Array) => string) | undefined;

/**
 * Give the VM the host's own sha-256. On Node, node:crypto's hashes a 200 MB module in 0.14-0.28 s where
 * crypto.subtle.digest takes 1.6-2.3 s (it copies the bytes and hops to a thread; measured on these machines, which
 * have SHA-NI): the cached module of a large program is hashed at every start. runtime-node/platform.ts sets it.
 */
export function useSha256(fn: (bytes: Uint8Array) => string): void {
  hostSha256 = fn;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (hostSha256) return hostSha256(bytes);
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

/**
 * Compile a module that gridvm already instrumented (shipped with a checkpoint, or from the coordinator to a
 * browser): no Binaryen needed here, so browsers and workers load only this.
 */
export async function compileInstrumented(bytes: Uint8Array, info: InstrumentInfo): Promise<CompiledJob> {
  return { hash: await sha256Hex(bytes), sourceHash: '', bytes, module: new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), info, cached: true };
}
