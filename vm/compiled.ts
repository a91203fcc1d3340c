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

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
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
