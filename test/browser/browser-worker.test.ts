// Acceptance: "Same VM in the browser from day one". The CPU-heavy guest (nbody) runs with vm/ and kernel/ inside a
// Web Worker in Debian's Chromium (driven by playwright-core, no browser download), is checkpointed there at several
// fuel points, and every checkpoint the browser encoded is resumed on Node: the output must be byte-identical to an
// uninterrupted Node run. The reverse direction too: a Node checkpoint resumes in the browser, which checkpoints
// again, and Node finishes the job.
//
// Needs dist/ (`node tools/build.mjs`, which `npm test` runs first): dist/browser/worker.js is the Web Worker node and
// resumeInWorker runs dist/runtime-node. Without /usr/bin/chromium the test is skipped, except in CI where it fails.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointMeta } from '../../runtime-node/checkpoints.js';
import { loadChain } from '../../runtime-node/checkpoints.js';
import { resumeInWorker } from '../../runtime-node/resume.js';
import { run, type RunResult } from '../../runtime-node/run.js';
import { createPageEngine, prepareJob, type CompiledJob, type InstrumentInfo } from '../../vm/index.js';
import { guestPath, hasGuest, repoRoot } from '../harness/guests.js';
import { concat, pool, spread } from '../harness/util.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** nbody steps: ~0.6 s in this Chromium's worker and in Node on the 2-core dev machine */
const STEPS = '8000000';
const POINTS = 5;

const inCI = process.env.CI === 'true';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !inCI) console.warn(`browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium); in CI they fail`);

const distBrowser = join(repoRoot, 'dist/browser');
const pageDir = join(repoRoot, 'test/browser');

interface PageResult {
  done: { type: 'done'; exitCode: number | null; trap?: string; suspended?: boolean; fuelUsed: number; elapsedMs: number; pageEngine: string };
  wallMs: number;
  crossOriginIsolated: boolean;
  stdout: string;
  stderr: string;
  checkpoints: Array<{ seq: number; stdoutBytes: number; stderrBytes: number; fuelUsed: number; bytes: string }>;
}

interface PageRequest {
  moduleUrl: string;
  info: InstrumentInfo;
  args: string[];
  env: string[];
  checkpointAtFuel?: number[];
  meta?: Record<string, unknown>;
  resumeUrls?: string[];
}

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const dec = new TextDecoder();

/** Rebuild dist/browser/worker.js if any source it bundles is newer (a stale bundle would test old code). */
function ensureBundle(): void {
  const bundle = join(distBrowser, 'worker.js');
  const built = existsSync(bundle) ? statSync(bundle).mtimeMs : 0;
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) t = Math.max(t, newest(p));
      else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
    }
    return t;
  };
  if (Math.max(...['vm', 'kernel', 'runtime-browser'].map((d) => newest(join(repoRoot, d)))) > built) {
    execFileSync(process.execPath, [join(repoRoot, 'tools/build-browser.mjs')], { cwd: repoRoot, stdio: 'inherit' });
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

/** Static files (dist/browser/, the test page) and in-memory blobs, cross-origin isolated (COOP + COEP). */
function startServer(blobs: Map<string, Uint8Array>): Promise<{ server: Server; base: string }> {
  const files: Record<string, string> = {
    '/': join(pageDir, 'page.html'),
    '/page.js': join(pageDir, 'page.js'),
    '/worker.js': join(distBrowser, 'worker.js'),
    '/worker.js.map': join(distBrowser, 'worker.js.map'),
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    const blob = path.startsWith('/blob/') ? blobs.get(path.slice('/blob/'.length)) : undefined;
    const file = files[path];
    if (req.method !== 'GET' || (!blob && !(file && existsSync(file)))) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    const body = blob ?? readFileSync(file!);
    res.writeHead(200, { ...headers, 'Content-Type': blob ? 'application/octet-stream' : (TYPES[extname(file!)] ?? TYPES['.html']!), 'Content-Length': body.length });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
}

describe.skipIf(!haveChromium && !inCI)('the same VM in a browser Web Worker (Chromium)', () => {
  let tmp = '';
  const blobs = new Map<string, Uint8Array>();
  const log: string[] = [];
  let server: Server | undefined;
  let base = '';
  let context: BrowserContext | undefined;
  let page: Page;
  let job: CompiledJob;
  let moduleFile = '';
  let full: RunResult;
  let nodeMs = 0;
  let launchMs = 0;

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing: CI must run the browser tests (apt-get install chromium)`);
    if (!hasGuest('nbody')) throw new Error(`${guestPath('nbody')} is missing: the guest build (vitest globalSetup) did not build it`);
    ensureBundle();
    tmp = mkdtempSync(join(tmpdir(), 'gridvm-browser-'));
    // instrument on the "coordinator" (Node), exactly as the Node runtime does; the browser gets the result
    job = await prepareJob(new Uint8Array(readFileSync(guestPath('nbody'))));
    moduleFile = `job-${job.hash.slice(0, 16)}.wasm`; // as CheckpointWriter.saveModule names it
    blobs.set('job.wasm', job.bytes);
    ({ server, base } = await startServer(blobs));
    const tLaunch = performance.now();
    context = await chromium.launchPersistentContext(join(tmp, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(`${base}/`);
    await page.waitForFunction(() => (window as unknown as { gridvmReady?: boolean }).gridvmReady === true, undefined, { timeout: 10_000 });
    launchMs = performance.now() - tLaunch;
    // the reference: an uninterrupted run on Node
    const t0 = performance.now();
    full = await run(guestPath('nbody'), { args: [STEPS] });
    nodeMs = performance.now() - t0;
    expect(full.exitCode).toBe(0);
    expect(full.stdout.length).toBeGreaterThan(1000);
  }, 30_000);

  afterAll(async () => {
    await context?.close().catch(() => {});
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 20_000);

  const metaFor = (elapsedMs = 0): CheckpointMeta => ({ moduleFile, info: job.info, mounts: [], limits: {}, elapsedMs });

  async function runInBrowser(req: Omit<PageRequest, 'moduleUrl' | 'info'>): Promise<PageResult> {
    const r = await page
      .evaluate((o) => (window as unknown as { gridvmRun: (o: PageRequest) => Promise<PageResult> }).gridvmRun(o), {
        moduleUrl: '/blob/job.wasm',
        info: job.info,
        ...req,
      })
      .catch((e: Error) => {
        throw new Error(`${e.message}\n${log.join('\n')}`);
      });
    expect(r.crossOriginIsolated, 'the test page is cross-origin isolated (COOP/COEP)').toBe(true);
    expect(r.done.trap, `the job trapped in the browser\n${log.join('\n')}`).toBeUndefined();
    return r;
  }

  /** Store a checkpoint file the way runtime-node/checkpoints.ts lays a checkpoint directory out. */
  function store(dir: string, seq: number, bytes: Uint8Array): string {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, moduleFile), job.bytes);
    const path = join(dir, `ckpt-${String(seq).padStart(6, '0')}.gvm`);
    writeFileSync(path, bytes);
    return path;
  }

  it('nbody runs in a Web Worker with the output of Node; each checkpoint taken there resumes on Node byte-identically', async () => {
    const points = spread(full.fuelUsed, POINTS);
    const r = await runInBrowser({ args: ['nbody.wasm', STEPS], env: [], checkpointAtFuel: points, meta: { ...metaFor() } });
    console.log(
      `nbody ${STEPS} steps: browser worker ${r.done.elapsedMs.toFixed(0)} ms running (${r.wallMs.toFixed(0)} ms with worker start and compile), ` +
        `node ${full.elapsedMs.toFixed(0)} ms running (${nodeMs.toFixed(0)} ms run() with compile); ${r.checkpoints.length} checkpoints, ` +
        `page engine ${r.done.pageEngine}; browser launch ${launchMs.toFixed(0)} ms`,
    );
    // the browser's own run is the Node run
    expect(r.done.exitCode).toBe(full.exitCode);
    expect(dec.decode(b64(r.stdout))).toBe(dec.decode(full.stdout));
    expect(same(b64(r.stdout), full.stdout)).toBe(true);
    expect(same(b64(r.stderr), full.stderr)).toBe(true);
    expect(r.done.fuelUsed).toBe(full.fuelUsed); // fuel is deterministic: the same instructions ran
    expect(r.done.pageEngine).toBe('assemblyscript'); // Wasm SIMD page engine works in the browser too
    // one checkpoint per fuel point, spread over the run and its output
    expect(r.checkpoints.length).toBe(POINTS);
    expect(r.checkpoints.map((c) => c.seq)).toEqual([...r.checkpoints.map((c) => c.seq)].sort((a, b) => a - b));
    r.checkpoints.forEach((c, i) => expect(c.fuelUsed).toBeGreaterThanOrEqual(points[i]!));
    expect(new Set(r.checkpoints.map((c) => c.stdoutBytes)).size).toBeGreaterThanOrEqual(3);
    expect(r.checkpoints.at(-1)!.stdoutBytes).toBeLessThan(full.stdout.length);

    const engine = createPageEngine('auto');
    const dir = join(tmp, 'from-browser');
    const paths = r.checkpoints.map((c) => {
      const path = store(dir, c.seq, b64(c.bytes));
      const h = loadChain(path, engine).at(-1)!.header;
      expect(h.kind).toBe('full');
      expect(h.moduleHash).toBe(job.hash);
      expect(h.stdoutBytes).toBe(c.stdoutBytes);
      expect(h.fuelUsed).toBe(c.fuelUsed);
      const meta = h.meta as unknown as CheckpointMeta;
      expect(meta.moduleFile).toBe(moduleFile);
      expect(meta.elapsedMs).toBeGreaterThan(0); // the worker advances the run's elapsed time
      return { path, stdoutBytes: c.stdoutBytes, stderrBytes: c.stderrBytes };
    });
    // resume each in a fresh Node worker thread (a new isolate): prefix + resumed output = the uninterrupted run
    await pool(paths, 2, async (p) => {
      const res = await resumeInWorker(p.path);
      expect(res.trap, `resuming ${p.path}`).toBeUndefined();
      expect(res.exitCode).toBe(full.exitCode);
      const stdout = concat(full.stdout.subarray(0, p.stdoutBytes), res.stdout);
      expect(dec.decode(stdout), `stdout after resuming ${p.path}`).toBe(dec.decode(full.stdout));
      expect(same(stdout, full.stdout)).toBe(true);
      expect(same(concat(full.stderr.subarray(0, p.stderrBytes), res.stderr), full.stderr)).toBe(true);
    });
  }, 30_000);

  it('a checkpoint taken on Node resumes in the browser, which checkpoints again for Node to finish', async () => {
    const dir = join(tmp, 'from-node');
    const [first, second] = spread(full.fuelUsed, 2) as [number, number];
    const ck = await run(guestPath('nbody'), { args: [STEPS], checkpointAtFuel: [first], suspendAtCheckpoint: true, checkpointDir: dir });
    expect(ck.suspended).toBe(true);
    const nodeCkpt = ck.lastCheckpoint!;
    const h1 = loadChain(nodeCkpt, createPageEngine('auto')).at(-1)!.header;
    expect((h1.meta as unknown as CheckpointMeta).moduleFile).toBe(moduleFile); // Node and the test instrument alike
    blobs.set('node.gvm', new Uint8Array(readFileSync(nodeCkpt)));
    // Node -> browser: the worker continues the job and checkpoints it again further on
    const r = await runInBrowser({
      args: [],
      env: [],
      resumeUrls: ['/blob/node.gvm'],
      checkpointAtFuel: [second],
      meta: { ...(h1.meta as Record<string, unknown>) },
    });
    expect(r.done.exitCode).toBe(full.exitCode);
    expect(r.done.fuelUsed).toBe(full.fuelUsed);
    const inBrowser = concat(full.stdout.subarray(0, h1.stdoutBytes), b64(r.stdout));
    expect(dec.decode(inBrowser)).toBe(dec.decode(full.stdout));
    expect(same(inBrowser, full.stdout)).toBe(true);
    // browser -> Node: finish from the browser's checkpoint
    expect(r.checkpoints.length).toBe(1);
    const c = r.checkpoints[0]!;
    expect(c.seq).toBeGreaterThan(h1.seq);
    expect(c.stdoutBytes).toBeGreaterThanOrEqual(h1.stdoutBytes);
    const meta = loadChain(store(join(tmp, 'back-to-node'), c.seq, b64(c.bytes)), createPageEngine('auto')).at(-1)!.header.meta as unknown as CheckpointMeta;
    expect(meta.elapsedMs).toBeGreaterThan((h1.meta as unknown as CheckpointMeta).elapsedMs);
    const res = await resumeInWorker(join(tmp, 'back-to-node', `ckpt-${String(c.seq).padStart(6, '0')}.gvm`));
    expect(res.exitCode).toBe(full.exitCode);
    const hopped = concat(full.stdout.subarray(0, c.stdoutBytes), res.stdout);
    expect(same(hopped, full.stdout), 'Node -> browser -> Node output').toBe(true);
  }, 20_000);
});
