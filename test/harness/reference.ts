// Reference runners for guest jobs: the same .wasm under Node's own WASI (node:wasi, preview1) and the gcc-built
// .native binary. Both run in a child process, so proc_exit, a trap, node:wasi's abort past ~16 MiB of memory
// (nodejs/node#46777) or a native crash cannot take the test runner down. stdin, stdout and stderr go through temp
// files (no pipes: node:wasi writes synchronously), so output is captured byte for byte.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';

export interface RunOptions {
  /** Arguments after argv[0]. */
  args?: string[];
  /** argv[0]; defaults to the file name without its extension (so .wasm and .native see the same argv[0]). */
  argv0?: string;
  /** The whole environment of the job (nothing is inherited). */
  env?: Record<string, string>;
  /** Bytes on stdin; stdin is empty when omitted. */
  stdin?: Buffer | string;
  /** Kill the job (SIGKILL) after this many ms; default 120 000. */
  timeoutMs?: number;
}

export interface ReferenceOptions extends RunOptions {
  /** Preopened directories: guest path (e.g. "/data") -> host directory. */
  dirs?: Record<string, string>;
}

export interface NativeOptions extends RunOptions {
  cwd?: string;
}

export interface RunResult {
  stdout: Buffer;
  stderr: Buffer;
  /** The job's exit status (proc_exit / return from main); 128 + signal number if it was killed by a signal;
   * 134 if the wasm trapped (see `trap`); -1 if unknown. */
  exitCode: number;
  /** Signal that killed the process (native crash, node:wasi abort, timeout kill), else null. */
  signal: NodeJS.Signals | null;
  /** For runReference: the trap's message (e.g. "unreachable") and the wasm stack, when the guest trapped. */
  trap?: string;
  trapStack?: string;
  timedOut: boolean;
  durationMs: number;
  /** Anything the host process itself wrote to stderr (node warnings, crash reports); empty normally. */
  hostStderr: string;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6,
  SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

// Runs in the child process (CommonJS through `node -e`). argv[1] is the JSON config. Exits with the job's code.
const CHILD_SCRIPT = String.raw`
const { WASI } = require('node:wasi');
const fs = require('node:fs');
const cfg = JSON.parse(process.argv[1]);
const fds = { stdin: fs.openSync(cfg.stdin, 'r'), stdout: fs.openSync(cfg.stdout, 'w'), stderr: fs.openSync(cfg.stderr, 'w') };
let code;
try {
  const module = new WebAssembly.Module(fs.readFileSync(cfg.wasm));
  const wasi = new WASI({ version: 'preview1', args: cfg.args, env: cfg.env, preopens: cfg.dirs, returnOnExit: true,
    stdin: fds.stdin, stdout: fds.stdout, stderr: fds.stderr });
  const instance = new WebAssembly.Instance(module, wasi.getImportObject());
  code = wasi.start(instance);
} catch (err) {
  const trap = err instanceof WebAssembly.RuntimeError || (err instanceof RangeError && /call stack/.test(err.message));
  fs.writeFileSync(cfg.result, JSON.stringify({ trap: trap ? err.message : undefined, error: trap ? undefined : String(err && err.stack || err), stack: String(err && err.stack || '') }));
  code = trap ? 134 : 70;
}
process.exit(typeof code === 'number' ? code : 0);
`;

interface Spawned {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  hostStderr: string;
  durationMs: number;
}

function spawnCaptured(cmd: string, args: string[], opts: { argv0?: string; env: Record<string, string>; cwd?: string;
  stdio: [number | 'ignore', number, number]; timeoutMs: number }): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { argv0: opts.argv0, env: opts.env, cwd: opts.cwd,
      stdio: [opts.stdio[0], opts.stdio[1], opts.stdio[2]] });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, hostStderr: '', durationMs: performance.now() - t0 });
    });
  });
}

function exitCodeOf(s: Spawned): number {
  if (s.code !== null) return s.code;
  if (s.signal) return 128 + (SIGNALS[s.signal] ?? 0);
  return -1;
}

/** Creates the temp files for one run; `finish` reads the outputs and removes everything. */
function ioFiles(stdin: Buffer | string | undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'gridvm-ref-'));
  const paths = { stdin: join(dir, 'stdin'), stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr'),
    host: join(dir, 'host-stderr'), result: join(dir, 'result.json') };
  writeFileSync(paths.stdin, stdin ?? '');
  const read = (p: string): Buffer => { try { return readFileSync(p); } catch { return Buffer.alloc(0); } };
  return { dir, paths, read, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const defaultArgv0 = (path: string) => basename(path, extname(path));

/** Runs `wasmPath` under node:wasi (preview1) in a child `node --no-warnings` process. */
export async function runReference(wasmPath: string, opts: ReferenceOptions = {}): Promise<RunResult> {
  const io = ioFiles(opts.stdin);
  const host = openSync(io.paths.host, 'w');
  try {
    const cfg = { wasm: wasmPath, args: [opts.argv0 ?? defaultArgv0(wasmPath), ...(opts.args ?? [])],
      env: opts.env ?? {}, dirs: opts.dirs ?? {}, ...io.paths };
    const s = await spawnCaptured(process.execPath, ['--no-warnings', '-e', CHILD_SCRIPT, JSON.stringify(cfg)], {
      env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', host, host], timeoutMs: opts.timeoutMs ?? 120_000 });
    let trap: string | undefined;
    let trapStack: string | undefined;
    let hostStderr = io.read(io.paths.host).toString();
    const result = io.read(io.paths.result);
    if (result.length) {
      const r = JSON.parse(result.toString()) as { trap?: string; error?: string; stack?: string };
      trap = r.trap;
      trapStack = r.trap ? r.stack : undefined;
      if (r.error) hostStderr += r.error;
    }
    return { stdout: io.read(io.paths.stdout), stderr: io.read(io.paths.stderr), exitCode: exitCodeOf(s),
      signal: s.signal, trap, trapStack, timedOut: s.timedOut, durationMs: s.durationMs, hostStderr };
  } finally {
    closeSync(host);
    io.cleanup();
  }
}

/** Runs a native executable (the gcc-built reference of a C guest) with exactly the given environment. */
export async function runNative(path: string, opts: NativeOptions = {}): Promise<RunResult> {
  const io = ioFiles(opts.stdin);
  const fds: [number, number, number] = [openSync(io.paths.stdin, 'r'), openSync(io.paths.stdout, 'w'),
    openSync(io.paths.stderr, 'w')];
  try {
    const s = await spawnCaptured(path, opts.args ?? [], { argv0: opts.argv0 ?? defaultArgv0(path),
      env: opts.env ?? {}, cwd: opts.cwd, stdio: fds, timeoutMs: opts.timeoutMs ?? 120_000 });
    return { stdout: io.read(io.paths.stdout), stderr: io.read(io.paths.stderr), exitCode: exitCodeOf(s),
      signal: s.signal, timedOut: s.timedOut, durationMs: s.durationMs, hostStderr: '' };
  } finally {
    for (const fd of fds) closeSync(fd);
    io.cleanup();
  }
}
