// The guest jobs are deterministic and the reference runners work: each C guest run under node:wasi prints exactly
// what its gcc-built native twin prints (stdout, stderr, exit status, and the files it writes).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { guestPath, hasClang, hasGuest, listGuests, nativePath } from '../harness/guests.js';
import { runNative, runReference, type RunResult } from '../harness/reference.js';

const clang = hasClang();
const temps: string[] = [];
const tempDir = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `gridvm-guest-${tag}-`));
  temps.push(d);
  return d;
};
afterAll(() => { for (const d of temps) rmSync(d, { recursive: true, force: true }); });

const show = (r: RunResult) => ({ exitCode: r.exitCode, signal: r.signal, trap: r.trap, timedOut: r.timedOut,
  stdout: r.stdout.toString(), stderr: r.stderr.toString(), hostStderr: r.hostStderr });

/** Every file under `dir` (relative path -> contents), sorted. */
function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) { out[`${relative(dir, p)}/`] = '<dir>'; walk(p); }
      else out[relative(dir, p)] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

function stdinText(): string {
  const words = ['alpha', 'Beta', 'gamma', 'delta-9', 'épsilon', 'ZETA', 'eta_theta', ''];
  const lines: string[] = [];
  for (let i = 0; i < 1500; i++) lines.push(`${i}: ${words.slice(0, 1 + (i * 7) % words.length).join(' ')}`);
  return `${lines.join('\n')}\nlast line without newline`;
}

interface Case {
  name: string;
  args?: string[];
  env?: Record<string, string>;
  stdin?: string;
  exitCode: number;
  check?: (r: RunResult) => void;
}

const cases: Case[] = [
  { name: 'hello', args: ['first arg', 'x'], env: { GRIDVM_RANK: '2', HELLO_NAME: 'world', OTHER: 'y' }, exitCode: 0,
    check: (r) => expect(r.stdout.toString()).toContain('hello from gridvm\nargc=3\nargv[0]=hello\nargv[1]=first arg\n') },
  { name: 'exitcode', exitCode: 3, check: (r) => expect(r.stderr.toString()).toContain('exiting with 3') },
  { name: 'nbody', args: ['200000'], exitCode: 0,
    check: (r) => expect(r.stdout.toString().split('\n').filter((l) => l.startsWith('energy')).length).toBe(41) },
  { name: 'recursion', exitCode: 0, check: (r) => expect(r.stdout.toString()).toContain('ackermann(3, 9) = 4093') },
  { name: 'malloc_churn', exitCode: 0, check: (r) => expect(r.stdout.toString()).toMatch(/final checksum [0-9a-f]{16}/) },
  { name: 'stdin_echo', stdin: stdinText(), exitCode: 0,
    check: (r) => expect(r.stdout.toString()).toContain('  1501 | LAST LINE WITHOUT NEWLINE\nlines=1501') },
  { name: 'clocks_random', exitCode: 0, check: (r) => expect(r.stdout.toString()).toContain('PASS: 0 failure(s)') },
  { name: 'rank', args: ['200000'], env: { GRIDVM_RANK: '1', GRIDVM_SIZE: '3' }, exitCode: 0,
    check: (r) => expect(r.stdout.toString()).toMatch(/^rank 1\/3 blocks 16 primes=\d+ sum=\d+\n$/) },
];

describe.skipIf(!clang)('C guests under node:wasi match their native builds', () => {
  for (const c of cases) {
    it(`${c.name} prints the same stdout/stderr and exit status as native`, async () => {
      expect(hasGuest(c.name, true), `${c.name} not built`).toBe(true);
      const opts = { args: c.args, env: c.env, stdin: c.stdin };
      // eslint-disable-next-line prefer-const
      let [wasm, native] = await Promise.all([runReference(guestPath(c.name), opts), runNative(nativePath(c.name), opts)]);
      // node:wasi's own timing under a loaded machine can fail a clock check (its nanosleep has returned early): the
      // reference runtime, not the guest, gets one more run (as in test/integration/reference.test.ts)
      if (c.name === 'clocks_random' && wasm.exitCode !== c.exitCode) wasm = await runReference(guestPath(c.name), opts);
      expect(show(wasm)).toEqual(show(native));
      expect(wasm.exitCode).toBe(c.exitCode);
      c.check?.(wasm);
    });
  }

  it('fileio writes the same files and output as native (fds open across the computation)', async () => {
    const wasmDir = tempDir('fileio-wasm');
    const nativeDir = tempDir('fileio-native');
    const [wasm, native] = await Promise.all([
      runReference(guestPath('fileio'), { args: ['/data', '5'], dirs: { '/data': wasmDir } }),
      runNative(nativePath('fileio'), { args: [nativeDir, '5'] }),
    ]);
    expect(show(wasm)).toEqual(show(native));
    expect(wasm.exitCode).toBe(0);
    const files = snapshotDir(wasmDir);
    expect(Object.keys(files)).toEqual(['data.bin', 'log.txt', 'renamed.txt', 'sub/', 'sub/alpha.txt', 'sub/beta.txt',
      'sub/gamma.txt']);
    expect(files).toEqual(snapshotDir(nativeDir));
    expect(wasm.stdout.toString()).toContain('sub/ has 3 entries: alpha.txt beta.txt gamma.txt\n');
  });

  it('rank slices add up to the single-rank result', async () => {
    const parse = (r: RunResult) => {
      const m = /primes=(\d+) sum=(\d+)/.exec(r.stdout.toString());
      if (!m) throw new Error(`bad rank output: ${r.stdout}`);
      return [BigInt(m[1]), BigInt(m[2])];
    };
    const runs = await Promise.all([0, 1, 2, 3].map((rank) => runReference(guestPath('rank'),
      { args: ['100000'], env: { GRIDVM_RANK: String(rank), GRIDVM_SIZE: '4' } })));
    const whole = parse(await runReference(guestPath('rank'), { args: ['100000'] }));
    const parts = runs.map(parse);
    expect(parts.reduce((a, p) => a + p[0], 0n)).toBe(whole[0]);
    expect(parts.reduce((a, p) => a + p[1], 0n)).toBe(whole[1]);
    expect(whole[0]).toBe(9592n); // pi(10^5)
  });

  it('trap traps with unreachable inside level_three, named in the stack', async () => {
    const r = await runReference(guestPath('trap'));
    expect(r.stdout.toString()).toBe('trap: about to trap\n');
    expect(r.trap).toBe('unreachable');
    expect(r.exitCode).toBe(134);
    const stack = r.trapStack ?? '';
    expect(stack.indexOf('level_three')).toBeGreaterThan(-1);
    expect(stack.indexOf('level_three')).toBeLessThan(stack.indexOf('level_two'));
    expect(stack.indexOf('level_two')).toBeLessThan(stack.indexOf('level_one'));
    const native = await runNative(nativePath('trap'));
    expect(native.signal).toBe('SIGILL');
  });

  it('endless never ends: the runner times out after it printed its start line', async () => {
    const r = await runReference(guestPath('endless'), { timeoutMs: 1500 });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout.toString()).toBe('endless: started\n');
  });

  it('recursion: the recursive functions contain no loops (only function-entry preemption points)', async () => {
    const { default: binaryen } = await import('binaryen');
    const mod = binaryen.readBinary(readFileSync(guestPath('recursion')));
    try {
      for (const fn of ['fib', 'ackermann', 'build', 'walk', 'tree_depth', 'destroy', 'is_even', 'is_odd']) {
        const f = mod.getFunction(fn);
        expect(f, `function ${fn} in the name section`).toBeTruthy();
        const text = binaryen.emitText(binaryen.getFunctionInfo(f).body);
        expect(text, `${fn} has a loop`).not.toContain('(loop');
        expect(text, `${fn} calls itself`).toMatch(/\(call \$(fib|ackermann|build|walk|tree_depth|destroy|is_even|is_odd)\b/);
      }
    } finally {
      mod.dispose();
    }
  });
});

describe('AssemblyScript guests under node:wasi', () => {
  it('as_hello prints one line and exits 0', async () => {
    const r = await runReference(guestPath('as_hello'));
    expect(show(r)).toMatchObject({ exitCode: 0, stdout: 'hello from gridvm (AssemblyScript)\n', stderr: '' });
  });

  it('as_gc is deterministic and imports only wasi_snapshot_preview1', async () => {
    const mod = new WebAssembly.Module(readFileSync(guestPath('as_gc')));
    expect(new Set(WebAssembly.Module.imports(mod).map((i) => i.module))).toEqual(new Set(['wasi_snapshot_preview1']));
    expect(WebAssembly.Module.exports(mod).map((e) => e.name).sort()).toEqual(['_start', 'memory']);
    const [a, b] = await Promise.all([runReference(guestPath('as_gc')), runReference(guestPath('as_gc'))]);
    expect(show(a)).toEqual(show(b));
    expect(a.exitCode).toBe(0);
    expect(a.stdout.toString()).toMatch(/round 40: live=\d+ ring=512 checksum=[0-9a-f]{16}.*\nfinal checksum [0-9a-f]{16}\n$/);
  });
});

describe('guest list', () => {
  it('lists every guest source with metadata and a built module', () => {
    const guests = listGuests();
    const names = guests.map((g) => g.name);
    expect(names).toEqual(expect.arrayContaining(['as_gc', 'as_hello']));
    if (clang) {
      expect(names).toEqual(expect.arrayContaining(['clocks_random', 'endless', 'exitcode', 'fileio', 'hello',
        'malloc_churn', 'memory_bomb', 'nbody', 'rank', 'recursion', 'stdin_echo', 'trap']));
    }
    for (const g of guests) {
      expect(g.description, g.name).not.toBe('');
      if (g.lang === 'as' || clang) expect(g.built, `${g.name} built`).toBe(true);
    }
  });
});
