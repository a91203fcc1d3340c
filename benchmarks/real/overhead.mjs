#!/usr/bin/env node
// Run overhead of gridvm's instrumentation on a large real program, measured side by side: the original module on
// gridvm's kernel (no instrumentation, the `gridvm` imports are stubs) and the instrumented one through run(),
// alternating, on a worker thread with a 256 MiB stack (as the CLI runs jobs), after one untimed round. Prints each
// round and the ratios of the best and of the medians; the output of every instrumented run must equal the plain
// run's (exit code 1 otherwise).
//
//   node tools/build.mjs && node benchmarks/real/fetch.mjs && node benchmarks/real/overhead.mjs [--program ruby|yosys|yosys-long] [--rounds 8]
//
// The first run instruments the program (CRuby 51 MiB, yosys 29 MiB; minutes, with progress on stderr) into the
// module cache (~/.cache/gridvm, GRIDVM_CACHE_DIR); later runs start at once. The workloads are RESULTS-real.md's.
//
// --opt-level N: instrument at optimisation level N (default 1) instead.
//
// --cold: each round runs the job once in a fresh process per side instead (plain, then instrumented from the disk
// cache), as a single `gridvm run` does: V8 compiles the code it reaches and tiers it up during that one run. Reports
// the run's time and the time from the start of loading (read, hash, compile) to the end, per side.
//   node benchmarks/real/overhead.mjs --program yosys --cold --rounds 5
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const here = dirname(fileURLToPath(import.meta.url));
const REAL = join(here, '..', 'build', 'real');
const { RUBY_ARGS, VERILOG, YOSYS_ARGS } = await import('../../dist/benchmarks/real/workloads.js');
const PROGRAMS = {
  ruby: {
    wasm: join(REAL, 'ruby.wasm'),
    args: RUBY_ARGS,
    dirs: [],
    memDirs: [],
  },
  yosys: {
    wasm: join(REAL, 'yosys.wasm'),
    args: YOSYS_ARGS,
    dirs: [{ host: join(REAL, 'work-yosys'), guest: '/work' }, { host: join(REAL, 'yosys-share'), guest: '/share', readonly: true }],
    memDirs: ['/tmp'],
  },
};
// a longer run of the same synthesis (a 40-bit ALU): less of it is V8 compiling and tiering up the two modules
PROGRAMS['yosys-long'] = { ...PROGRAMS.yosys, args: ['-Q', '-T', '-p', 'read_verilog /work/alu.v; chparam -set W 40 top; synth -top top; stat'] };

if (isMainThread) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, program: { type: 'string', default: 'ruby' }, cold: { type: 'boolean' }, side: { type: 'string' }, 'opt-level': { type: 'string' } } });
  const optLevel = values['opt-level'] === undefined ? undefined : Number(values['opt-level']);
  const rounds = Number(values.rounds);
  const program = values.program;
  if (!(program in PROGRAMS)) throw new Error(`--program: one of ${Object.keys(PROGRAMS).join(', ')} (not ${program})`);
  mkdirSync(join(REAL, 'work-yosys'), { recursive: true });
  writeFileSync(join(REAL, 'work-yosys', 'alu.v'), VERILOG);
  if (values.cold) {
    await cold(program, rounds, optLevel);
    process.exit(process.exitCode ?? 0);
  }
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { rounds, program, side: values.side, optLevel }, resourceLimits: { stackSizeMb: 256 } });
  const rows = [];
  w.on('message', (m) => {
    if (m.progress) return void process.stderr.write(`\r${m.progress.padEnd(60)}`);
    if (m.once) return void console.log(JSON.stringify(m.once));
    rows.push(m);
    console.log(`round ${rows.length}: plain ${m.plain.toFixed(0)} ms, instrumented ${m.inst.toFixed(0)} ms (${(m.inst / m.plain).toFixed(3)}x), output ${m.same ? 'identical' : 'DIFFERS'}`);
  });
  w.on('error', (e) => {
    console.error(e);
    process.exitCode = 1;
  });
  w.on('exit', () => {
    if (!rows.length) return;
    const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const plain = rows.map((r) => r.plain);
    const inst = rows.map((r) => r.inst);
    // V8 keeps tiering both modules up over the first rounds: the second half is nearer the steady state
    const half = rows.length >> 1;
    // the median of the rounds' own ratios pairs each instrumented run with the plain run next to it, in the same
    // phase of the machine (it runs fast or slow for tens of seconds at a time); the ratio of the medians does not
    const ratios = rows.map((r) => r.inst / r.plain);
    console.log(`${program}: best ${(Math.min(...inst) / Math.min(...plain)).toFixed(3)}x, median of the rounds' ratios ${med(ratios).toFixed(3)}x, ratio of the medians ${(med(inst) / med(plain)).toFixed(3)}x over ${rows.length} rounds, ` +
      `median of the last ${rows.length - half} ${(med(inst.slice(half)) / med(plain.slice(half))).toFixed(3)}x; ` +
      `all outputs identical: ${rows.every((r) => r.same)}`);
    if (!rows.every((r) => r.same)) process.exitCode = 1;
  });
} else {
  const { run, Process, ProcExit } = await import('../../dist/runtime-node/index.js');
  const { nodePlatform } = await import('../../dist/runtime-node/platform.js');
  const P = PROGRAMS[workerData.program];
  const loadStart = performance.now();
  const mounts = [...P.dirs.map((d) => ({ guest: d.guest, kind: 'host', host: d.host, readonly: !!d.readonly })), ...P.memDirs.map((g) => ({ guest: g, kind: 'memory' }))];
  const original = new Uint8Array(readFileSync(P.wasm));
  const mod = workerData.side === 'instrumented' ? undefined : new WebAssembly.Module(original);
  const plain = () => {
    const out = [];
    const proc = new Process({ args: [workerData.program, ...P.args], env: [], mounts, platform: nodePlatform(), stdout: (b) => void out.push(Buffer.from(b)), stderr: () => {} });
    const inst = new WebAssembly.Instance(mod, proc.imports(new Proxy({}, { get: () => () => {} })));
    proc.setMemory(inst.exports.memory);
    const t = performance.now();
    try {
      inst.exports._start();
    } catch (e) {
      if (!(e instanceof ProcExit)) throw e;
    }
    return { ms: performance.now() - t, out: Buffer.concat(out) };
  };
  const opts = {
    name: workerData.program, args: P.args, dirs: P.dirs, memDirs: P.memDirs, stdout: 'buffer', stderr: 'buffer',
    instrument: { ...(workerData.optLevel === undefined ? {} : { optimizeLevel: workerData.optLevel }), onProgress: (stage, f) => parentPort.postMessage({ progress: `instrumenting: ${stage} ${Math.round(f * 100)}%` }) },
  };
  if (workerData.side) {
    // --cold's child: one run of one side in this fresh process, timed from the start of loading (the plain side's
    // read and compile of the original module above; the instrumented side's run() reads, hashes and compiles)
    let once;
    if (workerData.side === 'plain') {
      const p = plain();
      once = { run: p.ms, total: performance.now() - loadStart, out: p.out.toString('base64') };
    } else {
      const t0 = performance.now();
      const r = await run(P.wasm, opts);
      once = { run: r.elapsedMs, total: performance.now() - t0, out: Buffer.from(r.stdout).toString('base64') };
    }
    parentPort.postMessage({ once });
  } else {
    // one untimed round first: instrumentation (or the cache), compilation and V8's tier-up of both modules
    plain();
    await run(P.wasm, opts);
    for (let i = 0; i < workerData.rounds; i++) {
      const p = plain();
      const r = await run(P.wasm, opts);
      if (r.trap) throw new Error(`trap: ${r.trap.message}`);
      parentPort.postMessage({ plain: p.ms, inst: r.elapsedMs, same: Buffer.from(r.stdout).equals(p.out) });
    }
  }
}

/** --cold: rounds of (plain, instrumented), each side one run in a fresh process (see the header). */
async function cold(program, rounds, optLevel) {
  const { execFileSync } = await import('node:child_process');
  const one = (side) => {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--program', program, '--side', side, ...(optLevel === undefined ? [] : ['--opt-level', String(optLevel)])], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] });
    return JSON.parse(out.trim().split('\n').pop());
  };
  // the instrumented module into the disk cache first (minutes the first time), untimed
  one('instrumented');
  const rows = [];
  for (let i = 0; i < rounds; i++) {
    const p = one('plain');
    const q = one('instrumented');
    const same = p.out === q.out;
    rows.push({ p, q, same });
    console.log(`cold round ${i + 1}: plain run ${p.run.toFixed(0)} ms (load+run ${p.total.toFixed(0)}), instrumented run ${q.run.toFixed(0)} ms (load+run ${q.total.toFixed(0)}): ${(q.run / p.run).toFixed(3)}x run, ${(q.total / p.total).toFixed(3)}x load+run, output ${same ? 'identical' : 'DIFFERS'}`);
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const r = (f) => med(rows.map((x) => f(x.q) / f(x.p)));
  console.log(`${program} cold: median of ${rounds} rounds: run ${r((x) => x.run).toFixed(3)}x, load+run ${r((x) => x.total).toFixed(3)}x; all outputs identical: ${rows.every((x) => x.same)}`);
  if (!rows.every((x) => x.same)) process.exitCode = 1;
}
