// The gridvm CLI end to end, as a user runs it: `node bin/gridvm.js ...` in a child process (dist/ must be built;
// `npm test` builds it first). Directories, environment, arguments, exit codes, checkpoints, inspect, resume, deltas,
// stdin across a resume, and SIGKILL at a random moment while checkpoints are being written.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChain } from '../../runtime-node/checkpoints.js';
import { createPageEngine } from '../../vm/index.js';
import { guestPath, hasClang, nativePath } from '../harness/guests.js';
import { runNative } from '../harness/reference.js';
import { filesOf } from '../harness/util.js';

const cli = fileURLToPath(new URL('../../bin/gridvm.js', import.meta.url));
const needC = !hasClang() && process.env.CI !== 'true';
const tmp = mkdtempSync(join(tmpdir(), 'gridvm-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// A cache of instrumented modules of our own: an entry left in ~/.cache/gridvm by another version of the
// instrumenter is served under the same key (see the report on INSTRUMENT_VERSION), which these tests must not see.
const childEnv: NodeJS.ProcessEnv = { ...process.env, GRIDVM_CACHE_DIR: join(tmp, 'module-cache') };
let dirCount = 0;
const freshDir = (tag: string): string => {
  const d = join(tmp, `${tag}-${++dirCount}`);
  mkdirSync(d, { recursive: true });
  return d;
};

interface Cli {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** the child was killed by `killWhen` */
  killed: boolean;
}

interface CliOptions {
  /** bytes piped to stdin (stdin is /dev/null otherwise) */
  input?: Buffer;
  /** SIGKILL the child once this resolves (unless it has exited by then) */
  killWhen?: (exited: () => boolean) => Promise<void>;
  timeoutMs?: number;
}

/** Runs `gridvm ...args` and collects its output. */
function gridvm(args: string[], o: CliOptions = {}): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: childEnv, stdio: [o.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let done = false;
    let killed = false;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (o.input) {
      child.stdin!.on('error', () => {}); // the job may exit before reading everything
      child.stdin!.end(o.input);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    o.killWhen?.(() => done).then(() => {
      if (!done) killed = child.kill('SIGKILL');
    }, reject);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      done = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err), killed });
    });
  });
}

const text = (b: Buffer): string => b.toString('latin1');
const show = (r: Cli): string => `exit ${r.code} signal ${r.signal}\n--- stderr ---\n${r.stderr.toString()}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


interface Inspected {
  file: string;
  kind: 'full' | 'delta';
  seq: number;
  chainLength: number;
  moduleHash: string;
  memoryBytes: number;
  memoryPages: number;
  stdoutBytes: number;
  stderrBytes: number;
  fuelUsed: number;
  elapsedMs: number | null;
  limits: { fuel?: number };
}

async function inspectJson(ck: string): Promise<Inspected> {
  const r = await gridvm(['inspect', '--json', ck]);
  expect(r.code, show(r)).toBe(0);
  return JSON.parse(r.stdout.toString()) as Inspected;
}

const ckptFiles = (dir: string): string[] => readdirSync(dir).filter((f) => /^ckpt-\d{6}\.gvm$/.test(f)).sort();

/** Every checkpoint file in `dir` decodes (with the bases of deltas): none is half-written. */
function expectAllLoad(dir: string): void {
  const engine = createPageEngine('auto');
  for (const f of ckptFiles(dir)) expect(() => loadChain(join(dir, f), engine), f).not.toThrow();
}

// A ~1 s job under gridvm on the 2-core dev machine: n-body, 40 energy lines spread over the run.
const LONG = ['6000000'];
let nbodyRef: Buffer = Buffer.alloc(0);

describe.skipIf(needC)('gridvm CLI', () => {
  beforeAll(async () => {
    const n = await runNative(nativePath('nbody'), { args: LONG });
    expect(n.exitCode).toBe(0);
    nbodyRef = n.stdout;
    expect(nbodyRef.toString().split('\n').filter((l) => l.startsWith('energy')).length).toBe(41);
  });

  describe('run', () => {
    it('passes the arguments after -- and --env variables to the job', async () => {
      const r = await gridvm(['run', '--env', 'HELLO_NAME=grid user', '--env', 'GRIDVM_RANK=7', '--env', 'EMPTY=', guestPath('hello'),
        '--', 'one', 'two words', '--not-a-flag', '']);
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout.toString()).toBe(
        'hello from gridvm\nargc=5\nargv[0]=hello.wasm\nargv[1]=one\nargv[2]=two words\nargv[3]=--not-a-flag\nargv[4]=\n' +
          'env GRIDVM_RANK=7\nenv GRIDVM_SIZE=<unset>\nenv GRIDVM_JOB=<unset>\nenv HELLO_NAME=grid user\nenv HOME=<unset>\n',
      );
      expect(r.stderr.toString()).toBe('');
    });

    it("exits with the job's exit code, and 134 with the guest stack on a trap", async () => {
      const [e, t] = await Promise.all([gridvm(['run', guestPath('exitcode')]), gridvm(['run', guestPath('trap')])]);
      expect(e.code, show(e)).toBe(3);
      expect(e.stdout.toString()).toBe('exitcode: to stdout 1\nexitcode: to stdout 2\n');
      expect(e.stderr.toString()).toBe('exitcode: to stderr 1\nexitcode: exiting with 3\n');
      expect(t.code, show(t)).toBe(134);
      expect(t.stdout.toString()).toBe('trap: about to trap\n');
      expect(t.stderr.toString()).toMatch(/unreachable[\s\S]*level_three[\s\S]*level_two[\s\S]*level_one/);
    });

    it('--dir HOST::GUEST lets the job write files on the host (the same files as the native build)', async () => {
      const host = freshDir('dir-rw');
      const native = freshDir('dir-native');
      const [r, n] = await Promise.all([
        gridvm(['run', '--dir', `${host}::/data`, guestPath('fileio'), '--', '/data', '5']),
        runNative(nativePath('fileio'), { args: [native, '5'] }),
      ]);
      expect(r.code, show(r)).toBe(0);
      expect(n.exitCode).toBe(0);
      expect(text(r.stdout)).toBe(text(n.stdout));
      const files = filesOf(host);
      expect(Object.keys(files)).toEqual(['data.bin', 'log.txt', 'renamed.txt', 'sub/alpha.txt', 'sub/beta.txt', 'sub/gamma.txt']);
      expect(files).toEqual(filesOf(native));
    });

    it('--dir HOST::GUEST:ro refuses writes: the job reports the error and the host directory is untouched', async () => {
      const host = freshDir('dir-ro');
      writeFileSync(join(host, 'existing.txt'), 'keep me\n');
      const r = await gridvm(['run', '--dir', `${host}::/data:ro`, guestPath('fileio'), '--', '/data', '5']);
      expect(r.code, show(r)).toBe(1); // fileio's die(): exit(1) after printing the failed call
      expect(r.stderr.toString()).toMatch(/^fileio: create data\.bin: .+$/m);
      expect(r.stdout.toString()).not.toContain('fileio: done');
      expect(filesOf(host)).toEqual({ 'existing.txt': 'keep me\n' });
    });
  });

  describe('checkpoints, inspect and resume', () => {
    let dir = '';
    let runOut: Cli;
    beforeAll(async () => {
      dir = freshDir('ckpt');
      runOut = await gridvm(['run', '--checkpoint-every', '50ms', '--checkpoint-dir', dir, guestPath('nbody'), '--', ...LONG]);
    });

    it('--checkpoint-every writes checkpoints and a `latest` pointer without changing the output', () => {
      expect(runOut.code, show(runOut)).toBe(0);
      expect(text(runOut.stdout)).toBe(text(nbodyRef));
      const files = ckptFiles(dir);
      expect(files.length, 'checkpoints of a ~1 s run every 50 ms').toBeGreaterThanOrEqual(5);
      const latest = readFileSync(join(dir, 'latest'), 'utf8').trim();
      expect(latest).toBe(files.at(-1));
      expect(readdirSync(dir).filter((f) => /^job-[0-9a-f]{16}\.wasm$/.test(f)).length).toBe(1);
      expectAllLoad(dir);
    });

    it('inspect --json shows sane stdoutBytes, stderrBytes, memoryBytes, moduleHash and fuelUsed; the human form prints them', async () => {
      const files = ckptFiles(dir);
      const mid = files[Math.floor(files.length / 2)]!;
      const [latest, middle, human] = await Promise.all([inspectJson(dir), inspectJson(join(dir, mid)), gridvm(['inspect', dir])]);
      expect(latest.file).toBe(join(dir, files.at(-1)!));
      expect(latest.kind).toBe('full');
      expect(latest.seq).toBe(files.length);
      for (const d of [latest, middle]) {
        expect(d.stdoutBytes).toBeGreaterThan(0);
        expect(d.stdoutBytes).toBeLessThanOrEqual(nbodyRef.length);
        expect(d.stderrBytes).toBe(0); // nbody writes stderr only when done
        expect(d.memoryBytes % 65536).toBe(0);
        expect(d.memoryBytes).toBe(d.memoryPages * 65536);
        expect(d.memoryBytes).toBeGreaterThan(0);
        expect(d.memoryBytes).toBeLessThan(16 * 1024 * 1024);
        expect(Number.isSafeInteger(d.fuelUsed)).toBe(true);
        expect(d.fuelUsed).toBeGreaterThan(0);
      }
      // the middle checkpoint is earlier in every respect
      expect(middle.seq).toBeLessThan(latest.seq);
      expect(middle.stdoutBytes).toBeLessThan(latest.stdoutBytes);
      expect(middle.fuelUsed).toBeLessThan(latest.fuelUsed);
      // the module hash is the SHA-256 of the instrumented module stored beside the checkpoints
      expect(latest.moduleHash).toMatch(/^[0-9a-f]{64}$/);
      expect(middle.moduleHash).toBe(latest.moduleHash);
      const job = readFileSync(join(dir, `job-${latest.moduleHash.slice(0, 16)}.wasm`));
      expect(createHash('sha256').update(job).digest('hex')).toBe(latest.moduleHash);
      expect(human.code, show(human)).toBe(0);
      const h = human.stdout.toString();
      expect(h).toMatch(new RegExp(`^kind +full$`, 'm'));
      expect(h).toMatch(new RegExp(`^module +${latest.moduleHash}$`, 'm'));
      expect(h).toMatch(new RegExp(`^memory +[0-9.]+ KiB \\(${latest.memoryPages} pages`, 'm'));
      expect(h).toMatch(new RegExp(`^stdout bytes +${latest.stdoutBytes}$`, 'm'));
      expect(h).toMatch(new RegExp(`^stderr bytes +${latest.stderrBytes}$`, 'm'));
      expect(h).toMatch(new RegExp(`^fuel used +${latest.fuelUsed}$`, 'm'));
    });

    it('a checkpoint records how long the job had run (elapsedMs)', async () => {
      const files = ckptFiles(dir);
      const d = await inspectJson(join(dir, files.at(-1)!));
      // the latest checkpoint of a run checkpointing every 50 ms comes after >= (checkpoints - 1) * 50 ms of running
      expect(d.elapsedMs).toBeGreaterThanOrEqual((files.length - 1) * 50);
    });

    it('resume prints exactly the stdout that follows the checkpoint and exits with the job code', async () => {
      const files = ckptFiles(dir);
      const mid = join(dir, files[Math.floor(files.length / 2)]!);
      const [dl, dm] = await Promise.all([inspectJson(dir), inspectJson(mid)]);
      const [rl, rm] = await Promise.all([gridvm(['resume', dir]), gridvm(['resume', mid])]);
      expect(rl.code, show(rl)).toBe(0);
      expect(rm.code, show(rm)).toBe(0);
      expect(text(rl.stdout)).toBe(text(nbodyRef.subarray(dl.stdoutBytes)));
      expect(text(rm.stdout)).toBe(text(nbodyRef.subarray(dm.stdoutBytes)));
      expect(rl.stderr.toString()).toBe('nbody: done\n');
    });

    it('a resumed job keeps its --fuel limit: run and resume both stop with 134 at the same point', async () => {
      const d = freshDir('fuel');
      const fuel = 40_000_000;
      const r = await gridvm(['run', '--fuel', String(fuel), '--checkpoint-every', '50ms', '--checkpoint-dir', d, guestPath('nbody'), '--', ...LONG]);
      expect(r.code, show(r)).toBe(134);
      expect(r.stderr.toString()).toMatch(/fuel exhausted/);
      expect(r.stdout.length).toBeLessThan(nbodyRef.length);
      expect(text(nbodyRef).startsWith(text(r.stdout))).toBe(true);
      const first = join(d, ckptFiles(d)[0]!);
      const info = await inspectJson(first);
      expect(info.limits.fuel).toBe(fuel);
      const res = await gridvm(['resume', first]);
      expect(res.code, show(res)).toBe(134);
      expect(res.stderr.toString()).toMatch(/fuel exhausted/);
      expect(text(res.stdout)).toBe(text(r.stdout.subarray(info.stdoutBytes)));
    });

    const memoryPages: Record<string, number> = {};
    for (const tracked of [false, true]) {
      it(`--delta${tracked ? ' --track-dirty' : ''} writes delta checkpoints that inspect shows as deltas and that resume byte for byte`, async () => {
        const d = freshDir(tracked ? 'delta-tracked' : 'delta');
        const r = await gridvm(['run', '--delta', ...(tracked ? ['--track-dirty'] : []), '--checkpoint-every', '50ms', '--checkpoint-dir', d, guestPath('nbody'), '--', ...LONG]);
        expect(r.code, show(r)).toBe(0);
        expect(text(r.stdout)).toBe(text(nbodyRef));
        expectAllLoad(d);
        const engine = createPageEngine('auto');
        const files = ckptFiles(d);
        const deltas = files.filter((f) => loadChain(join(d, f), engine).at(-1)!.header.kind === 'delta');
        expect(deltas.length, `${deltas.length} deltas among ${files.length} checkpoints`).toBeGreaterThanOrEqual(Math.min(3, files.length - 1));
        const delta = join(d, deltas[Math.floor(deltas.length / 2)]!);
        const [di, dl] = await Promise.all([inspectJson(delta), inspectJson(d)]);
        expect(di.kind).toBe('delta');
        expect(di.chainLength).toBeGreaterThan(1);
        // --track-dirty runs the tracked module: one page more (the dirty-page map), invisible to the job
        memoryPages[String(tracked)] = di.memoryPages as number;
        if (tracked && memoryPages.false) expect(di.memoryPages).toBe(memoryPages.false + 1);
        const [rd, rl] = await Promise.all([gridvm(['resume', delta]), gridvm(['resume', d])]);
        expect(rd.code, show(rd)).toBe(0);
        expect(rl.code, show(rl)).toBe(0);
        expect(text(rd.stdout)).toBe(text(nbodyRef.subarray(di.stdoutBytes)));
        expect(text(rl.stdout)).toBe(text(nbodyRef.subarray(dl.stdoutBytes)));
      });
    }
  });

  it('stdin piped into run, and again into resume: the combined output is that of one uninterrupted run', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 6000; i++) lines.push(`line ${i} ${'abcdéfghij'.repeat(i % 7)}`);
    const input = Buffer.from(`${lines.join('\n')}\nno newline at the end`);
    const d = freshDir('stdin');
    const [plain, ck] = await Promise.all([
      gridvm(['run', guestPath('stdin_echo')], { input }),
      gridvm(['run', '--checkpoint-every', '10ms', '--checkpoint-dir', d, guestPath('stdin_echo')], { input }),
    ]);
    expect(plain.code, show(plain)).toBe(0);
    expect(plain.stdout.toString()).toContain('NO NEWLINE AT THE END');
    expect(ck.code, show(ck)).toBe(0);
    expect(text(ck.stdout)).toBe(text(plain.stdout));
    expect(text(ck.stderr)).toBe(text(plain.stderr));
    const files = ckptFiles(d);
    expect(files.length).toBeGreaterThanOrEqual(2);
    // a checkpoint in the middle of the input, and the latest one
    const picks = [...new Set([join(d, files[Math.floor(files.length / 2)]!), d])];
    for (const p of picks) {
      const info = await inspectJson(p);
      const r = await gridvm(['resume', p], { input });
      expect(r.code, show(r)).toBe(0);
      expect(text(Buffer.concat([plain.stdout.subarray(0, info.stdoutBytes), r.stdout]))).toBe(text(plain.stdout));
      expect(text(Buffer.concat([plain.stderr.subarray(0, info.stderrBytes), r.stderr]))).toBe(text(plain.stderr));
    }
    const middle = await inspectJson(picks[0]!);
    expect(middle.stdoutBytes, 'the middle checkpoint is mid-input').toBeLessThan(plain.stdout.length);
  });

  it('SIGKILL at a random moment leaves the latest checkpoint usable: resume finishes the output exactly', async () => {
    let killedTrials = 0;
    for (let trial = 0; trial < 6; trial++) {
      const d = freshDir(`kill-${trial}`);
      const delay = Math.floor(Math.random() * 250); // the run lasts ~0.5 s on a quiet machine
      const r = await gridvm(['run', '--checkpoint-every', '20ms', '--checkpoint-dir', d, guestPath('nbody'), '--', ...LONG], {
        killWhen: async (exited) => {
          while (!exited() && !existsSync(join(d, 'latest'))) await sleep(5);
          await sleep(delay);
        },
      });
      const ctx = `trial ${trial}, killed ${delay} ms after the first checkpoint`;
      if (r.killed && r.signal !== null) {
        killedTrials++;
        expect(r.signal, ctx).toBe('SIGKILL');
      } else {
        // the run finished by itself (possibly just as the kill was sent)
        expect(r.code, `${ctx}: ${show(r)}`).toBe(0);
      }
      // what the killed run printed is a prefix of the real output
      expect(text(nbodyRef).startsWith(text(r.stdout)), ctx).toBe(true);
      expect(existsSync(join(d, 'latest')), ctx).toBe(true);
      expectAllLoad(d);
      const info = await inspectJson(d);
      expect(r.stdout.length, ctx).toBeGreaterThanOrEqual(info.stdoutBytes);
      const res = await gridvm(['resume', d]);
      expect(res.code, `${ctx}: ${show(res)}`).toBe(0);
      expect(text(Buffer.concat([nbodyRef.subarray(0, info.stdoutBytes), res.stdout])), ctx).toBe(text(nbodyRef));
    }
    expect(killedTrials, 'trials where the run was still going when killed').toBeGreaterThanOrEqual(5);
  });
});
