// Child process for benchmarks/throughput.bench.ts: a piscina pool of POOL threads running WASM as tiny jobs
// (throughput-worker.ts, MODE gridvm = gridvm's run(), wasi = node:wasi), BATCHES timed batches of JOBS tasks
// submitted at once, after one untimed batch. Prints {"batchMs":[...]} on stdout.
//   node dist/benchmarks/throughput-pool.js MODE WASM POOL JOBS BATCHES
// A child process because node:wasi in worker threads segfaults intermittently on Node 20 (seen here in 1 of 2
// runs of 2000 tasks): the parent then reports a crash instead of dying.
import { Piscina } from 'piscina';

const [mode, wasm, poolS, jobsS, batchesS] = process.argv.slice(2);
if (!mode || !wasm) throw new Error('usage: throughput-pool MODE WASM POOL JOBS BATCHES');
const size = Number(poolS), jobs = Number(jobsS), batches = Number(batchesS);
const pool = new Piscina({ filename: new URL('./throughput-worker.js', import.meta.url).href, minThreads: size, maxThreads: size, idleTimeout: 60_000 });
const batch = async (): Promise<number> => {
  const t0 = performance.now();
  const codes = await Promise.all(Array.from({ length: jobs }, () => pool.run({ wasm, mode })));
  const bad = codes.find((c) => c !== 0);
  if (bad !== undefined) throw new Error(`a job exited ${bad}`);
  return performance.now() - t0;
};
await batch();
const batchMs: number[] = [];
for (let i = 0; i < batches; i++) batchMs.push(await batch());
await pool.destroy();
process.stdout.write(JSON.stringify({ batchMs }));
