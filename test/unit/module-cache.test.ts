// The disk cache of instrumented modules keys entries by the instrumenter's own code too: an entry written by other
// instrumentation code under the same version (a development build, an edit without a version bump) is not served.
// It is bounded: a put evicts least-recently-used entries past its size limit, and `clean` removes what no get can serve.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheMaxBytes, cleanModuleCache, DEFAULT_CACHE_MAX_BYTES, DiskModuleCache, instrumenterCodeId, scanModuleCache } from '../../runtime-node/cache.js';
import type { InstrumentInfo } from '../../vm/index.js';

const dir = mkdtempSync(join(tmpdir(), 'gridvm-modcache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const info = { version: 1, globals: [], memoryExport: 'memory', entry: '_start' } as unknown as InstrumentInfo;

describe('DiskModuleCache', () => {
  it('serves what this instrumenter stored, and not an entry left under the same key by other instrumenter code', async () => {
    const id = instrumenterCodeId();
    expect(id).toMatch(/^[0-9a-f]{12}$/); // the vm files are next to runtime-node/ in this build
    const cache = new DiskModuleCache(dir);
    // what an older instrumenter left: the bare key
    writeFileSync(join(dir, 'k1.wasm'), new Uint8Array([1, 2, 3]));
    writeFileSync(join(dir, 'k1.json'), JSON.stringify(info));
    expect(await cache.get('k1')).toBeUndefined();
    await cache.put('k1', { bytes: new Uint8Array([9, 9]), info });
    const got = await cache.get('k1');
    expect([...got!.bytes]).toEqual([9, 9]);
    expect(got!.info.entry).toBe('_start');
    expect(readdirSync(dir).sort()).toEqual(['k1.json', 'k1.wasm', `k1-i${id}.json`, `k1-i${id}.wasm`].sort());
    expect(await cache.get('k2')).toBeUndefined();
  });
});

let sub = 0;
/** A fresh directory under `dir`. */
const freshDir = (): string => {
  const d = join(dir, `case-${++sub}`);
  mkdirSync(d);
  return d;
};
const HOUR = 3600_000;
/** Sets a file's mtime to `ageMs` ago. */
const age = (file: string, ageMs: number): void => {
  const t = new Date(Date.now() - ageMs);
  utimesSync(file, t, t);
};
/** An entry as DiskModuleCache writes it (`wasmBytes` of module), last used `ageMs` ago; `id` '' for a bare key. */
function fakeEntry(d: string, key: string, wasmBytes: number, ageMs: number, id = instrumenterCodeId()): string {
  const stem = id ? `${key}-i${id}` : key;
  writeFileSync(join(d, `${stem}.wasm`), new Uint8Array(wasmBytes));
  writeFileSync(join(d, `${stem}.json`), JSON.stringify(info));
  age(join(d, `${stem}.wasm`), ageMs);
  age(join(d, `${stem}.json`), ageMs);
  return stem;
}
const entryBytes = (d: string): number =>
  readdirSync(d).filter((f) => /\.(wasm|json)$/.test(f)).reduce((s, f) => s + statSync(join(d, f)).size, 0);
const keys = (d: string): string[] => scanModuleCache(d).entries.map((e) => e.key).sort();
const value = (n: number) => ({ bytes: new Uint8Array(n), info });

describe('DiskModuleCache size limit', () => {
  it('takes its limit from the option, else GRIDVM_CACHE_MAX_MIB, else 2048 MiB', () => {
    const saved = process.env.GRIDVM_CACHE_MAX_MIB;
    try {
      delete process.env.GRIDVM_CACHE_MAX_MIB;
      expect(new DiskModuleCache(dir).maxBytes).toBe(2048 * 1024 * 1024);
      expect(DEFAULT_CACHE_MAX_BYTES).toBe(2048 * 1024 * 1024);
      process.env.GRIDVM_CACHE_MAX_MIB = '300';
      expect(new DiskModuleCache(dir).maxBytes).toBe(300 * 1024 * 1024);
      expect(new DiskModuleCache(dir, { maxBytes: 4096 }).maxBytes).toBe(4096);
      process.env.GRIDVM_CACHE_MAX_MIB = 'lots';
      expect(cacheMaxBytes()).toBe(DEFAULT_CACHE_MAX_BYTES);
    } finally {
      if (saved === undefined) delete process.env.GRIDVM_CACHE_MAX_MIB;
      else process.env.GRIDVM_CACHE_MAX_MIB = saved;
    }
  });

  it('keeps the directory under the limit across many puts, evicting the oldest entries', async () => {
    const d = freshDir();
    const cache = new DiskModuleCache(d, { maxBytes: 5000 });
    for (let i = 0; i < 12; i++) {
      // the entries already there were last used a minute apart, in the order of their puts
      for (const e of scanModuleCache(d).entries) for (const f of e.files) age(join(d, f), (i - Number(e.key.slice(1))) * 60_000);
      await cache.put(`k${String(i).padStart(2, '0')}`, value(1000));
      expect(entryBytes(d)).toBeLessThanOrEqual(5000);
    }
    // ~1070 bytes an entry: the last four fit
    expect(keys(d)).toEqual(['k08', 'k09', 'k10', 'k11']);
    expect((await cache.get('k11'))?.bytes.length).toBe(1000);
    expect(await cache.get('k00')).toBeUndefined();
  });

  it('evicts the least recently used entry first: a get refreshes an entry, so a later put evicts another', async () => {
    const d = freshDir();
    fakeEntry(d, 'old', 1000, 3 * HOUR);
    fakeEntry(d, 'middle', 1000, 2 * HOUR);
    fakeEntry(d, 'recent', 1000, 1 * HOUR);
    const cache = new DiskModuleCache(d, { maxBytes: 3500 });
    const before = Date.now();
    expect((await cache.get('old'))?.bytes.length).toBe(1000);
    expect(scanModuleCache(d).entries.find((e) => e.key === 'old')!.lastUsedMs).toBeGreaterThanOrEqual(before - 1000);
    await cache.put('new', value(1000));
    expect(keys(d)).toEqual(['new', 'old', 'recent']);
    // and without a get, the oldest goes
    await cache.put('newer', value(1000));
    expect(keys(d)).toEqual(['new', 'newer', 'old']);
  });

  it('never evicts the entry just put, even one bigger than the limit', async () => {
    const d = freshDir();
    fakeEntry(d, 'a', 500, 2 * HOUR);
    fakeEntry(d, 'b', 500, 1 * HOUR);
    // an entry whose mtime is in the future (a clock step) is still evicted before the one just written
    fakeEntry(d, 'future', 500, -HOUR);
    const cache = new DiskModuleCache(d, { maxBytes: 4000 });
    await cache.put('huge', value(8000));
    expect(keys(d)).toEqual(['huge']);
    expect((await cache.get('huge'))?.bytes.length).toBe(8000);
  });

  it('does nothing while under the limit, and counts only .wasm and .json files: other files are neither counted nor removed', async () => {
    const d = freshDir();
    fakeEntry(d, 'a', 1000, 2 * HOUR);
    writeFileSync(join(d, 'notes.txt'), new Uint8Array(20_000));
    mkdirSync(join(d, 'sub.wasm'));
    writeFileSync(join(d, 'sub.wasm', 'x.wasm'), new Uint8Array(20_000));
    const cache = new DiskModuleCache(d, { maxBytes: 4000 });
    await cache.put('b', value(1000));
    expect(keys(d)).toEqual(['a', 'b']);
    expect(readdirSync(d)).toEqual(expect.arrayContaining(['notes.txt', 'sub.wasm']));
    expect(readdirSync(join(d, 'sub.wasm'))).toEqual(['x.wasm']);
  });

  it('removes temp files of unfinished writes older than an hour at a put, and not fresh ones (a write in progress)', async () => {
    const d = freshDir();
    const stale = `${'a'.repeat(64)}-v1-O1.wasm.tmp-4242-0`;
    const fresh = `${'b'.repeat(64)}-v1-O1.wasm.tmp-4243-7`;
    writeFileSync(join(d, stale), new Uint8Array(100));
    age(join(d, stale), 2 * HOUR);
    writeFileSync(join(d, fresh), new Uint8Array(100));
    age(join(d, fresh), 10 * 60_000);
    await new DiskModuleCache(d, { maxBytes: 1 << 20 }).put('k', value(10));
    expect(readdirSync(d)).not.toContain(stale);
    expect(readdirSync(d)).toContain(fresh);
  });

  it('a put into a directory that cannot be written is not an error', async () => {
    const file = join(freshDir(), 'a-file');
    writeFileSync(file, 'x');
    await expect(new DiskModuleCache(file, { maxBytes: 10 }).put('k', value(100))).resolves.toBeUndefined();
  });
});

describe('cleanModuleCache', () => {
  const other = '0123456789ab';
  it('lists entries with their key, size and whether this build made them', () => {
    expect(instrumenterCodeId()).not.toBe(other);
    const d = freshDir();
    fakeEntry(d, 'mine', 1000, HOUR);
    fakeEntry(d, 'theirs', 2000, 2 * HOUR, other);
    fakeEntry(d, 'ancient', 3000, 3 * HOUR, '');
    writeFileSync(join(d, 'README'), 'not an entry');
    const { entries } = scanModuleCache(d);
    expect(entries.map((e) => [e.key, e.instrumenter, e.current, e.bytes - JSON.stringify(info).length])).toEqual([
      ['mine', instrumenterCodeId(), true, 1000],
      ['theirs', other, false, 2000],
      ['ancient', '', false, 3000],
    ]);
    expect(entries[1]!.files).toEqual([`theirs-i${other}.json`, `theirs-i${other}.wasm`]);
  });

  it('removes only the entries made by another instrumenter, and with all every entry; other files stay', () => {
    const d = freshDir();
    const mine = fakeEntry(d, 'mine', 1000, HOUR);
    fakeEntry(d, 'theirs', 2000, 2 * HOUR, other);
    fakeEntry(d, 'ancient', 3000, 3 * HOUR, '');
    writeFileSync(join(d, 'README'), 'not an entry');
    const json = JSON.stringify(info).length;
    const r = cleanModuleCache(d);
    expect(r.removed.map((e) => e.key).sort()).toEqual(['ancient', 'theirs']);
    expect(r.freedBytes).toBe(5000 + 2 * json);
    expect([r.kept, r.keptBytes, r.failed]).toEqual([1, 1000 + json, []]);
    expect(readdirSync(d).sort()).toEqual(['README', `${mine}.json`, `${mine}.wasm`]);
    const all = cleanModuleCache(d, { all: true });
    expect(all.removed.map((e) => e.key)).toEqual(['mine']);
    expect(all.freedBytes).toBe(1000 + json);
    expect(readdirSync(d)).toEqual(['README']);
    // a cache directory that does not exist is an empty cache
    expect(cleanModuleCache(join(d, 'missing')).removed).toEqual([]);
  });
});

describe('module hashes on Node', () => {
  it('come from node:crypto once runtime-node/platform.ts is loaded, equal to crypto.subtle\'s sha-256', async () => {
    const { sha256Hex } = await import('../../vm/compiled.js');
    await import('../../runtime-node/platform.js');
    const subtle = async (b: Uint8Array) => Buffer.from(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>)).toString('hex');
    for (const n of [0, 1, 63, 64, 65, 4096, 1 << 20]) {
      const b = new Uint8Array(n).map((_, i) => (i * 31 + n) & 255);
      expect(await sha256Hex(b)).toBe(await subtle(b));
    }
    expect(await sha256Hex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // the host's hash is the one used: a stand-in shows it is called (then the real one is put back)
    const { useSha256 } = await import('../../vm/compiled.js');
    const { createHash } = await import('node:crypto');
    useSha256(() => 'host');
    expect(await sha256Hex(new Uint8Array(1))).toBe('host');
    useSha256((b) => createHash('sha256').update(b).digest('hex'));
  });
});
