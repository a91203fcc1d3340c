// Runs a WASI module under node:wasi in a child process and prints its run times as JSON on stdout:
//   node dist/benchmarks/nodewasi-child.js WASM WARMUP ITERS [args...]
// A child process because node:wasi aborts the whole process when a job's memory grows past ~16 MiB
// (nodejs/node#46777): the parent reports "crashed" instead of dying. The module is compiled once and reused (as
// gridvm's cache does), each run is a fresh WASI + instance + _start, stdout/stderr go to /dev/null.
import { openSync, readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const [wasm, warmupS, itersS, ...args] = process.argv.slice(2);
if (!wasm) throw new Error('usage: nodewasi-child WASM WARMUP ITERS [args...]');
const mod = new WebAssembly.Module(readFileSync(wasm));
const devNull = openSync('/dev/null', 'w');
const name = wasm.split('/').pop()!;
const once = (): number => {
  const w = new WASI({ version: 'preview1', args: [name, ...args], env: {}, returnOnExit: true, stdout: devNull, stderr: devNull });
  const inst = new WebAssembly.Instance(mod, w.getImportObject() as WebAssembly.Imports);
  return w.start(inst);
};
for (let i = 0; i < Number(warmupS); i++) once();
const times: number[] = [];
let code = 0;
for (let i = 0; i < Number(itersS); i++) {
  const t0 = performance.now();
  code = once();
  times.push(performance.now() - t0);
}
process.stdout.write(JSON.stringify({ times, code }));
