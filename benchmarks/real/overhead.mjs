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
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, program: { type: 'string', default: 'ruby' } } });
  const rounds = Number(values.rounds);
  const program = values.program;
  if (!(program in PROGRAMS)) throw new Error(`--program: one of ${Object.keys(PROGRAMS).join(', ')} (not ${program})`);
  mkdirSync(join(REAL, 'work-yosys'), { recursive: true });
  writeFileSync(join(REAL, 'work-yosys', 'alu.v'), VERILOG);
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { rounds, program }, resourceLimits: { stackSizeMb: 256 } });
  const rows = [];
  w.on('message', (m) => {
    if (m.progress) return void process.stderr.write(`\r${m.progress.padEnd(60)}`);
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
    console.log(`${program}: best ${(Math.min(...inst) / Math.min(...plain)).toFixed(3)}x, median ${(med(inst) / med(plain)).toFixed(3)}x over ${rows.length} rounds, ` +
      `median of the last ${rows.length - half} ${(med(inst.slice(half)) / med(plain.slice(half))).toFixed(3)}x; ` +
      `all outputs identical: ${rows.every((r) => r.same)}`);
    if (!rows.every((r) => r.same)) process.exitCode = 1;
  });
} else {
  const { run, Process, ProcExit } = await import('../../dist/runtime-node/index.js');
  const { nodePlatform } = await import('../../dist/runtime-node/platform.js');
  const P = PROGRAMS[workerData.program];
  const mounts = [...P.dirs.map((d) => ({ guest: d.guest, kind: 'host', host: d.host, readonly: !!d.readonly })), ...P.memDirs.map((g) => ({ guest: g, kind: 'memory' }))];
  const original = new Uint8Array(readFileSync(P.wasm));
  const mod = new WebAssembly.Module(original);
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
    instrument: { onProgress: (stage, f) => parentPort.postMessage({ progress: `instrumenting: ${stage} ${Math.round(f * 100)}%` }) },
  };
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
