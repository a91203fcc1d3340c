import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { InstrumentInfo, ModuleCache } from '../vm/index.js';
import { readBytes } from './files.js';

/** Default place for instrumented modules: $GRIDVM_CACHE_DIR, else $XDG_CACHE_HOME/gridvm, else ~/.cache/gridvm. */
export function defaultCacheDir(): string {
  if (process.env.GRIDVM_CACHE_DIR) return process.env.GRIDVM_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'gridvm');
}

/** The directory of DiskModuleCache by default: `modules` under defaultCacheDir(). */
export function defaultModuleCacheDir(): string {
  return join(defaultCacheDir(), 'modules');
}

/** The soft size limit of the module cache when none is given. */
export const DEFAULT_CACHE_MAX_BYTES = 2048 * 1024 ** 2;

/** The module cache's size limit: $GRIDVM_CACHE_MAX_MIB (MiB, a number >= 0), else DEFAULT_CACHE_MAX_BYTES. */
export function cacheMaxBytes(): number {
  const v = process.env.GRIDVM_CACHE_MAX_MIB;
  const mib = v === undefined || v.trim() === '' ? NaN : Number(v);
  return Number.isFinite(mib) && mib >= 0 ? Math.round(mib * 1024 ** 2) : DEFAULT_CACHE_MAX_BYTES;
}

/** The modules whose code decides what instrumentation produces (under ../vm/: vm/instrument.ts and what it imports). */
const INSTRUMENTER_FILES = ['instrument', 'version', 'unroll', 'budget', 'noreturn', 'walk', 'callgraph', 'namesection', 'wasmbin', 'dirty', 'unwind', 'loops', 'recursion', 'names', 'wasmcode'];
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

export interface DiskModuleCacheOptions {
  /**
   * Soft limit on the total size of the cache's .wasm and .json files: after a put, the least recently used entries
   * are deleted until the total is at most this (never the entry just written). Default cacheMaxBytes().
   */
  maxBytes?: number;
}

/**
 * Instrumented modules on disk, keyed by the original module's hash, the instrumentation version and options, and
 * the instrumenter's code (instrumenterCodeId). Each entry is `<key>-i<id>.wasm` and `.json`. Bounded like
 * wasmtime's cache: a put evicts least-recently-used entries past `maxBytes`; a get marks its entry used (mtime).
 */
export class DiskModuleCache implements ModuleCache {
  readonly maxBytes: number;

  constructor(
    readonly dir: string = defaultModuleCacheDir(),
    opts: DiskModuleCacheOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? cacheMaxBytes();
  }

  private file(key: string, ext: string): string {
    return join(this.dir, `${entryStem(key)}.${ext}`);
  }

  async get(key: string): Promise<{ bytes: Uint8Array; info: InstrumentInfo } | undefined> {
    let value: { bytes: Uint8Array; info: InstrumentInfo };
    try {
      const info = JSON.parse(readFileSync(this.file(key, 'json'), 'utf8')) as InstrumentInfo;
      const bytes = readBytes(this.file(key, 'wasm'));
      value = { bytes, info };
    } catch {
      return undefined;
    }
    try {
      // "last used" for eviction is the entry's newest mtime: one syscall, no read of the directory
      const now = new Date();
      utimesSync(this.file(key, 'wasm'), now, now);
    } catch {
      // a read-only cache is still served
    }
    return value;
  }

  async put(key: string, value: { bytes: Uint8Array; info: InstrumentInfo }): Promise<void> {
    try {
      mkdirSync(this.dir, { recursive: true });
      writeAtomic(this.file(key, 'wasm'), [value.bytes]);
      writeAtomic(this.file(key, 'json'), [new TextEncoder().encode(JSON.stringify(value.info))]);
    } catch {
      // a cache that cannot be written is not an error: the next run instruments again
      return;
    }
    try {
      evictModuleCache(this.dir, this.maxBytes, entryStem(key));
    } catch {
      // nor is one that cannot be cleaned up: it is tried again at the next put
    }
  }
}

/** The file name of an entry without its extension: the key and the instrumenter's code id. */
function entryStem(key: string): string {
  const id = instrumenterCodeId();
  return `${key}${id ? `-i${id}` : ''}`;
}

/** One entry of the module cache: `<stem>.wasm` and `<stem>.json` (either may be missing after a crash). */
export interface ModuleCacheEntry {
  /** the cache key: the source module's sha-256, the instrumentation version and options */
  key: string;
  /** instrumenterCodeId() of the build that wrote it; '' for an entry without one (older gridvm, or a bundle) */
  instrumenter: string;
  /** whether this build made it (and so can serve it): its instrumenter id is this build's */
  current: boolean;
  /** the entry's files, names within the cache directory */
  files: string[];
  /** total size of those files */
  bytes: number;
  /** the newest mtime of its files: written, or last served by a get */
  lastUsedMs: number;
}

/** A leftover of a write that did not finish (writeAtomic's temp file). */
export interface StaleTempFile {
  file: string;
  bytes: number;
  mtimeMs: number;
}

/** A temp file older than this is left by a crashed writer (a write takes seconds even for a 300 MB module). */
export const STALE_TEMP_MS = 60 * 60 * 1000;

const TEMP_FILE = /\.tmp-\d+-\d+$/;
const ENTRY_FILE = /^(.+)\.(wasm|json)$/;
const WITH_INSTRUMENTER = /^(.+)-i([0-9a-f]{12})$/;

/**
 * The module cache directory's entries (newest first) and its stale temp files: one readdir and a stat per file.
 * Files that are neither `.wasm`/`.json` nor writeAtomic's temp files are not the cache's and are left out, as are
 * directories. A directory that does not exist is an empty cache; one that cannot be read throws.
 */
export function scanModuleCache(dir: string = defaultModuleCacheDir(), now = Date.now()): { entries: ModuleCacheEntry[]; staleTemp: StaleTempFile[] } {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], staleTemp: [] };
    throw e;
  }
  const current = instrumenterCodeId();
  const byStem = new Map<string, ModuleCacheEntry>();
  const staleTemp: StaleTempFile[] = [];
  for (const name of names) {
    const temp = TEMP_FILE.test(name);
    const m = temp ? null : ENTRY_FILE.exec(name);
    if (!temp && !m) continue;
    let st;
    try {
      st = statSync(join(dir, name));
    } catch {
      continue; // removed meanwhile (another process cleaning up)
    }
    if (!st.isFile()) continue;
    if (temp) {
      if (now - st.mtimeMs > STALE_TEMP_MS) staleTemp.push({ file: name, bytes: st.size, mtimeMs: st.mtimeMs });
      continue;
    }
    const stem = m![1]!;
    let e = byStem.get(stem);
    if (!e) {
      const im = WITH_INSTRUMENTER.exec(stem);
      const instrumenter = im ? im[2]! : '';
      e = { key: im ? im[1]! : stem, instrumenter, current: instrumenter === current, files: [], bytes: 0, lastUsedMs: 0 };
      byStem.set(stem, e);
    }
    e.files.push(name);
    e.bytes += st.size;
    e.lastUsedMs = Math.max(e.lastUsedMs, st.mtimeMs);
  }
  const entries = [...byStem.values()].sort((a, b) => b.lastUsedMs - a.lastUsedMs);
  for (const e of entries) e.files.sort();
  return { entries, staleTemp };
}

/** What a clean-up removed. */
export interface ModuleCacheCleanup {
  removed: ModuleCacheEntry[];
  /** stale temp files removed */
  removedTemp: StaleTempFile[];
  /** bytes freed (entries and temp files) */
  freedBytes: number;
  /** what is left: entries and their total size */
  kept: number;
  keptBytes: number;
  /** files that could not be removed, with why */
  failed: Array<{ file: string; error: string }>;
}

/** Unlinks `files` in `dir`; true when none is left (one already gone counts as removed). */
function removeFiles(dir: string, files: string[], failed: ModuleCacheCleanup['failed']): boolean {
  let ok = true;
  for (const f of files) {
    try {
      unlinkSync(join(dir, f));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      failed.push({ file: f, error: (e as Error).message });
      ok = false;
    }
  }
  return ok;
}

/** Removes stale temp files; returns the bytes freed. */
function removeTemp(dir: string, staleTemp: StaleTempFile[], failed: ModuleCacheCleanup['failed']): { removed: StaleTempFile[]; bytes: number } {
  const removed = staleTemp.filter((t) => removeFiles(dir, [t.file], failed));
  return { removed, bytes: removed.reduce((s, t) => s + t.bytes, 0) };
}

/**
 * Keeps the module cache within `maxBytes`: removes stale temp files, then least-recently-used entries (a .wasm and
 * its .json together) until the entries total at most `maxBytes`, never the entry `keep` (a stem: key and
 * instrumenter suffix). Files that are not the cache's are neither counted nor removed.
 */
export function evictModuleCache(dir: string, maxBytes: number, keep?: string): ModuleCacheCleanup {
  const { entries, staleTemp } = scanModuleCache(dir);
  const failed: ModuleCacheCleanup['failed'] = [];
  const temp = removeTemp(dir, staleTemp, failed);
  let freedBytes = temp.bytes;
  let total = entries.reduce((s, e) => s + e.bytes, 0);
  const removed: ModuleCacheEntry[] = [];
  // oldest first; one that cannot be removed is skipped (and still counted)
  for (let i = entries.length - 1; i >= 0 && total > maxBytes; i--) {
    const e = entries[i]!;
    if (keep !== undefined && stemOf(e) === keep) continue;
    if (!removeFiles(dir, e.files, failed)) continue;
    freedBytes += e.bytes;
    total -= e.bytes;
    removed.push(e);
  }
  return { removed, removedTemp: temp.removed, freedBytes, kept: entries.length - removed.length, keptBytes: total, failed };
}

/**
 * Removes the module cache entries that this build cannot serve (made by other instrumenter code), or with `all`
 * every entry, and stale temp files. Files that are not the cache's are left alone.
 */
export function cleanModuleCache(dir: string = defaultModuleCacheDir(), opts: { all?: boolean } = {}): ModuleCacheCleanup {
  const { entries, staleTemp } = scanModuleCache(dir);
  const failed: ModuleCacheCleanup['failed'] = [];
  const temp = removeTemp(dir, staleTemp, failed);
  let freedBytes = temp.bytes;
  const removed: ModuleCacheEntry[] = [];
  let keptBytes = 0;
  for (const e of entries) {
    if ((e.current && !opts.all) || !removeFiles(dir, e.files, failed)) {
      keptBytes += e.bytes;
      continue;
    }
    freedBytes += e.bytes;
    removed.push(e);
  }
  return { removed, removedTemp: temp.removed, freedBytes, kept: entries.length - removed.length, keptBytes, failed };
}

function stemOf(e: ModuleCacheEntry): string {
  return e.instrumenter ? `${e.key}-i${e.instrumenter}` : e.key;
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
