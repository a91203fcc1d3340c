// Piscina worker for benchmarks/throughput.bench.ts: runs one tiny WASI job per task, either with gridvm's in-process
// run() (instrumented module, gridvm's kernel; cache warm after the first task) or with node:wasi (module compiled
// once per worker, a fresh WASI + instance per task). stdout/stderr are discarded. Returns the job's exit code.
import { openSync, readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
import { run } from '../runtime-node/run.js';

export interface ThroughputTask {
  wasm: string;
  mode: 'gridvm' | 'wasi';
}

const bytes = new Map<string, Uint8Array>();
const modules = new Map<string, WebAssembly.Module>();
let devNull: number | undefined; // /dev/null for node:wasi's stdout and stderr

export default async function task(t: ThroughputTask): Promise<number> {
  let b = bytes.get(t.wasm);
  if (!b) bytes.set(t.wasm, (b = new Uint8Array(readFileSync(t.wasm))));
  const name = t.wasm.split('/').pop()!;
  if (t.mode === 'gridvm') {
    const r = await run(b, { name, stdout: 'ignore', stderr: 'ignore' });
    return r.exitCode ?? -1;
  }
  let mod = modules.get(t.wasm);
  if (!mod) modules.set(t.wasm, (mod = new WebAssembly.Module(b as Uint8Array<ArrayBuffer>)));
  devNull ??= openSync('/dev/null', 'w');
  const w = new WASI({ version: 'preview1', args: [name], env: {}, returnOnExit: true, stdout: devNull, stderr: devNull });
  const inst = new WebAssembly.Instance(mod, w.getImportObject() as WebAssembly.Imports);
  return w.start(inst);
}
