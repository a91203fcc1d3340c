// Tiny-job throughput through the grid scheduler vs a plain worker pool: JOBS tiny jobs (hello.wasm) submitted at
// once and all awaited, on a 2-node grid (Grid.submit per job: instrumented-module cache, GPID, placement, start on
// a node's runner thread, output, exit) and on a piscina pool of the same size (2 threads) running the same module
// with gridvm's in-process run() and, as a second baseline, with node:wasi. Same run, side by side, each in a fresh
// child process (ROUNDS per side, grid and piscina alternating); jobs/s from the best and the median of all timed
// batches, each child's BATCHES after WARMUP untimed ones (the first ~5 batches of 1000 jobs still run while V8
// optimises the code paths of either side: measured without warm-up they compare JIT warm-up).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { guestWasm, log, median, min, ms, repoRoot, table, type Section } from './lib.js';

const JOBS = 1000;
const BATCHES = 5;
const WARMUP = 6;
/** children per side, grid and piscina alternating */
const ROUNDS = 3;
/** node:wasi baseline: jobs per batch (3 batches after 1 untimed) */
const WASI_JOBS = 200;
const POOL = 2;

interface Case {
  name: string;
  batchMs: number[] | undefined;
  note?: string;
}

/**
 * A runner in a child process (throughput-pool.ts): the grid, or a piscina pool (node:wasi in worker threads can
 * segfault on Node 20); retried on a crash.
 */
function poolBatches(mode: 'grid' | 'gridvm' | 'wasi', wasm: string, jobs = JOBS, batches = BATCHES, warmup = WARMUP): { batchMs?: number[]; note?: string } {
  const script = join(repoRoot, 'dist/benchmarks/throughput-pool.js');
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const out = execFileSync(process.execPath, ['--no-warnings', script, mode, wasm, String(POOL), String(jobs), String(batches), String(warmup)], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000,
      });
      return { batchMs: (JSON.parse(out) as { batchMs: number[] }).batchMs, ...(attempt ? { note: `crashed ${attempt}x before (${last})` } : {}) };
    } catch (e) {
      const err = e as { signal?: string; status?: number; stderr?: string };
      last = err.signal ? `killed by ${err.signal}` : `exit ${err.status}: ${(err.stderr ?? '').trim().split('\n').pop()}`;
    }
  }
  return { note: `crashed 3 times (${last})` };
}

export async function benchThroughput(): Promise<Section> {
  const wasm = guestWasm('hello');
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run \`npm run build\``);
  const load0 = loadavg()[0]!;
  // grid and piscina+run() alternate, ROUNDS children each: the machine's speed drifts by tens of percent over
  // seconds here, and alternating lets the drift fall on both sides alike
  const gridMs: number[] = [], runMs: number[] = [];
  const gridNotes: string[] = [], runNotes: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    log(`throughput: round ${r + 1}/${ROUNDS}: grid, ${POOL} nodes, ${JOBS} hello jobs per batch`);
    const gr = poolBatches('grid', wasm);
    if (gr.batchMs) gridMs.push(...gr.batchMs);
    if (gr.note) gridNotes.push(gr.note);
    log(`throughput: round ${r + 1}/${ROUNDS}: piscina (${POOL} threads), gridvm run()`);
    const pr = poolBatches('gridvm', wasm);
    if (pr.batchMs) runMs.push(...pr.batchMs);
    if (pr.note) runNotes.push(pr.note);
  }
  const grid: Case = { name: `Grid (${POOL} thread nodes): submit + await`, batchMs: gridMs.length ? gridMs : undefined, ...(gridNotes.length ? { note: gridNotes.join('; ') } : {}) };
  const pRun: Case = { name: `piscina (${POOL} threads) + gridvm run()`, batchMs: runMs.length ? runMs : undefined, ...(runNotes.length ? { note: runNotes.join('; ') } : {}) };
  log(`throughput: piscina (${POOL} threads), node:wasi`);
  // (fewer jobs: node:wasi segfaults after ~500-1000 instantiations in a thread on Node 20; it runs ~10x slower anyway)
  const pw = poolBatches('wasi', wasm, WASI_JOBS, 3, 1);
  const pWasi: Case = { name: `piscina (${POOL} threads) + node:wasi`, batchMs: pw.batchMs, ...(pw.note ? { note: pw.note } : {}) };
  const load1 = loadavg()[0]!;
  const jobsOf = (c: Case) => (c === pWasi ? WASI_JOBS : JOBS);
  const rate = (c: Case) => (c.batchMs ? jobsOf(c) / (min(c.batchMs) / 1000) : NaN);
  const rateMed = (c: Case) => (c.batchMs ? jobsOf(c) / (median(c.batchMs) / 1000) : NaN);
  const g = rate(grid);
  const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
  const rows = [grid, pRun, pWasi].map((c) => [
    c.name, fmt(rate(c)), fmt(rateMed(c)), c.batchMs ? ms((min(c.batchMs) / jobsOf(c)) * 1000) : '—',
    Number.isFinite(rate(c)) ? `${(g / rate(c)).toFixed(2)}x` : '—', c.note ?? '',
  ]);
  const body = [
    `${JOBS} hello.wasm jobs per batch, all submitted at once and all awaited; best of ${ROUNDS} × ${BATCHES} batches, each child after ${WARMUP} untimed ` +
      `batches (median in the second column); each runner in a fresh child process, ${ROUNDS} per side, grid and piscina+run() alternating; node:wasi: ${WASI_JOBS} jobs per batch, 3 batches after 1. Grid: \`Grid.start({ nodes: ${POOL}, isolate: 'thread' })\`, one \`submit({ wasm: bytes })\` ` +
      `per job, each awaited to its JobResult. piscina ${POOL} threads, each task one whole job: gridvm\'s ` +
      `\`run()\` (instrumented, cache warm) or node:wasi (module compiled once per thread). Load average ${load0.toFixed(2)} before, ` +
      `${load1.toFixed(2)} after.`,
    '',
    table(['runner', 'jobs/s (best)', 'jobs/s (median)', 'µs per job (best)', 'grid / this', 'note'], rows),
  ].join('\n');
  const base = rate(pRun);
  const gMed = rateMed(grid);
  const baseMed = rateMed(pRun);
  // met only if the grid keeps up by both measures (best batch and median batch)
  const met = Number.isFinite(base) && g >= base && gMed >= baseMed;
  return {
    title: 'Tiny-job throughput: grid scheduler vs a worker pool (benchmarks/throughput.bench.ts)',
    body,
    targets: [{
      what: 'tiny-job throughput, grid (2 nodes) vs piscina (2 threads, gridvm run())', target: '>= 1x piscina',
      measured: `best batches: ${fmt(g)} jobs/s = ${Number.isFinite(base) ? (g / base).toFixed(2) : '—'}x piscina+run() (${fmt(base)} jobs/s); ` +
        `median batches: ${fmt(gMed)} = ${Number.isFinite(baseMed) ? (gMed / baseMed).toFixed(2) : '—'}x (${fmt(baseMed)}); node:wasi pool ${fmt(rate(pWasi))} jobs/s`,
      met, ...(met ? {} : { limit: THROUGHPUT_LIMIT }),
    }],
  };
}

/**
 * What bounds the grid case (per-thread CPU from /proc, after warm-up): the origin spends ~40 µs per job (piscina's
 * main ~30) and the runners ~28 each (piscina's workers ~25), so on 2 cores the grid keeps up only while its runners
 * never wait for work: with 4 staged starts per node and a message per job they sat idle ~60% of the time (the
 * origin's replies came later than the next start was due). 16 staged per node and batched ends fixed that.
 */
const THROUGHPUT_LIMIT =
  'The grid pays more CPU per job than the pool (origin ~40 µs vs ~30: a global process record, a scheduling round, the ' +
  'job result) and keeps up by pipelining (staged starts per node, batched ends); machine speed here drifts by ±20% ' +
  'between runs.';
