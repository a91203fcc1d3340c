// Every deterministic guest prints under gridvm exactly what it prints under a reference WASI runtime (node:wasi,
// in a child process) and, for C guests, what its gcc-built native twin prints: stdout, stderr and exit status byte
// for byte, and the same files written. A trapping guest traps under every runner after the same output.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run, type RunOptions as GridOptions, type RunResult as GridResult } from '../../runtime-node/run.js';
import { hasClang, listGuests, type GuestInfo } from '../harness/guests.js';
import { runNative, runReference, type RunResult as RefResult } from '../harness/reference.js';
import { filesOf } from '../harness/util.js';

const clang = hasClang();
const temps: string[] = [];
const tempDir = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `gridvm-ref-${tag}-`));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** Bytes as a string with one char per byte (exact, and readable in a diff). */
const bytes = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');


/** gridvm's in-memory directory files ("/data/sub/a.txt") relative to the mount ("sub/a.txt"). */
function memFilesUnder(files: Record<string, Uint8Array> | undefined, guest: string): Record<string, string> {
  const out: Record<string, string> = {};
  const prefix = `${guest.replace(/\/$/, '')}/`;
  for (const [path, data] of Object.entries(files ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    if (path.startsWith(prefix)) out[path.slice(prefix.length)] = bytes(data);
  }
  return out;
}

/** A multi-KiB stdin: lower/upper case, UTF-8, blank lines, CRs, no final newline; not a multiple of 4 KiB. */
function stdinBytes(): Buffer {
  const words = ['alpha', 'Beta', 'gamma', 'delta-9', 'épsilon', 'ZETA', 'eta_theta', '', 'x\ty', 'crlf\r'];
  const lines: string[] = [];
  for (let i = 0; i < 900; i++) lines.push(`${i}: ${words.slice(0, 1 + ((i * 7) % words.length)).join(' ')}`);
  return Buffer.from(`${lines.join('\n')}\n\nlast line without newline`);
}

/** Values for the environment variables a guest reads (GRIDVM_RANK/SIZE must be numbers). */
const ENV_VALUES: Record<string, string> = { GRIDVM_RANK: '1', GRIDVM_SIZE: '3', GRIDVM_JOB: 'job-42', HELLO_NAME: 'wörld', HOME: '/home/grid' };
/** Arguments that exercise argv better than a guest's shortArgs. */
const ARGS: Record<string, string[]> = { hello: ['first', 'two words', '', 'ünïcode', '--flag=1'] };

interface Case {
  id: string;
  guest: GuestInfo;
  args: string[];
  env: Record<string, string>;
  stdin: Buffer;
  /** how gridvm gets the guest's directory: a host directory or an in-memory one */
  fs?: 'host' | 'memory';
}

function casesOf(g: GuestInfo): Case[] {
  const env: Record<string, string> = {};
  for (const k of g.env) env[k] = ENV_VALUES[k] ?? `value of ${k}`;
  if (g.env.length) env.UNRELATED = 'not read';
  const base = { guest: g, args: ARGS[g.name] ?? g.shortArgs, env, stdin: g.readsStdin ? stdinBytes() : Buffer.alloc(0) };
  if (!g.dir) return [{ ...base, id: g.name }];
  return [
    { ...base, id: `${g.name} (host dir)`, fs: 'host' },
    { ...base, id: `${g.name} (memory dir)`, fs: 'memory' },
  ];
}

const guests = listGuests().filter((g) => g.deterministic && g.expectedExit !== null && !g.grid);
const cases = guests.flatMap(casesOf);

/** What a run shows to the outside: output bytes, exit status, whether it trapped. */
interface Seen {
  stdout: string;
  stderr: string;
  exit: number | 'trap';
}
const seenGrid = (r: GridResult): Seen => ({ stdout: bytes(r.stdout), stderr: bytes(r.stderr), exit: r.trap ? 'trap' : r.exitCode ?? -1 });
const seenRef = (r: RefResult): Seen => ({ stdout: bytes(r.stdout), stderr: bytes(r.stderr), exit: r.trap ? 'trap' : r.exitCode });
// gcc's __builtin_trap is ud2: the native twin of a wasm trap dies of SIGILL
const seenNative = (r: RefResult): Seen => ({ stdout: bytes(r.stdout), stderr: bytes(r.stderr), exit: r.signal === 'SIGILL' ? 'trap' : r.exitCode });

describe('guests print the same under gridvm as under node:wasi and natively', () => {
  it('covers every deterministic guest', () => {
    expect(guests.map((g) => g.name)).toEqual(expect.arrayContaining(['hello', 'exitcode', 'nbody', 'recursion', 'malloc_churn',
      'fileio', 'stdin_echo', 'clocks_random', 'rank', 'trap', 'as_hello', 'as_gc']));
    for (const g of guests) if (g.lang === 'as' || clang) expect(g.built, `${g.name} is not built (${g.wasm})`).toBe(true);
  });

  for (const c of cases) {
    const g = c.guest;
    it.skipIf(g.lang === 'c' && !clang && process.env.CI !== 'true')(`${c.id}: stdout, stderr, exit status${g.dir ? ' and files' : ''}`, async () => {
      const argv0 = g.name;
      const dirs = { grid: g.dir ? tempDir(`${g.name}-grid`) : '', ref: g.dir ? tempDir(`${g.name}-node`) : '', native: g.dir ? tempDir(`${g.name}-native`) : '' };
      // the native twin gets the host directory where the wasm guests get the guest path
      const nativeArgs = g.dir ? c.args.map((a, i) => (i === 0 && a === g.dir ? dirs.native : a)) : c.args;
      if (g.dir) expect(c.args[0], 'the directory argument').toBe(g.dir);
      const ref = runReference(g.wasm, { args: c.args, argv0, env: c.env, stdin: c.stdin, ...(g.dir ? { dirs: { [g.dir]: dirs.ref } } : {}) });
      const native = g.lang === 'c' ? runNative(g.native!, { args: nativeArgs, argv0, env: c.env, stdin: c.stdin, cwd: tmpdir() }) : undefined;
      const opts: GridOptions = {
        name: argv0,
        args: c.args,
        env: c.env,
        stdin: new Uint8Array(c.stdin),
        stdout: 'buffer',
        stderr: 'buffer',
        ...(c.fs === 'host' ? { dirs: [{ host: dirs.grid, guest: g.dir! }] } : {}),
        ...(c.fs === 'memory' ? { memDirs: [g.dir!] } : {}),
      };
      const grid = await run(g.wasm, opts);
      let r = await ref;
      const n = await native;
      // node:wasi's own timing under a loaded machine can fail a clock check (its nanosleep has returned early): the
      // reference, not gridvm, gets one more run; its output is in the message if it fails again
      if (!g.dir && seenRef(r).exit !== g.expectedExit && g.name === 'clocks_random') {
        r = await runReference(g.wasm, { args: c.args, argv0, env: c.env, stdin: c.stdin });
      }

      // the reference itself ran cleanly (node:wasi did not abort, the job was not killed)
      expect(r.hostStderr, 'node:wasi host errors').toBe('');
      expect(r.timedOut).toBe(false);
      const want: Seen = seenRef(r);
      expect(want.exit, `reference exit status (node:wasi's stdout: ${want.stdout.slice(0, 2000)})`).toBe(g.expectedExit);
      if (n) {
        expect(n.timedOut).toBe(false);
        expect(seenNative(n), 'native twin vs node:wasi').toEqual(want);
      }
      expect(seenGrid(grid)).toEqual(want);
      expect(grid.suspended).toBeUndefined();
      if (g.expectedExit === 'trap') {
        expect(grid.exitCode).toBeNull();
        expect(grid.trap?.reason).toBe('trap');
        expect(r.trap).toBe('unreachable');
        expect(grid.trap?.message).toMatch(/unreachable/);
      }

      if (g.dir) {
        const refFiles = filesOf(dirs.ref);
        expect(Object.keys(refFiles).length, 'the guest wrote files').toBeGreaterThan(0);
        if (n) expect(filesOf(dirs.native), 'native files').toEqual(refFiles);
        if (c.fs === 'host') {
          expect(filesOf(dirs.grid)).toEqual(refFiles);
          expect(grid.memFiles).toBeUndefined();
        } else {
          expect(readdirSync(dirs.grid), 'nothing written to the host').toEqual([]);
          expect(memFilesUnder(grid.memFiles, g.dir)).toEqual(refFiles);
        }
      }
    });
  }
});
