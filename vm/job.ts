import type { InstrumentInfo, InstrumentOptions } from './instrument.js';
import { INSTRUMENT_VERSION } from './version.js';
import { unrollLoopsOf } from './unroll.js';
import { InstrumentError } from './errors.js';
import { sha256Hex, type CompiledJob } from './compiled.js';
export { sha256Hex, compileInstrumented, type CompiledJob } from './compiled.js';


/** Where instrumented modules are kept between runs (memory, a directory, IndexedDB...). */
export interface ModuleCache {
  get(key: string): Promise<{ bytes: Uint8Array; info: InstrumentInfo } | undefined>;
  put(key: string, value: { bytes: Uint8Array; info: InstrumentInfo }): Promise<void>;
}


/** The cache key of an instrumented module: the source's hash, the instrumentation version and its options. */
export function moduleCacheKey(sourceHash: string, opts?: InstrumentOptions): string {
  return `${sourceHash}-v${INSTRUMENT_VERSION}-O${opts?.optimizeLevel ?? 1}${opts?.dirtyPages ? '-dirty' : ''}${opts?.unwind === 'asyncify' ? '-asyncify' : ''}${{ true: '', tiny: '-tinyunroll', false: '-nounroll' }[String(unrollLoopsOf(opts)) as 'true' | 'tiny' | 'false']}${(opts?.unrollRecursion ?? unrollLoopsOf(opts) === true) ? '' : '-norecunroll'}${opts?.asyncify ? `-${opts.asyncify.id}` : ''}`;
}

const memoryCache = new Map<string, { bytes: Uint8Array; info: InstrumentInfo; module?: WebAssembly.Module; hash?: string }>();

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

/** Check the header before spending time on a module: clear errors for files that are not Wasm at all. */
export function checkWasmHeader(bytes: Uint8Array): void {
  if (bytes.length < 8 || WASM_MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new InstrumentError('not a WebAssembly module: the file does not start with the \\0asm magic number');
  }
  const version = bytes[4]! | (bytes[5]! << 8);
  if (version !== 1) {
    const layer = bytes[6]! | (bytes[7]! << 8);
    if (layer === 1) throw new InstrumentError('this is a WebAssembly component (preview2), not a core module; gridvm runs WASI preview1 core modules');
    throw new InstrumentError(`unsupported WebAssembly binary version ${version}`);
  }
}

/**
 * Instrument (or fetch from cache) and compile a job. The cache key is the original module's hash and the
 * instrumentation version.
 */
export async function prepareJob(
  original: Uint8Array,
  opts: { cache?: ModuleCache; instrument?: InstrumentOptions } = {},
): Promise<CompiledJob> {
  checkWasmHeader(original);
  const sourceHash = await sha256Hex(original);
  const key = moduleCacheKey(sourceHash, opts.instrument);
  let hit = memoryCache.get(key);
  let cached = !!hit;
  if (!hit && opts.cache) {
    hit = await opts.cache.get(key);
    cached = !!hit;
  }
  if (!hit) {
    try {
      new WebAssembly.Module(original as Uint8Array<ArrayBuffer>);
    } catch (e) {
      throw new InstrumentError(`malformed WebAssembly module: ${(e as Error).message}`, { cause: e });
    }
    // the instrumenter (binaryen.js: ~0.5 s to load per thread) only on a miss: a run from the cache never loads it
    const { instrument } = await import('./instrument.js');
    const out = instrument(original, opts.instrument);
    hit = { bytes: out.bytes, info: out.info };
    if (opts.cache) await opts.cache.put(key, hit);
  }
  if (!memoryCache.has(key)) memoryCache.set(key, hit);
  const module = hit.module ?? new WebAssembly.Module(hit.bytes as Uint8Array<ArrayBuffer>);
  hit.module = module;
  hit.hash ??= await sha256Hex(hit.bytes);
  return { hash: hit.hash, sourceHash, bytes: hit.bytes, module, info: hit.info, cached };
}
