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

/** Instrumented modules on disk, keyed by the original module's hash and the instrumentation version. */
export class DiskModuleCache implements ModuleCache {
  constructor(readonly dir: string = join(defaultCacheDir(), 'modules')) {}

  async get(key: string): Promise<{ bytes: Uint8Array; info: InstrumentInfo } | undefined> {
    try {
      const info = JSON.parse(readFileSync(join(this.dir, `${key}.json`), 'utf8')) as InstrumentInfo;
      const bytes = new Uint8Array(readFileSync(join(this.dir, `${key}.wasm`)));
      return { bytes, info };
    } catch {
      return undefined;
    }
  }

  async put(key: string, value: { bytes: Uint8Array; info: InstrumentInfo }): Promise<void> {
    try {
      mkdirSync(this.dir, { recursive: true });
      writeAtomic(join(this.dir, `${key}.wasm`), [value.bytes]);
      writeAtomic(join(this.dir, `${key}.json`), [new TextEncoder().encode(JSON.stringify(value.info))]);
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
