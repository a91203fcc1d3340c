// Child process for the instrumentation-time benchmark: measures prepareJob in a fresh Node process, where nothing
// is warm (Binaryen not yet loaded, V8 not warmed up, gridvm's in-memory module cache empty).
//   node dist/benchmarks/instrument-child.js WASM cold          no module cache at all: parse, instrument, compile
//   node dist/benchmarks/instrument-child.js WASM disk DIR      the on-disk cache in DIR (filled by the parent)
// Prints JSON {loadMs, prepareMs, cached} on stdout: loadMs = importing what prepareJob needs (vm/job.ts; Binaryen is
// imported by prepareJob itself on a miss, so the cold row's prepare includes loading it).
import { readFileSync } from 'node:fs';

const [wasm, mode, dir] = process.argv.slice(2);
if (!wasm || (mode !== 'cold' && mode !== 'disk')) throw new Error('usage: instrument-child WASM cold|disk [DIR]');
const bytes = new Uint8Array(readFileSync(wasm));
const t0 = performance.now();
const vm = await import('../vm/job.js');
const { DiskModuleCache } = await import('../runtime-node/cache.js');
const t1 = performance.now();
const job = await vm.prepareJob(bytes, mode === 'disk' ? { cache: new DiskModuleCache(dir) } : {});
const t2 = performance.now();
process.stdout.write(JSON.stringify({ loadMs: t1 - t0, prepareMs: t2 - t1, cached: job.cached }));
