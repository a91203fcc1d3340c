// `gridvm cache` (ls, clean, clean --all) on a cache directory of fake entries ($GRIDVM_CACHE_DIR/modules). The
// command runs in-process through tools/gridvm.ts's main(), so these tests need no build; one runs bin/gridvm.js as
// a user does, as cli.test.ts does, when dist/ has been built with the command (`npm test` builds it first).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { instrumenterCodeId } from '../../runtime-node/cache.js';
import { main } from '../../tools/gridvm.js';

const cli = fileURLToPath(new URL('../../bin/gridvm.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'gridvm-cli-cache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const savedEnv = { dir: process.env.GRIDVM_CACHE_DIR, max: process.env.GRIDVM_CACHE_MAX_MIB };
afterEach(() => {
  for (const [k, v] of [['GRIDVM_CACHE_DIR', savedEnv.dir], ['GRIDVM_CACHE_MAX_MIB', savedEnv.max]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

let count = 0;
/** A fresh $GRIDVM_CACHE_DIR; returns its modules directory (not yet created). */
function freshCache(): { cacheDir: string; modules: string } {
  const cacheDir = join(tmp, `cache-${++count}`);
  return { cacheDir, modules: join(cacheDir, 'modules') };
}

const OTHER = '0123456789ab';
const KEY = (c: string) => `${c.repeat(64)}-v21-O1`;
/** A cache entry as DiskModuleCache writes it, last used `ageH` hours ago, by instrumenter `id` ('' for none). */
function fakeEntry(modules: string, key: string, wasmBytes: number, ageH: number, id: string): void {
  mkdirSync(modules, { recursive: true });
  const stem = id ? `${key}-i${id}` : key;
  const t = new Date(Date.now() - ageH * 3600_000);
  for (const [ext, bytes] of [['wasm', new Uint8Array(wasmBytes)], ['json', new TextEncoder().encode('{}')]] as const) {
    writeFileSync(join(modules, `${stem}.${ext}`), bytes);
    utimesSync(join(modules, `${stem}.${ext}`), t, t);
  }
}
/** Three entries: this build's, another instrumenter's, and one from before instrumenter ids; and a foreign file. */
function populate(modules: string): void {
  fakeEntry(modules, KEY('a'), 1000, 1, instrumenterCodeId());
  fakeEntry(modules, KEY('b'), 2000, 2, OTHER);
  fakeEntry(modules, KEY('c'), 3000, 3, '');
  writeFileSync(join(modules, 'notes.txt'), 'not an entry');
}

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `gridvm ...args` in this process with $GRIDVM_CACHE_DIR = cacheDir. */
async function gridvm(cacheDir: string, args: string[]): Promise<Out> {
  process.env.GRIDVM_CACHE_DIR = cacheDir;
  delete process.env.GRIDVM_CACHE_MAX_MIB;
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  process.exitCode = undefined;
  try {
    await main(['node', 'gridvm', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, stdout, stderr };
}

interface LsJson {
  dir: string;
  instrumenter: string;
  totalBytes: number;
  limitBytes: number;
  entries: Array<{ key: string; instrumenter: string; current: boolean; bytes: number; lastUsed: string; files: string[] }>;
}
interface CleanJson {
  dir: string;
  removed: Array<{ key: string; current: boolean; bytes: number }>;
  freedBytes: number;
  kept: number;
  keptBytes: number;
  failed: unknown[];
}

describe('gridvm cache', () => {
  it('ls --json lists every entry, most recently used first, with its size and whether this build made it', async () => {
    const { cacheDir, modules } = freshCache();
    populate(modules);
    const r = await gridvm(cacheDir, ['cache', 'ls', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as LsJson;
    expect(d.dir).toBe(modules);
    expect(d.instrumenter).toBe(instrumenterCodeId());
    expect(d.limitBytes).toBe(2048 * 1024 ** 2);
    expect(d.totalBytes).toBe(6000 + 3 * 2);
    expect(d.entries.map((e) => [e.key, e.instrumenter, e.current, e.bytes])).toEqual([
      [KEY('a'), instrumenterCodeId(), true, 1002],
      [KEY('b'), OTHER, false, 2002],
      [KEY('c'), '', false, 3002],
    ]);
    expect(Date.now() - Date.parse(d.entries[1]!.lastUsed)).toBeGreaterThan(2 * 3600_000 - 60_000);
  });

  it('with no subcommand lists the entries as a table with the directory and the total', async () => {
    const { cacheDir, modules } = freshCache();
    populate(modules);
    const r = await gridvm(cacheDir, ['cache']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`${modules}: 3 entries, 5.9 KiB (limit 2.00 GiB)`);
    expect(lines[1]).toMatch(/^SIZE\s+LAST USED\s+THIS BUILD\s+KEY$/);
    expect(lines[2]).toMatch(new RegExp(`^1002 B\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d\\s+yes\\s+${KEY('a')}$`));
    expect(lines[3]).toMatch(/\s+no\s+b{64}-v21-O1$/);
    expect(lines[5]).toBe('2 entries (4.9 KiB) made by other builds can never be served: `gridvm cache clean` removes them');
    // --json goes to the default subcommand too
    expect((JSON.parse((await gridvm(cacheDir, ['cache', '--json'])).stdout) as LsJson).entries).toHaveLength(3);
  });

  it('a cache that does not exist yet is empty', async () => {
    const { cacheDir, modules } = freshCache();
    const r = await gridvm(cacheDir, ['cache', 'ls']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${modules}: 0 entries, 0 B (limit 2.00 GiB)\n`);
  });

  it('clean removes only the entries made by other builds and says what it freed; clean --all removes the rest', async () => {
    const { cacheDir, modules } = freshCache();
    populate(modules);
    const r = await gridvm(cacheDir, ['cache', 'clean']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${modules}: removed 2 entries made by other builds, freed 4.9 KiB; 1 left (1002 B)\n`);
    expect(readdirSync(modules).sort()).toEqual([`${KEY('a')}-i${instrumenterCodeId()}.json`, `${KEY('a')}-i${instrumenterCodeId()}.wasm`, 'notes.txt']);
    const again = JSON.parse((await gridvm(cacheDir, ['cache', 'clean', '--json'])).stdout) as CleanJson;
    expect([again.removed, again.freedBytes, again.kept]).toEqual([[], 0, 1]);
    const all = await gridvm(cacheDir, ['cache', 'clean', '--all', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const d = JSON.parse(all.stdout) as CleanJson;
    expect(d.removed.map((e) => [e.key, e.current, e.bytes])).toEqual([[KEY('a'), true, 1002]]);
    expect([d.freedBytes, d.kept, d.keptBytes, d.failed]).toEqual([1002, 0, 0, []]);
    expect(readdirSync(modules)).toEqual(['notes.txt']);
  });

  it('exits 125 with a message when the cache directory cannot be read, or on a bad option', async () => {
    const { cacheDir, modules } = freshCache();
    mkdirSync(cacheDir);
    writeFileSync(modules, 'a file where the directory should be');
    const r = await gridvm(cacheDir, ['cache', 'ls']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^gridvm: .*ENOTDIR.*modules/);
    const bad = await gridvm(cacheDir, ['cache', 'clean', '--everything']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/unknown option '--everything'/);
  });

  it('runs from bin/gridvm.js as a user runs it (npm test builds dist/ first)', () => {
    const { cacheDir, modules } = freshCache();
    populate(modules);
    const env = { ...process.env, GRIDVM_CACHE_DIR: cacheDir };
    const ls = spawnSync(process.execPath, [cli, 'cache', 'ls', '--json'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(ls.status, ls.stderr).toBe(0);
    // the compiled build has its own instrumenter id (a hash of dist/vm/*.js): none of these entries is its own
    expect((JSON.parse(ls.stdout) as LsJson).entries.map((e) => e.key)).toEqual([KEY('a'), KEY('b'), KEY('c')]);
    const clean = spawnSync(process.execPath, [cli, 'cache', 'clean', '--all'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(clean.status, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/removed 3 entries, freed 5\.9 KiB; 0 left/);
    expect(readdirSync(modules)).toEqual(['notes.txt']);
  });
});
