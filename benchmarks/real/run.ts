// Large real WASI programs on gridvm: instrumentation cost (cold and cached, time and memory), run overhead against
// the uninstrumented module on gridvm's own kernel, checkpoint + resume in fresh workers, and native wasm-opt's
// Asyncify as an alternative to binaryen.js. Writes benchmarks/real/RESULTS-real.md.
//
//   node benchmarks/real/fetch.mjs          # once (npm pack into benchmarks/build/real/)
//   node tools/build.mjs && node dist/benchmarks/real/run.js [--only yosys|ruby] [--no-wasm-opt] [--limit-s 360]
//
// Every instrumentation runs in a child process bounded by --limit-s (default 360 s) so that one that does not
// finish is reported as such instead of hanging the benchmark.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Process, ProcExit, type MountSpec } from '../../kernel/index.js';
import { nodePlatform } from '../../runtime-node/platform.js';
import { DiskModuleCache } from '../../runtime-node/cache.js';
import { resumeInWorker } from '../../runtime-node/resume.js';
import { run, type RunOptions, type RunResult } from '../../runtime-node/run.js';
import { prepareJob, sha256Hex } from '../../vm/job.js';
import { INSTRUMENT_VERSION, type InstrumentInfo } from '../../vm/instrument.js';
import { GLOBAL_EXPORT_PREFIX } from '../../vm/names.js';
import { RUBY_ARGS, VERILOG, YOSYS_ARGS } from './workloads.js';

const here = dirname(fileURLToPath(import.meta.url));
/** repository root (this file runs from dist/benchmarks/real/ or, under tsx, from benchmarks/real/) */
const ROOT = here.includes(`${'/'}dist${'/'}`) ? join(here, '..', '..', '..') : join(here, '..', '..');
const REAL = join(ROOT, 'benchmarks', 'build', 'real');
const CACHE = join(REAL, 'cache');
const SELF = fileURLToPath(import.meta.url);

// ------------------------------------------------------------------ programs and workloads

interface Program {
  name: string;
  wasm: string;
  /** the arguments after argv[0] */
  args: string[];
  dirs: Array<{ host: string; guest: string; readonly?: boolean }>;
  memDirs: string[];
  /** what the workload is, for the report */
  workload: string;
  /** apply the fd_renumber-to-a-closed-fd shim in the uninstrumented run (see RESULTS-real.md) */
  renumberShim?: boolean;
  /** only measure instrumentation (no -O0 retry, no runs with the instrumented module, no wasm-opt) */
  instrumentOnly?: boolean;
}

function programs(): Program[] {
  const vdir = join(REAL, 'work-yosys');
  mkdirSync(vdir, { recursive: true });
  writeFileSync(join(vdir, 'alu.v'), VERILOG);
  return [
    {
      name: 'yosys',
      wasm: join(REAL, 'yosys.wasm'),
      args: YOSYS_ARGS,
      dirs: [{ host: vdir, guest: '/work' }, { host: join(REAL, 'yosys-share'), guest: '/share', readonly: true }],
      memDirs: ['/tmp'],
      workload: "`yosys -Q -T -p 'read_verilog alu.v; synth -top top; stat'` (16-bit ALU with multiplier, ABC in-process)",
      renumberShim: true,
    },
    {
      name: 'ruby',
      wasm: join(REAL, 'ruby.wasm'),
      args: RUBY_ARGS,
      dirs: [],
      memDirs: [],
      workload: '`ruby -e` 2M-iteration integer loop + 50k-entry Hash of strings',
      instrumentOnly: true,
    },
    {
      name: 'ruby-fixed',
      wasm: join(REAL, 'ruby-fixed.wasm'),
      args: RUBY_ARGS,
      dirs: [],
      memDirs: [],
      workload: 'same as ruby; module = ruby.wasm with its functions `asyncify_*` renamed in the name section (asyncify-names.mjs: the proposed fix)',
    },
  ];
}

// ------------------------------------------------------------------ child: one bounded instrumentation

interface InstrumentReport {
  ok: boolean;
  error?: string;
  timedOut?: boolean;
  ms?: number;
  stages?: Record<string, number>;
  /** peak resident set size of the child (VmHWM), MiB */
  peakRssMiB?: number;
  /** heap + array buffers at the end (binaryen.js's wasm heap is in arrayBuffers), MiB */
  endHeapMiB?: number;
  cached?: boolean;
  bytes?: number;
  info?: InstrumentInfo;
}

function vmHwmMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function childInstrument(wasm: string, mode: 'cold' | 'cached', level: number): Promise<void> {
  const bytes = new Uint8Array(readFileSync(wasm));
  const cache = new DiskModuleCache(join(CACHE, 'modules'));
  if (mode === 'cold') {
    // drop this module's entries (the key format belongs to vm/job.ts: match on the original's hash)
    const hash = await sha256Hex(bytes);
    if (existsSync(cache.dir)) for (const f of readdirSync(cache.dir)) if (f.startsWith(hash)) rmSync(join(cache.dir, f), { force: true });
  }
  const stages: Record<string, number> = {};
  let stage = 'validate';
  let t = performance.now();
  const t0 = t;
  const job = await prepareJob(bytes, {
    cache,
    instrument: {
      optimizeLevel: level,
      onProgress: (s) => {
        if (s === stage) return;
        const now = performance.now();
        stages[stage] = (stages[stage] ?? 0) + (now - t);
        stage = s;
        t = now;
      },
    },
  });
  const ms = performance.now() - t0;
  stages[stage === 'done' ? 'compile+cache' : stage] = performance.now() - t;
  const mu = process.memoryUsage();
  const r: InstrumentReport = {
    ok: true,
    ms,
    stages,
    peakRssMiB: vmHwmMiB(),
    endHeapMiB: (mu.heapUsed + mu.arrayBuffers) / 2 ** 20,
    cached: job.cached,
    bytes: job.bytes.length,
    info: job.info,
  };
  process.stdout.write(`\n@@REPORT ${JSON.stringify(r)}\n`);
}

/** Emit the module right after gridvm's preemption instrumentation (before Asyncify) plus the InstrumentInfo that
 * vm/instrument.ts would return, so native wasm-opt can do the Asyncify step. */
async function childPreempt(wasm: string, out: string): Promise<void> {
  const binaryen = (await import('binaryen')).default as typeof import('binaryen').default;
  const { instrument } = await import('../../vm/instrument.js');
  const orig = binaryen.readBinary;
  let globals: string[] = [];
  (binaryen as { readBinary: typeof orig }).readBinary = (b: Uint8Array) => {
    const m = orig(b);
    (m as { runPasses: (p: string[]) => void }).runPasses = () => {
      const exported = new Map<string, string>();
      for (let i = 0; i < m.getNumExports(); i++) {
        const e = binaryen.getExportInfo(m.getExportByIndex(i));
        if (e.kind === binaryen.ExternalGlobal && !exported.has(e.value)) exported.set(e.value, e.name);
      }
      globals = [];
      for (let i = 0; i < m.getNumGlobals(); i++) {
        const g = binaryen.getGlobalInfo(m.getGlobalByIndex(i));
        if (!g.mutable || g.name.startsWith('__gridvm_')) continue;
        globals.push(exported.get(g.name) ?? `${GLOBAL_EXPORT_PREFIX}${i}`);
      }
      writeFileSync(out, m.emitBinary());
      throw new Error('@@STOP');
    };
    return m;
  };
  const t0 = performance.now();
  try {
    instrument(new Uint8Array(readFileSync(wasm)));
  } catch (e) {
    if ((e as Error).message !== '@@STOP') throw e;
  }
  process.stdout.write(`\n@@REPORT ${JSON.stringify({ ok: true, ms: performance.now() - t0, globals, peakRssMiB: vmHwmMiB() })}\n`);
}

function spawnChild(args: string[], limitS: number): InstrumentReport {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [SELF, ...args], { encoding: 'utf8', timeout: limitS * 1000, maxBuffer: 64 << 20, killSignal: 'SIGKILL' });
  const ms = performance.now() - t0;
  const m = /@@REPORT (.*)/.exec(r.stdout ?? '');
  if (m) return JSON.parse(m[1]!) as InstrumentReport;
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { ok: false, timedOut: true, ms, error: `aborted after ${limitS} s` };
  const tail = `${r.stderr ?? ''}`.split('\n').filter((l) => l && !l.startsWith('    at ')).slice(-4).join(' | ');
  return { ok: false, ms, error: `exit ${r.status ?? r.signal}: ${tail.slice(0, 400)}` };
}

// ------------------------------------------------------------------ runs

function mountsOf(p: Program): MountSpec[] {
  return [
    ...p.dirs.map((d) => ({ guest: d.guest, kind: 'host' as const, host: d.host, readonly: !!d.readonly })),
    ...p.memDirs.map((g) => ({ guest: g, kind: 'memory' as const })),
  ];
}

interface PlainRun {
  ms: number;
  compileMs: number;
  code: number | string;
  stdout: Buffer;
}

/** The original module on gridvm's kernel, no instrumentation (the `gridvm` imports are stubs). */
function runPlain(p: Program, shim: boolean): PlainRun {
  const t0 = performance.now();
  const mod = new WebAssembly.Module(readFileSync(p.wasm));
  const compileMs = performance.now() - t0;
  const out: Buffer[] = [];
  const proc = new Process({
    args: [p.name, ...p.args],
    env: [],
    mounts: mountsOf(p),
    platform: nodePlatform(),
    stdout: (b) => void out.push(Buffer.from(b)),
    stderr: () => {},
  });
  // every gridvm call a no-op (the set grows as the kernel does: yield, tick, memory_limit, …)
  const noop = new Proxy({} as Record<string, () => void>, { get: () => () => {} });
  const imports = proc.imports(noop);
  if (shim) {
    // fd_renumber onto a closed fd, as wasmtime's preview1 adapter allows (see the report)
    const w = imports.wasi_snapshot_preview1 as Record<string, (...a: number[]) => number>;
    const orig = w.fd_renumber!;
    const pp = proc as unknown as {
      fds: { get(h: number): unknown; remove(h: number): unknown; insertAt(h: number, v: unknown): void };
      handles: Map<number, unknown>;
    };
    w.fd_renumber = (from: number, to: number) => {
      if (from !== to && pp.fds.get(from) !== undefined && pp.fds.get(to) === undefined) {
        const e = pp.fds.get(from);
        const h = pp.handles.get(from);
        pp.fds.remove(from);
        pp.handles.delete(from);
        pp.fds.insertAt(to, e);
        if (h) pp.handles.set(to, h);
        return 0;
      }
      return orig(from, to);
    };
  }
  const inst = new WebAssembly.Instance(mod, imports);
  proc.setMemory(inst.exports.memory as WebAssembly.Memory);
  let code: number | string = 0;
  const t1 = performance.now();
  try {
    (inst.exports._start as () => void)();
  } catch (e) {
    if (e instanceof ProcExit) code = e.code;
    else code = `${(e as Error).name}: ${(e as Error).message}`;
  }
  return { ms: performance.now() - t1, compileMs, code, stdout: Buffer.concat(out) };
}

/** optimizeLevel of the instrumented module the runs use (part of vm/job.ts's cache key) */
let runLevel = 1;
function runOpts(p: Program, extra: RunOptions = {}): RunOptions {
  return { name: p.name, args: p.args, dirs: p.dirs, memDirs: p.memDirs, stdout: 'buffer', stderr: 'buffer', instrument: { optimizeLevel: runLevel }, ...extra };
}

interface CheckpointCheck {
  points: number[];
  checkpoints: number;
  resumed: number;
  identical: number;
  failures: string[];
  resumeMs: number[];
}

async function checkpointCheck(p: Program, full: Buffer, fuel: number): Promise<CheckpointCheck> {
  const dir = join(REAL, 'ckpt', p.name);
  rmSync(dir, { recursive: true, force: true });
  const points = [1, 2, 3, 4, 5].map((i) => Math.floor((fuel * i) / 6));
  const taken: Array<{ path: string; stdoutBytes: number }> = [];
  const r = await run(p.wasm, runOpts(p, {
    checkpointAtFuel: points,
    checkpointDir: dir,
    onCheckpoint: (c) => void (c.path && taken.push({ path: c.path, stdoutBytes: c.snapshot.stdoutBytes })),
  }));
  const res: CheckpointCheck = { points, checkpoints: taken.length, resumed: 0, identical: 0, failures: [], resumeMs: [] };
  if (!Buffer.from(r.stdout).equals(full)) res.failures.push('the run that took the checkpoints printed something else than the uninterrupted run');
  for (const c of taken) {
    const t0 = performance.now();
    try {
      const rr: RunResult = await resumeInWorker(c.path);
      res.resumeMs.push(performance.now() - t0);
      res.resumed++;
      const combined = Buffer.concat([full.subarray(0, c.stdoutBytes), Buffer.from(rr.stdout)]);
      if (combined.equals(full) && rr.exitCode === 0) res.identical++;
      else res.failures.push(`${c.path.split('/').pop()}: exit ${rr.exitCode}${rr.trap ? ` trap ${rr.trap.reason}: ${rr.trap.message}` : ''}, output ${combined.length} vs ${full.length} bytes${combined.equals(full) ? ' (identical)' : ''}`);
    } catch (e) {
      res.failures.push(`${c.path.split('/').pop()}: ${(e as Error).message.slice(0, 300)}`);
    }
  }
  return res;
}

// ------------------------------------------------------------------ native wasm-opt

interface WasmOptReport {
  ok: boolean;
  ms?: number;
  peakRssMiB?: number;
  bytes?: number;
  error?: string;
  threads: string;
}

function wasmOpt(input: string, output: string, limitS: number, cores: string, optimize: boolean): WasmOptReport {
  const args = [
    '-v', 'wasm-opt', input,
    '--enable-bulk-memory', '--enable-sign-ext', '--enable-mutable-globals', '--enable-nontrapping-float-to-int',
    '--enable-simd', '--enable-reference-types', '--enable-multivalue',
    '--asyncify', '--pass-arg=asyncify-imports@gridvm.yield', ...(optimize ? ['-O1'] : []), '-g', '-o', output,
  ];
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', args, { encoding: 'utf8', timeout: limitS * 1000, killSignal: 'SIGKILL', env: { ...process.env, BINARYEN_CORES: cores }, maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? '');
  const threads = `${optimize ? 'asyncify -O1' : 'asyncify only'}, ${cores === '1' ? '1 thread' : `${cores} threads`}`;
  if (r.error) return { ok: false, ms, error: `aborted after ${limitS} s`, threads };
  if (r.status !== 0) return { ok: false, ms, ...(rss ? { peakRssMiB: Number(rss[1]) / 1024 } : {}), error: (r.stderr ?? '').split('\n').slice(0, 3).join(' | ').slice(0, 300), threads };
  return { ok: true, ms, peakRssMiB: rss ? Number(rss[1]) / 1024 : NaN, bytes: readFileSync(output).length, threads };
}

// ------------------------------------------------------------------ report

const f1 = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(1));
const f0 = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(0));
const mib = (b: number | undefined): string => (b === undefined ? '–' : (b / 2 ** 20).toFixed(1));
const sec = (ms: number | undefined): string => (ms === undefined ? '–' : (ms / 1000).toFixed(1));

interface ProgramResult {
  p: Program;
  bytes: number;
  functions: number;
  cold: InstrumentReport;
  /** the default-level attempt, when it failed and cold is the optimizeLevel 0 retry */
  coldO1?: InstrumentReport;
  level: number;
  cached?: InstrumentReport;
  plainRaw?: PlainRun;
  plain?: PlainRun;
  plainRuns: number[];
  inst?: { ms: number[]; fuel: number; ok: boolean; note: string; trap?: string };
  ckpt?: CheckpointCheck;
  native?: { preempt: Record<string, unknown>; wo1?: WasmOptReport; wo2?: WasmOptReport; run?: { ms: number; ok: boolean; note: string }; ckpt?: CheckpointCheck };
}

function definedFunctions(bytes: Uint8Array): number {
  let p = 8;
  const leb = (): number => {
    let r = 0, s = 0, b: number;
    do {
      b = bytes[p++]!;
      r |= (b & 0x7f) << s;
      s += 7;
    } while (b & 0x80);
    return r >>> 0;
  };
  while (p < bytes.length) {
    const id = bytes[p++]!;
    const size = leb();
    if (id === 3) {
      const q = p;
      const n = leb();
      p = q;
      return n;
    }
    p += size;
  }
  return 0;
}

function report(results: ProgramResult[], limitS: number): string {
  const L: string[] = [];
  L.push('# gridvm on large real WASI programs', '');
  L.push(`Generated by \`node dist/benchmarks/real/run.js\` on ${new Date().toISOString().slice(0, 10)} (Node ${process.version}, ` +
    `${(await_cpus())} CPUs). Programs fetched by \`benchmarks/real/fetch.mjs\` (npm pack). Each instrumentation runs in a child ` +
    `process, aborted after ${limitS} s. Instrumentation version ${INSTRUMENT_VERSION} (the working tree at the time of the run).`, '');
  L.push('## Programs', '');
  L.push('| program | module | size MiB | defined functions | workload |', '|---|---|---:|---:|---|');
  for (const r of results) L.push(`| ${r.p.name} | ${r.p.wasm.split('/').pop()} | ${mib(r.bytes)} | ${r.functions} | ${r.p.workload} |`);
  L.push('', '## Instrumentation (binaryen.js, vm/instrument.ts)', '');
  L.push('| program | cold s | stages (s) | peak RSS MiB | cached s | cached peak RSS MiB | instrumented MiB (×) | loops | entry checks | grows | tries | renamed asyncify exports |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of results) {
    if (r.coldO1) {
      const c = r.coldO1;
      L.push(`| ${r.p.name} (-O1, default) | **${c.timedOut ? 'aborted' : 'failed'}** (${sec(c.ms)}) | ${(c.error ?? '').replace(/\|/g, '/')} | – | – | – | – | – | – | – | – | – |`);
    }
    const c = r.cold;
    const st = c.info?.stats;
    const stages = c.stages ? Object.entries(c.stages).map(([k, v]) => `${k} ${sec(v)}`).join(', ') : (c.error ?? '').replace(/\|/g, '/');
    L.push(`| ${r.p.name} (-O${r.level}) | ${c.ok ? sec(c.ms) : `**${c.timedOut ? 'aborted' : 'failed'}** (${sec(c.ms)})`} | ${stages} | ${f0(c.peakRssMiB)} | ` +
      `${r.cached?.ok ? sec(r.cached.ms) : '–'} | ${f0(r.cached?.peakRssMiB)} | ${c.bytes ? `${mib(c.bytes)} (${(c.bytes / r.bytes).toFixed(2)}×)` : '–'} | ` +
      `${st?.loops ?? '–'} | ${st?.entryChecks ?? '–'} | ${st?.grows ?? '–'} | ${st?.tries ?? '–'} | ${st?.renamedAsyncifyExports.length ?? '–'} |`);
  }
  L.push('', '## Run overhead (same workload, gridvm kernel)', '');
  L.push('Uninstrumented = the original module instantiated on `new Process(opts).imports(...)`, `_start` called (compile time excluded). ' +
    'Instrumented = `run()` with the cached instrumented module (`elapsedMs`, compile excluded). Best of the runs.', '');
  L.push('| program | uninstrumented s | instrumented s | overhead | fuel used | output | note |', '|---|---:|---:|---:|---:|---|---|');
  for (const r of results) {
    const plain = r.plainRuns.length ? Math.min(...r.plainRuns) : undefined;
    const inst = r.inst?.ms.length ? Math.min(...r.inst.ms) : undefined;
    const ratio = plain && inst ? `${(inst / plain).toFixed(2)}×` : '–';
    L.push(`| ${r.p.name} (-O${r.level}) | ${sec(plain)} | ${sec(inst)} | ${ratio} | ${r.inst?.fuel ?? '–'} | ${r.plain ? `${r.plain.stdout.length} B, exit ${r.plain.code}` : '–'} | ${(r.inst?.note ?? 'not run: no instrumented module').replace(/\|/g, '/')} |`);
  }
  L.push('', '## Checkpoint + resume (5 fuel points, each resumed with resumeInWorker in a fresh worker)', '');
  L.push('| program | instrumented by | checkpoints | resumed | byte-identical | resume s (median) | failures |', '|---|---|---:|---:|---:|---:|---|');
  for (const r of results) {
    for (const [by, c] of [['binaryen.js', r.ckpt], ['native wasm-opt', r.native?.ckpt]] as const) {
      if (!c) continue;
      const med = c.resumeMs.length ? [...c.resumeMs].sort((a, b) => a - b)[c.resumeMs.length >> 1] : undefined;
      L.push(`| ${r.p.name} | ${by} | ${c.checkpoints} | ${c.resumed} | ${c.identical} | ${sec(med)} | ${c.failures.join('; ').replace(/\|/g, '/') || '–'} |`);
    }
  }
  L.push('', '## Native wasm-opt (Debian binaryen 108) for the Asyncify step', '');
  L.push('Input: the module after gridvm\'s preemption instrumentation (binaryen.js, emitted right before its Asyncify pass). ' +
    'Command: `wasm-opt IN --asyncify --pass-arg=asyncify-imports@gridvm.yield -O1 -g -o OUT` (+ feature flags), ' +
    'under `/usr/bin/time -v`. binaryen.js does the same two passes (asyncify, then optimize at level 1) in one process.', '');
  L.push('| program | preempt stage (binaryen.js) s | wasm-opt passes, threads | wasm-opt s | peak RSS MiB | output MiB | binaryen.js cold s (whole instrument) | gridvm run with native module |',
    '|---|---:|---|---:|---:|---:|---:|---|');
  for (const r of results) {
    const n = r.native;
    if (!n) continue;
    for (const wo of [n.wo1, n.wo2]) {
      if (!wo) continue;
      L.push(`| ${r.p.name} | ${sec(n.preempt.ms as number)} | ${wo.threads} | ${wo.ok ? sec(wo.ms) : `**${wo.error}**`} | ${f0(wo.peakRssMiB)} | ${mib(wo.bytes)} | ` +
        `${r.cold.ok ? sec(r.cold.ms) : r.cold.timedOut ? `aborted at ${limitS}` : 'failed'} | ${n.run && wo === n.wo1 ? `${n.run.ok ? 'ok' : 'FAILED'}: ${n.run.note}` : ''} |`);
    }
  }
  L.push('');
  return L.join('\n');
}

function await_cpus(): number {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    return NaN;
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child-instrument') return childInstrument(argv[1]!, argv[2] as 'cold' | 'cached', Number(argv[3] ?? 1));
  if (argv[0] === '--child-preempt') return childPreempt(argv[1]!, argv[2]!);
  if (argv[0] === '--child-native') return childNative(argv[1]!, argv[2]!);
  const opt = (k: string): string | undefined => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const only = opt('--only');
  const limitS = Number(opt('--limit-s') ?? 360);
  const doWasmOpt = !argv.includes('--no-wasm-opt') && existsSync('/usr/bin/wasm-opt');
  const fetchUrl = pathToFileURL(join(ROOT, 'benchmarks', 'real', 'fetch.mjs')).href;
  const { fetchReal } = (await import(fetchUrl)) as { fetchReal: (o: { quiet: boolean }) => Promise<unknown> };
  await fetchReal({ quiet: false });
  process.env.GRIDVM_CACHE_DIR = CACHE; // run() and the resume workers use this cache
  mkdirSync(CACHE, { recursive: true });
  const log = (s: string): void => console.error(`[real] ${s}`);

  const results: ProgramResult[] = [];
  for (const p of programs()) {
    if (only && p.name !== only) continue;
    const bytes = new Uint8Array(readFileSync(p.wasm));
    const r: ProgramResult = { p, bytes: bytes.length, functions: definedFunctions(bytes), cold: { ok: false }, level: 1, plainRuns: [] };
    results.push(r);

    log(`${p.name}: uninstrumented runs`);
    r.plainRaw = runPlain(p, false);
    r.plain = p.renumberShim ? runPlain(p, true) : r.plainRaw;
    r.plainRuns.push(r.plain.ms);
    if (!p.instrumentOnly) r.plainRuns.push(runPlain(p, !!p.renumberShim).ms);
    log(`${p.name}: plain ${f0(r.plain.ms)} ms, exit ${r.plain.code}, ${r.plain.stdout.length} B` +
      (p.renumberShim ? ` (without the fd_renumber shim: exit ${r.plainRaw.code}, ${r.plainRaw.stdout.length} B)` : ''));

    log(`${p.name}: instrument cold (limit ${limitS} s)`);
    r.cold = spawnChild(['--child-instrument', p.wasm, 'cold', '1'], limitS);
    log(`${p.name}: cold ${JSON.stringify({ ...r.cold, info: undefined })}`);
    if (!r.cold.ok && r.cold.timedOut && !p.instrumentOnly) {
      // the default (Asyncify + -O1) did not finish: try without the optimisation (bigger, slower code)
      r.coldO1 = r.cold;
      log(`${p.name}: instrument cold at optimizeLevel 0 (limit ${limitS} s)`);
      r.cold = spawnChild(['--child-instrument', p.wasm, 'cold', '0'], limitS);
      r.level = 0;
      log(`${p.name}: cold -O0 ${JSON.stringify({ ...r.cold, info: undefined })}`);
    }
    if (r.cold.ok && !p.instrumentOnly) {
      r.cached = spawnChild(['--child-instrument', p.wasm, 'cached', String(r.level)], limitS);
      log(`${p.name}: cached ${sec(r.cached.ms)} s`);
      runLevel = r.level;
      r.inst = await measureInstrumented(p, r.plain.stdout);
      runLevel = 1;
      if (r.inst.ok) r.ckpt = await checkpointCheck(p, r.plain.stdout, r.inst.fuel);
    }

    if (doWasmOpt && !p.instrumentOnly) {
      const pre = join(REAL, `${p.name}.preempt.wasm`);
      const out = join(REAL, `${p.name}.native.wasm`);
      log(`${p.name}: preempt-only module for wasm-opt`);
      const preempt = spawnChild(['--child-preempt', p.wasm, pre], limitS) as unknown as Record<string, unknown>;
      r.native = { preempt };
      if (preempt.ok) {
        const cores = String(await_cpus());
        log(`${p.name}: wasm-opt --asyncify -O1`);
        r.native.wo1 = wasmOpt(pre, out, limitS, cores, true);
        log(`${p.name}: ${JSON.stringify(r.native.wo1)}`);
        if (r.native.wo1.ok) {
          // run the natively instrumented module through run(): seed the module cache under the original's key
          // in a child: vm/job.ts keeps modules in a per-process memory cache under the original's hash
          writeFileSync(join(REAL, `${p.name}.expected.out`), r.plain.stdout);
          writeFileSync(join(REAL, `${p.name}.native.json`), JSON.stringify({ globals: preempt.globals, info: r.cold.info ?? null, plainMs: Math.min(...r.plainRuns), functions: r.functions, ckpt: !r.inst?.ok }));
          const nr = spawnChild(['--child-native', p.name, out], limitS * 3) as unknown as Record<string, unknown>;
          r.native.run = (nr.run as { ms: number; ok: boolean; note: string }) ?? { ms: 0, ok: false, note: String(nr.error) };
          if (nr.ckpt) r.native.ckpt = nr.ckpt as CheckpointCheck;
        }
        log(`${p.name}: wasm-opt --asyncify (no -O)`);
        r.native.wo2 = wasmOpt(pre, `${out}.o0`, limitS, cores, false);
        log(`${p.name}: ${JSON.stringify(r.native.wo2)}`);
        rmSync(`${out}.o0`, { force: true });
      }
    }
  }
  const md = report(results, limitS) + observations(results);
  writeFileSync(join(ROOT, 'benchmarks', 'real', 'RESULTS-real.md'), md);
  console.log(md);
}

async function measureInstrumented(p: Program, expect: Buffer): Promise<NonNullable<ProgramResult['inst']>> {
  const ms: number[] = [];
  let fuel = 0;
  let note = '';
  for (let i = 0; i < 2; i++) {
    const r = await run(p.wasm, runOpts(p));
    if (r.trap) return { ms, fuel, ok: false, note: `trap ${r.trap.reason}: ${r.trap.message} ${r.trap.stack.slice(0, 3).join(' < ')}`, trap: r.trap.reason };
    ms.push(r.elapsedMs);
    fuel = r.fuelUsed;
    const same = Buffer.from(r.stdout).equals(expect);
    note = same ? 'output identical to uninstrumented' : `output differs (${r.stdout.length} vs ${expect.length} B, exit ${r.exitCode})`;
    if (!same && i === 0) break;
  }
  return { ms, fuel, ok: ms.length > 0, note };
}

/** Child: seed the module cache with the natively instrumented module, run it through run(), check checkpoints. */
async function childNative(name: string, nativeWasm: string): Promise<void> {
  process.env.GRIDVM_CACHE_DIR = CACHE;
  const p = programs().find((x) => x.name === name)!;
  const side = JSON.parse(readFileSync(join(REAL, `${name}.native.json`), 'utf8')) as { globals: string[]; info: InstrumentInfo | null; plainMs: number; functions: number; ckpt: boolean };
  const expect = readFileSync(join(REAL, `${name}.expected.out`));
  const original = new Uint8Array(readFileSync(p.wasm));
  const info: InstrumentInfo = side.info ?? {
    version: INSTRUMENT_VERSION,
    globals: side.globals,
    memoryExport: 'memory',
    entry: '_start',
    stats: { functions: side.functions } as unknown as InstrumentInfo['stats'],
  };
  // Put the native module into vm/job.ts's per-process module cache under the original's key (whatever the key
  // format): a cache whose get() answers with it. run() below then finds it there.
  const nativeBytes = new Uint8Array(readFileSync(nativeWasm));
  await prepareJob(original, { cache: { get: async () => ({ bytes: nativeBytes, info }), put: async () => {} } });
  const out: Record<string, unknown> = { ok: true };
  {
    const res = await run(p.wasm, runOpts(p));
    if (res.trap) {
      out.run = { ms: res.elapsedMs, ok: false, note: `trap ${res.trap.reason}: ${res.trap.message.slice(0, 200)} ${res.trap.stack.slice(0, 3).join(' < ')}` };
    } else {
      const same = Buffer.from(res.stdout).equals(expect);
      out.run = {
        ms: res.elapsedMs,
        ok: same,
        note: `${sec(res.elapsedMs)} s = ${(res.elapsedMs / side.plainMs).toFixed(2)}× uninstrumented, fuel ${res.fuelUsed}, output ${same ? 'identical' : `DIFFERS (${res.stdout.length} vs ${expect.length} B)`}`,
      };
      if (same && side.ckpt) out.ckpt = await checkpointCheck(p, expect, res.fuelUsed);
    }
  }
  process.stdout.write(`\n@@REPORT ${JSON.stringify(out)}\n`);
}

function observations(results: ProgramResult[]): string {
  const L: string[] = ['## Observations', ''];
  for (const r of results) {
    if (r.p.renumberShim && r.plainRaw && r.plain && !r.plainRaw.stdout.equals(r.plain.stdout)) {
      L.push(`- ${r.p.name}: on the unmodified kernel the workload stops early (exit ${r.plainRaw.code}, ${r.plainRaw.stdout.length} B of ` +
        `${r.plain.stdout.length} B): \`fd_renumber(6, 1)\` after \`fd_renumber(1, 7)\` returns EBADF because kernel/process/fd-ops.ts ` +
        '`fdRenumber` requires `to` to be open. Uninstrumented numbers use a shim with the proposed fix.');
    }
  }
  L.push('');
  return L.join('\n');
}

await main();
