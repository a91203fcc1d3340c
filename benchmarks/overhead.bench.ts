// Row 1: instrumentation overhead. The same WASI job, side by side in one run:
//   original      the uninstrumented module on gridvm's kernel (Process.imports with no-op gridvm calls: the original
//                 imports none of them), _start called directly, ProcExit caught
//   gridvm        the instrumented module (prepareJob) run by vm Machine with run()'s defaults (slice 200k,
//                 re-entry at 50/150/450 ms), no checkpoints
//   node:wasi     the original module under node:wasi, in a child process (it aborts past ~16 MiB of memory)
//   native        the gcc -O2 build, spawned (wall time includes process start-up, ~1 ms)
// Each WebAssembly.Module is compiled once and reused, so after the untimed first run V8's optimised code is there
// for every later instance (V8 has no on-stack replacement for Wasm: a first run can stay in baseline code).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcExit, Process } from '../kernel/index.js';
import { createPageEngine, Machine, prepareJob, type CompiledJob, type PageEngine } from '../vm/index.js';
import { nodePlatform } from '../runtime-node/platform.js';
import {
  geomean, guestNative, guestWasm, log, median, min, ms, ratio, repoRoot, table, type Section, type TargetCheck, type Workload,
} from './lib.js';

interface Job {
  name: string;
  args: string[];
  note?: string;
}

/** Arguments chosen so the original runs ~0.5-1.5 s on the 2-core machine (recursion: see its note). */
export const OVERHEAD_JOBS: Job[] = [
  { name: 'nbody', args: ['16000000'] },
  { name: 'malloc_churn', args: ['6', '1000000'] },
  { name: 'recursion', args: ['2'], note: 'scale 2 (~0.13 s, shorter than the others: longer fib phases would weigh its fib even more). Faster than its original: its small self-recursive functions (fib, Ackermann, the tree walks) are unrolled by one level (vm/recursion.ts), a third of fib\'s calls, which more than pays for the checks (1.35x without it, measured in separate processes); so the geomean is also given without it. Before the unrolling, the instrumented module overflowed the host call stack at scale 2.' },
  { name: 'rank', args: ['7000000'] },
  { name: 'as_gc', args: [] },
];

export function kernelProcess(name: string, args: string[]): Process {
  return new Process({ args: [name, ...args], env: [], mounts: [], platform: nodePlatform(), stdout() {}, stderr() {} });
}

/** The uninstrumented module on gridvm's kernel. */
/**
 * Instantiate the uninstrumented module on `p` and run `_start`; returns the exit code. Its output is gathered and
 * written once, as a Machine does (MachineOptions.outputBuffer).
 */
export function runOriginal(mod: WebAssembly.Module, p: Process): number {
  const inst = new WebAssembly.Instance(mod, p.imports({ yield() {}, tick() {}, memory_limit() {} }));
  p.setMemory(inst.exports.memory as WebAssembly.Memory);
  p.bufferOutput(64 * 1024);
  try {
    (inst.exports._start as () => void)();
    return 0;
  } catch (e) {
    if (!(e instanceof ProcExit)) throw e;
    return e.code;
  } finally {
    p.flushOutput();
  }
}

export function originalOnKernel(mod: WebAssembly.Module, name: string, args: string[]): Workload {
  return {
    name: 'original on kernel',
    async run(iters) {
      const out: number[] = [];
      for (let i = 0; i < iters; i++) {
        const t0 = performance.now();
        const code = runOriginal(mod, kernelProcess(name, args));
        out.push(performance.now() - t0);
        if (code !== 0) throw new Error(`${name} (original) exited ${code}`);
      }
      return out;
    },
  };
}

/** The instrumented module run by Machine (what `gridvm run` does, minus the CLI). */
export function instrumentedOnKernel(job: CompiledJob, pages: PageEngine, name: string, args: string[]): Workload {
  return {
    name: 'gridvm (instrumented)',
    async run(iters) {
      const out: number[] = [];
      for (let i = 0; i < iters; i++) {
        const t0 = performance.now();
        const m = new Machine(job, kernelProcess(name, args), { pages, now: () => performance.now() });
        const o = m.run();
        out.push(performance.now() - t0);
        if (o.kind !== 'exit' || o.code !== 0) {
          throw new Error(`${name} (instrumented) ended with ${o.kind === 'trap' ? `trap: ${o.trap.message}` : JSON.stringify(o)}`);
        }
      }
      return out;
    },
  };
}

/** node:wasi in a child process; undefined times (and a reason) when it crashes. */
export function nodeWasiChild(wasm: string, args: string[], warmup: number, iters: number): { times?: number[]; firstRun?: number; error?: string } {
  const child = join(repoRoot, 'dist/benchmarks/nodewasi-child.js');
  const r = spawnSync(process.execPath, ['--no-warnings', child, wasm, '0', String(warmup + iters), ...args], {
    encoding: 'utf8', maxBuffer: 1 << 20, timeout: 120_000,
  });
  if (r.status !== 0) return { error: `crashed (${r.signal ?? `exit ${r.status}`}): ${(r.stderr || '').trim().split('\n').slice(-1)[0] ?? ''}` };
  const all = (JSON.parse(r.stdout) as { times: number[] }).times;
  return { times: all.slice(warmup), firstRun: all[0]! };
}

/** The native build, spawned; wall time includes process start-up. */
export function nativeRuns(exe: string, args: string[], warmup: number, iters: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    const t0 = performance.now();
    const r = spawnSync(exe, args, { stdio: 'ignore' });
    const t = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${exe} exited ${r.status}`);
    if (i >= warmup) out.push(t);
  }
  return out;
}

interface Row {
  job: Job;
  orig: number[];
  instr: number[];
  /** the module instrumented with dirty-page tracking (InstrumentOptions.dirtyPages) */
  tracked: number[];
  origFirst: number;
  instrFirst: number;
  wasi?: number[];
  wasiFirst?: number;
  wasiError?: string;
  native?: number[];
}

export async function benchOverhead(opts: { iters?: number } = {}): Promise<Section> {
  const iters = opts.iters ?? 7;
  const pages = createPageEngine('auto');
  const rows: Row[] = [];
  for (const job of OVERHEAD_JOBS) {
    const wasm = guestWasm(job.name);
    if (!existsSync(wasm)) {
      log(`overhead: ${job.name} is not built, skipped`);
      continue;
    }
    log(`overhead: ${job.name} ${job.args.join(' ')}`);
    const bytes = new Uint8Array(readFileSync(wasm));
    const mod = new WebAssembly.Module(bytes);
    const cj = await prepareJob(bytes);
    const a = originalOnKernel(mod, job.name, job.args);
    const b = instrumentedOnKernel(cj, pages, job.name, job.args);
    const c = instrumentedOnKernel(await prepareJob(bytes, { instrument: { dirtyPages: true } }), pages, job.name, job.args);
    // first (untimed for the ratio) runs: V8 compiles and tiers up here
    const origFirst = (await a.run(1))[0]!;
    const instrFirst = (await b.run(1))[0]!;
    await c.run(1);
    const orig: number[] = [];
    const instr: number[] = [];
    const tracked: number[] = [];
    for (let i = 0; i < iters; i++) {
      // interleaved, alternating which goes first, so drift hits both alike
      if (i % 2) {
        instr.push(...(await b.run(1)));
        orig.push(...(await a.run(1)));
        tracked.push(...(await c.run(1)));
      } else {
        tracked.push(...(await c.run(1)));
        orig.push(...(await a.run(1)));
        instr.push(...(await b.run(1)));
      }
    }
    const row: Row = { job, orig, instr, tracked, origFirst, instrFirst };
    const w = nodeWasiChild(wasm, job.args, 1, iters);
    if (w.times) {
      row.wasi = w.times;
      row.wasiFirst = w.firstRun!;
    } else row.wasiError = w.error!;
    const nat = guestNative(job.name);
    if (existsSync(nat)) row.native = nativeRuns(nat, job.args, 1, iters);
    rows.push(row);
    log(`overhead: ${job.name}: original ${ms(min(orig))} ms, gridvm ${ms(min(instr))} ms (${ratio(min(instr) / min(orig))}), tracked ${ms(min(tracked))} ms, node:wasi ${row.wasi ? ms(min(row.wasi)) : row.wasiError}, native ${row.native ? ms(min(row.native)) : '—'}`);
  }
  const startup = existsSync(guestNative('hello')) ? median(nativeRuns(guestNative('hello'), [], 1, 9)) : undefined;

  // The ratio per job: the median over the rounds of gridvm / original within the round (run back to back). This
  // machine changes speed for tens of seconds at a time (the same original module: ~860 or ~1250 ms for
  // malloc_churn, in phases), so a phase change between the variants' best runs can skew a best/best ratio by
  // tens of percent; a round's two runs share a phase. Best/best and median/median are shown alongside.
  const rOrig = rows.map((r) => median(r.instr.map((t, i) => t / r.orig[i]!)));
  const rBest = rows.map((r) => min(r.instr) / min(r.orig));
  const rOrigMed = rows.map((r) => median(r.instr) / median(r.orig));
  const withWasi = rows.filter((r) => r.wasi);
  const withNative = rows.filter((r) => r.native);
  const gm = geomean(rOrig);
  // recursion runs faster than its original (self-recursion unrolled): the overhead of the others on their own
  const others = rows.map((r, i) => (r.job.name === 'recursion' ? undefined : rOrig[i]!)).filter((x): x is number => x !== undefined);
  const gmOthers = others.length < rows.length && others.length ? geomean(others) : undefined;
  const body = [
    `Best of ${iters} (and median) after one untimed first run per variant, the variants interleaved round by round. ` +
      '**gridvm / original** is the median over the rounds of the ratio within a round (the two runs back to back): ' +
      'this machine changes speed for tens of seconds at a time (the same original module took ~860 or ~1250 ms for ' +
      'malloc_churn, in phases), which can put one variant\'s best run and the other\'s in different phases; the ' +
      'other ratio columns use the best times. ' +
      'Wall time of one whole run (instantiate + _start), in-process except node:wasi (child process, same method) ' +
      'and native (spawned: includes process start-up' + (startup !== undefined ? `, ~${ms(startup)} ms for a trivial native program` : '') + ').',
    '',
    table(
      ['job (args)', 'original on kernel ms', 'gridvm ms', '**gridvm / original**', 'with dirty-page tracking ms (/ original, / gridvm)', 'node:wasi ms', 'gridvm / node:wasi', 'native ms', 'gridvm / native', 'first run: original / gridvm ms'],
      rows.map((r, i) => [
        `${r.job.name} ${r.job.args.join(' ')}`.trim(),
        `${ms(min(r.orig))} (${ms(median(r.orig))})`,
        `${ms(min(r.instr))} (${ms(median(r.instr))})`,
        `**${ratio(rOrig[i])}** (best/best ${ratio(rBest[i])}, median/median ${ratio(rOrigMed[i])})`,
        `${ms(min(r.tracked))} (${ratio(min(r.tracked) / min(r.orig))}, ${ratio(min(r.tracked) / min(r.instr))})`,
        r.wasi ? `${ms(min(r.wasi))} (${ms(median(r.wasi))})` : r.wasiError ?? '—',
        r.wasi ? ratio(min(r.instr) / min(r.wasi)) : '—',
        r.native ? `${ms(min(r.native))} (${ms(median(r.native))})` : 'no native build',
        r.native ? ratio(min(r.instr) / min(r.native)) : '—',
        `${ms(r.origFirst)} / ${ms(r.instrFirst)}`,
      ]),
    ),
    '',
    table(
      ['geomean', 'ratio', 'jobs'],
      [
        ['gridvm / original on kernel (target <= 1.08x)', `**${ratio(gm)}** (best/best: ${ratio(geomean(rBest))}, median/median: ${ratio(geomean(rOrigMed))})`, String(rows.length)],
        ...(gmOthers !== undefined ? [['the same without recursion (faster than its original: see its note)', `**${ratio(gmOthers)}**`, String(others.length)]] : []),
        ['with dirty-page tracking / gridvm (the cost of `--track-dirty`, `--precopy`)', ratio(geomean(rows.map((r) => min(r.tracked) / min(r.instr)))), String(rows.length)],
        ['original on kernel / node:wasi (kernel cost)', withWasi.length ? ratio(geomean(withWasi.map((r) => min(r.orig) / min(r.wasi!)))) : '—', String(withWasi.length)],
        ['gridvm / node:wasi', withWasi.length ? ratio(geomean(withWasi.map((r) => min(r.instr) / min(r.wasi!)))) : '—', String(withWasi.length)],
        ['gridvm / native', withNative.length ? ratio(geomean(withNative.map((r) => min(r.instr) / min(r.native!)))) : '—', String(withNative.length)],
        ['original on kernel / native', withNative.length ? ratio(geomean(withNative.map((r) => min(r.orig) / min(r.native!)))) : '—', String(withNative.length)],
      ],
    ),
    ...rows.filter((r) => r.job.note).map((r) => `\n- ${r.job.name}: ${r.job.note}`),
  ].join('\n');
  const targets: TargetCheck[] = [{
    what: 'instrumentation overhead (geomean, instrumented / original on gridvm\'s kernel)',
    target: '<= 1.08x',
    measured: `${ratio(gm)}${gmOthers !== undefined ? `, ${ratio(gmOthers)} without recursion` : ''} (per job: ${rows.map((r, i) => `${r.job.name} ${ratio(rOrig[i])}`).join(', ')})`,
    // not met on the strength of recursion alone, whose unrolling makes it faster than its original
    met: gm <= 1.08 && (gmOthers === undefined || gmOthers <= 1.08),
  }];
  return { title: '1. Instrumentation overhead', body, targets };
}
