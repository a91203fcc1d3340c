import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { InstrumentInfo, ModuleCache } from '../vm/index.js';

/** Default place for instrumented modules: $GRIDVM_CACHE_DIR, else $XDG_CACHE_HOME/gridvm, else ~/.cache/gridvm. */
export function defaultCacheDir(): string {
  if (process.env.GRIDVM_CACHE_DIR) return process.env.GRIDVM_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'gridvm');
}

/** The modules whose code decides what instrumentation produces (under ../vm/: vm/instrument.ts and what it imports). */
const INSTRUMENTER_FILES = ['instrument', 'budget', 'noreturn', 'walk', 'callgraph', 'namesection', 'wasmbin', 'dirty', 'unwind', 'loops', 'recursion', 'names', 'wasmcode'];
let instrumenterId: string | undefined;

/**
 * A short hash of the instrumenter's own code, so that a cached module made by other code (a development build, an
 * edit without an INSTRUMENT_VERSION bump) is never served: it would run, but not as this build instruments it.
 * Empty when the files cannot be read (a bundle): the key is then the version alone.
 */
export function instrumenterCodeId(): string {
  if (instrumenterId !== undefined) return instrumenterId;
  try {
    const h = createHash('sha256');
    // compiled (dist/) or, when run from the sources (tests), the TypeScript
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    for (const f of INSTRUMENTER_FILES) h.update(readFileSync(new URL(`../vm/${f}.${ext}`, import.meta.url)));
    instrumenterId = h.digest('hex').slice(0, 12);
  } catch {
    instrumenterId = '';
  }
  return instrumenterId;
}

/**
 * Instrumented modules on disk, keyed by the original module's hash, the instrumentation version and options, and
 * the instrumenter's code (instrumenterCodeId).
 */
export class DiskModuleCache implements ModuleCache {
  constructor(readonly dir: string = join(defaultCacheDir(), 'modules')) {}

  private file(key: string, ext: string): string {
    const id = instrumenterCodeId();
    return join(this.dir, `${key}${id ? `-i${id}` : ''}.${ext}`);
  }

  async get(key: string): Promise<{ bytes: Uint8Array; info: InstrumentInfo } | undefined> {
    try {
      const info = JSON.parse(readFileSync(this.file(key, 'json'), 'utf8')) as InstrumentInfo;
      const bytes = new Uint8Array(readFileSync(this.file(key, 'wasm')));
      return { bytes, info };
    } catch {
      return undefined;
    }
  }

  async put(key: string, value: { bytes: Uint8Array; info: InstrumentInfo }): Promise<void> {
    try {
      mkdirSync(this.dir, { recursive: true });
      writeAtomic(this.file(key, 'wasm'), [value.bytes]);
      writeAtomic(this.file(key, 'json'), [new TextEncoder().encode(JSON.stringify(value.info))]);
    } catch {
      // a cache that cannot be written is not an error: the next run instruments again
    }
  }
}

let tmpCounter = 0;
/** Write a file so that a crash at any moment leaves either the old file or the new one: temp, fsync, rename. */
export function writeAtomic(path: string, chunks: Uint8Array[]): void {
  const tmp = `${path}.tmp-${process.pid}-${tmpCounter++}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
