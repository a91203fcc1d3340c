// Child process for benchmarks/throughput.bench.ts: a piscina pool of POOL threads running WASM as tiny jobs
// (throughput-worker.ts, MODE gridvm = gridvm's run(), wasi = node:wasi), or (MODE grid) a grid of POOL thread nodes
// given each job with Grid.submit; BATCHES timed batches of JOBS tasks submitted at once, after WARMUP untimed
// batches. Prints {"batchMs":[...]} on stdout. Each runner in a fresh process of its own, so neither inherits the
// other's JIT state or heap.
//   node dist/benchmarks/throughput-pool.js MODE WASM POOL JOBS BATCHES WARMUP
// A child process because node:wasi in worker threads segfaults intermittently on Node 20 (seen here in 1 of 2
// runs of 2000 tasks): the parent then reports a crash instead of dying.
import { readFileSync } from 'node:fs';
import { Piscina } from 'piscina';
import { Grid } from '../runtime-node/grid/coordinator.js';

const [mode, wasm, poolS, jobsS, batchesS, warmupS] = process.argv.slice(2);
if (!mode || !wasm) throw new Error('usage: throughput-pool MODE WASM POOL JOBS BATCHES WARMUP');
const size = Number(poolS), jobs = Number(jobsS), batches = Number(batchesS), warmup = Number(warmupS ?? 1);

let batch: () => Promise<number>;
let close: () => Promise<void>;
if (mode === 'grid') {
  const grid = await Grid.start({ nodes: size, isolate: 'thread' });
  const bytes = new Uint8Array(readFileSync(wasm));
  const name = wasm.split('/').pop()!;
  batch = async () => {
    const t0 = performance.now();
    const ps: Promise<{ exitCode: number | null }>[] = [];
    for (let i = 0; i < jobs; i++) ps.push(grid.submit({ wasm: bytes, name }).then((j) => j.done));
    const rs = await Promise.all(ps);
    const bad = rs.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`a job on the grid exited ${bad.exitCode}`);
    return performance.now() - t0;
  };
  close = () => grid.close();
} else {
  const pool = new Piscina({ filename: new URL('./throughput-worker.js', import.meta.url).href, minThreads: size, maxThreads: size, idleTimeout: 60_000 });
  batch = async () => {
    const t0 = performance.now();
    const codes = await Promise.all(Array.from({ length: jobs }, () => pool.run({ wasm, mode })));
    const bad = codes.find((c) => c !== 0);
    if (bad !== undefined) throw new Error(`a job exited ${bad}`);
    return performance.now() - t0;
  };
  close = () => pool.destroy();
}
for (let i = 0; i < warmup; i++) await batch();
const batchMs: number[] = [];
for (let i = 0; i < batches; i++) batchMs.push(await batch());
await close();
process.stdout.write(JSON.stringify({ batchMs }));
