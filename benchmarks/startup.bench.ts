// Row 5: start + run of a tiny WASI job in-process, side by side:
//   run()            runtime-node's run(bytes) with the module cache warm (prepareJob memory-cache hit)
//   Machine          new Process + new Machine + run() + release(), the compiled job in hand, with an InstancePool:
//                    the instance of the previous cycle, reset, runs the job (as run() and the grid's runners do)
//   fresh instance   the same, instantiating each time, its memory from a MemoryPool (taken zeroed, given back)
//   original         the uninstrumented module on gridvm's kernel (no Machine), its output gathered as a Machine does
//   node:wasi        new WASI + new Instance + start, same compiled module reused (in a child process: it segfaults)
// Every variant writes the job's stdout/stderr to /dev/null. gridvm's variants (and the original on its kernel)
// gather the job's output between safe points (MachineOptions.outputBuffer): hello's ten lines, which wasi-libc
// line-buffers, are one write(2) there and ten under node:wasi (~4 µs each here, most of hello's time before).
import { readFileSync, writeSync } from 'node:fs';
import { Process } from '../kernel/index.js';
import { createPageEngine, InstancePool, Machine, MemoryPool, prepareJob } from '../vm/index.js';
import { run } from '../runtime-node/run.js';
import { nodeWasiChild, runOriginal } from './overhead.bench.js';
import { nodePlatform } from '../runtime-node/platform.js';
import { devNull, guestWasm, log, median, ratio, table, timeSync, us, type Section, type TargetCheck } from './lib.js';

/**
 * Warm-up cycles of every variant before it is timed. Steady state takes thousands: the Machine's mean over 300
 * cycles was ~200 µs after 300 warm-ups, ~100 after 1000 and ~27 after 3000 (V8 still optimising the shared code of
 * the kernel and the Machine, and the job's own Wasm tiering up).
 */
const WARM = 3000;

export async function benchStartup(opts: { iters?: number; guests?: string[] } = {}): Promise<Section> {
  const iters = opts.iters ?? 300;
  const guests = opts.guests ?? ['hello', 'as_hello'];
  const fd = devNull();
  const sinkFn = (b: Uint8Array) => void writeSync(fd, b);
  const pages = createPageEngine('auto');
  const rows: string[][] = [];
  const targets: TargetCheck[] = [];
  for (const name of guests) {
    log(`startup: ${name}`);
    const bytes = new Uint8Array(readFileSync(guestWasm(name)));
    const mod = new WebAssembly.Module(bytes);
    const job = await prepareJob(bytes);
    const args = [name, 'a'];
    const mkProc = () => new Process({ args, env: ['HOME=/'], mounts: [], platform: nodePlatform(), stdout: sinkFn, stderr: sinkFn });
    const runOnce = async (): Promise<void> => {
      const r = await run(bytes, { name, args: ['a'], env: ['HOME=/'], stdout: sinkFn, stderr: sinkFn });
      if (r.exitCode !== 0) throw new Error(`${name} exited ${r.exitCode}`);
    };
    const pool = new MemoryPool();
    const decl = job.info.memory!;
    const machineOnce = (): void => {
      const m = new Machine(job, mkProc(), { pages, now: () => performance.now(), memory: pool.take(decl.initial, decl, { zeroed: true }) });
      const o = m.run();
      pool.give(m.memory);
      if (o.kind !== 'exit' || o.code !== 0) throw new Error(`${name}: ${o.kind}`);
    };
    const instances = new InstancePool();
    const reuseOnce = (): void => {
      const m = new Machine(job, mkProc(), { pages, now: () => performance.now(), instances });
      const o = m.run();
      if (!m.release()) throw new Error(`${name}: the instance was not taken back`);
      if (o.kind !== 'exit' || o.code !== 0) throw new Error(`${name}: ${o.kind}`);
    };
    // run() and the Machine share most of their code (kernel, Machine, the guest's Wasm), so they are warmed together
    // and timed alternately, cycle by cycle. Timed one after the other with 50 warm-up cycles each, the first (run())
    // was measured while V8 was still optimising that shared code (in a fresh process the first 300 cycles after 50
    // warm-ups were often 20-30% slower than later ones, for either variant), and load from other processes fell on
    // one variant's window only.
    for (let i = 0; i < WARM; i++) {
      await runOnce();
      reuseOnce();
    }
    const vRun: number[] = [];
    const vMachine: number[] = [];
    for (let i = 0; i < iters; i++) {
      let t0 = performance.now();
      await runOnce();
      vRun.push(performance.now() - t0);
      t0 = performance.now();
      reuseOnce();
      vMachine.push(performance.now() - t0);
    }
    // instantiating each time, timed on its own afterwards: interleaved, its garbage (an instance per cycle) was
    // collected during the other variants' cycles and made them look slower than they run on their own
    const vFresh = timeSync(machineOnce, iters, WARM);
    if (instances.stats.misses !== 1) throw new Error(`${name}: ${instances.stats.misses} instances made, expected 1`);
    const vOrig = timeSync(() => {
      runOriginal(mod, mkProc());
    }, iters, WARM);
    // node:wasi in a child process, with fewer cycles: here it segfaults after ~500-1000 instantiations in one
    // process (Node 20), which took the whole benchmark down with it; its path is native code, warm after 50
    let vWasi: number[] = [];
    for (let attempt = 0; attempt < 3 && !vWasi.length; attempt++) {
      const r = nodeWasiChild(guestWasm(name), ['a'], 50, iters);
      if (r.times) vWasi = r.times;
      else log(`startup: node:wasi ${r.error}`);
    }
    const mRun = median(vRun);
    const mMach = median(vMachine);
    const mFresh = median(vFresh);
    const mOrig = median(vOrig);
    const mWasi = vWasi.length ? median(vWasi) : NaN;
    rows.push([name, us(mRun), us(mMach), us(mFresh), us(mOrig), us(mWasi), ratio(mRun / mWasi), ratio(mMach / mWasi)]);
    targets.push({ what: `tiny job (${name}) start+run, run() with warm cache`, target: '<= 40 µs', measured: `${us(mRun)} µs (node:wasi ${us(mWasi)} µs)`, met: mRun * 1000 <= 40 });
    targets.push({ what: `tiny job (${name}) start+run, Machine-level`, target: '<= 40 µs', measured: `${us(mMach)} µs (instantiating each time: ${us(mFresh)} µs)`, met: mMach * 1000 <= 40 });
  }
  const body = [
    `Median of ${iters} start+run cycles after ${WARM} warm-up cycles of each variant, in one process (run() and Machine: warmed and timed alternately, cycle by cycle; the others one after the other); stdout/stderr go to /dev/null in every variant.`,
    '',
    table(['guest', 'run() (cache warm) µs', 'Machine (reused instance) µs', 'Machine, fresh instance µs', 'original on kernel µs', 'node:wasi µs', 'run() / node:wasi', 'Machine / node:wasi'], rows),
  ].join('\n');
  return { title: '5. Tiny job start + run', body, targets };
}
