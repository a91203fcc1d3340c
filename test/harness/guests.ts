// Where the built guest jobs are, and what each one is for. Built by tools/build-guests.mjs (vitest globalSetup runs
// it once) into test/guests/build/. See test/guests/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const guestsDir = join(repoRoot, 'test/guests');
export const guestBuildDir = join(guestsDir, 'build');

export type GuestLang = 'c' | 'as';

export interface GuestInfo {
  name: string;
  lang: GuestLang;
  /** Absolute path of the source file. */
  source: string;
  /** Absolute path of the built module (may not exist: see `built`). */
  wasm: string;
  /** Absolute path of the gcc-built reference executable (C guests only). */
  native?: string;
  /** Whether the .wasm exists now. */
  built: boolean;
  description: string;
  /** Arguments (after argv[0]) that make a short run for tests; [] = the defaults. */
  shortArgs: string[];
  /** Rough duration of a default run under node:wasi, in seconds (null: never ends). */
  seconds: number | null;
  /** Exit status of a normal run: a number, 'trap', or null if it never ends by itself. */
  expectedExit: number | 'trap' | null;
  /** Output is the same on every run (given the same args, env, stdin and files). */
  deterministic: boolean;
  /** Reads stdin. */
  readsStdin: boolean;
  /** Guest path of the preopened directory it needs (argv[1] overrides it), if any. */
  dir?: string;
  /** Environment variables it reads. */
  env: string[];
  /** Needs a grid host (imports gridvm calls or reads /proc): no node:wasi or native reference run. */
  grid?: boolean;
}

type Meta = Omit<GuestInfo, 'name' | 'lang' | 'source' | 'wasm' | 'native' | 'built'>;

const base: Meta = { description: '', shortArgs: [], seconds: 0.1, expectedExit: 0, deterministic: true,
  readsStdin: false, env: [] };

const META: Record<string, Partial<Meta>> = {
  nbody: { description: 'CPU-heavy floating point (n-body), 40 energy lines spread over the run, final checksum; argv[1] = steps',
    shortArgs: ['200000'], seconds: 1.8 },
  recursion: { description: 'deep recursion without loops (fib, Ackermann(3,n), tree depth 2000-5500, mutual); argv[1] = depth scale',
    seconds: 0.15 },
  malloc_churn: { description: 'malloc/free/realloc churn with pointers in a hash table + LRU list, verified; argv[1] = live MiB (default 6, peak < 12 MiB), argv[2] = ops',
    shortArgs: ['4', '100000'], seconds: 0.6 },
  fileio: { description: 'files kept open across a computation, seek/pread/pwrite/append/rename/mkdir/readdir/stat/ftruncate/unlink; argv[1] = dir, argv[2] = work',
    shortArgs: ['/data', '5'], seconds: 0.05, dir: '/data' },
  stdin_echo: { description: 'reads stdin in 4 KiB chunks, uppercases with line numbers and a running checksum, CPU work between chunks',
    readsStdin: true, seconds: 0.05 },
  clocks_random: { description: 'clock_gettime/getres, nanosleep, getentropy, arc4random checks; prints only ok/FAIL lines',
    seconds: 0.05 },
  rank: { description: 'counts primes in its round-robin blocks of [2, N) given GRIDVM_RANK/GRIDVM_SIZE (equal work per rank); one result line; argv[1] = N',
    shortArgs: ['200000'], seconds: 0.3, env: ['GRIDVM_RANK', 'GRIDVM_SIZE'] },
  memory_bomb: { description: 'mallocs and touches 1 MiB chunks forever; "N MiB" to stderr every 16 MiB; exit 2 if malloc fails',
    seconds: null, expectedExit: null, deterministic: false },
  endless: { description: 'prints "endless: started", then spins forever on a volatile counter with no syscalls',
    seconds: null, expectedExit: null, deterministic: false },
  trap: { description: 'level_one -> level_two -> level_three -> __builtin_trap (unreachable); name section kept',
    seconds: 0.01, expectedExit: 'trap' },
  exitcode: { description: 'writes to stdout and stderr, exits with 3', seconds: 0.01, expectedExit: 3 },
  hello: { description: 'prints "hello from gridvm", argv and GRIDVM_RANK/GRIDVM_SIZE/GRIDVM_JOB/HELLO_NAME/HOME',
    seconds: 0.01, env: ['GRIDVM_RANK', 'GRIDVM_SIZE', 'GRIDVM_JOB', 'HELLO_NAME', 'HOME'] },
  as_gc: { description: 'AssemblyScript: managed objects/arrays/strings under the incremental GC, live set in a Map, checksums',
    seconds: 1.2 },
  as_hello: { description: 'AssemblyScript: prints one line, proc_exit(0)', seconds: 0.01 },
  statics: { description: 'prints static and heap state that a reused instance would show if it were not reset; argv: "grow" (4 MiB malloc), "exit N", anything else echoed',
    shortArgs: ['one', 'two'], seconds: 0.01 },
  spawn_wait: { description: 'grid: spawns 3 children of itself (argv[0] = its module path), waits for each by GPID, prints exit codes and a total; child mode `child K [units]` exits with K; argv[1] = units',
    shortArgs: ['300'], seconds: 0.05, grid: true },
  forker: { description: 'grid: fills an array with a checksum, forks; the child continues differently and exits with a code from the state, the parent waits and prints it; argv[1] = optional directory for a file',
    seconds: 0.05, grid: true },
  procstatus: { description: 'grid: prints Gpid and Node from /proc/self/status, then CPU work printing Node at 4 points (re-reading the open file), then Gpid and Node from /proc/<gpid>/status; argv[1] = units',
    shortArgs: ['100'], seconds: 0.1, deterministic: false, grid: true },
  as_rank: { description: 'grid: AssemblyScript, prints rank/size and gpid/parent through sdk/assemblyscript/gridvm.ts', seconds: 0.01, grid: true },
  as_family: { description: 'grid: AssemblyScript, remote fork (child checks the copied heap, exits 42), spawn of itself as `child 5`, wait for each, then ECHILD; through sdk/assemblyscript/gridvm.ts', seconds: 0.05, grid: true },
  memtouch: { description: 'memory of argv[1] MiB filled with data, then steps that dirty one page each (checkpoint benchmarks); argv = MiB steps work',
    shortArgs: ['4', '200', '500'], seconds: 0.3 },
};

/** Path of the built module of guest `name` (C or AssemblyScript). */
export function guestPath(name: string): string {
  return join(guestBuildDir, `${name}.wasm`);
}

/** Path of the gcc-built native reference executable of C guest `name`. */
export function nativePath(name: string): string {
  return join(guestBuildDir, `${name}.native`);
}

/** Whether guest `name` has been built (and, with `native`, its native reference too). */
export function hasGuest(name: string, native = false): boolean {
  return existsSync(guestPath(name)) && (!native || existsSync(nativePath(name)));
}

let clangOk: boolean | undefined;
/** Whether clang can compile and link a wasm32-wasi program here (so the C guests can be built). Cached. */
export function hasClang(): boolean {
  if (clangOk !== undefined) return clangOk;
  const dir = mkdtempSync(join(tmpdir(), 'gridvm-clang-'));
  try {
    const r = spawnSync('clang', ['--target=wasm32-wasi', '--sysroot=/usr', '-x', 'c', '-', '-o', join(dir, 'p.wasm')],
      { input: 'int main(void){return 0;}\n' });
    clangOk = r.status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return clangOk;
}

function info(name: string, lang: GuestLang, source: string): GuestInfo {
  const wasm = guestPath(name);
  const grid = META[name]?.grid === true;
  return { ...base, ...META[name], name, lang, source, wasm, native: lang === 'c' && !grid ? nativePath(name) : undefined,
    built: existsSync(wasm) };
}

/** Every guest with a source file in test/guests/{c,as}, sorted by name, with its metadata. */
export function listGuests(): GuestInfo[] {
  const scan = (sub: string, ext: string, lang: GuestLang) => {
    const dir = join(guestsDir, sub);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => f.endsWith(ext)).map((f) => info(basename(f, ext), lang, join(dir, f)));
  };
  return [...scan('c', '.c', 'c'), ...scan('as', '.ts', 'as')].sort((a, b) => a.name.localeCompare(b.name));
}

/** Metadata of one guest; throws if there is no such source. */
export function guestInfo(name: string): GuestInfo {
  const g = listGuests().find((x) => x.name === name);
  if (!g) throw new Error(`no guest named "${name}" in test/guests/c or test/guests/as`);
  return g;
}
