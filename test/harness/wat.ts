// Small WAT test modules: assemble them, and run the original (uninstrumented) on gridvm's kernel for the expected
// output.
import binaryen from 'binaryen';
import { ProcExit, Process } from '../../kernel/index.js';
import { createNodePlatform } from '../../runtime-node/platform.js';

/** Assemble WAT text with these Binaryen features; throws if it does not validate. */
export function wat(text: string, features: number): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    m.setFeatures(features);
    if (!m.validate()) throw new Error('the test module does not validate');
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** The original module's stdout and exit code, run directly on the kernel (no instrumentation). */
export function reference(bytes: Uint8Array): Buffer & { code: number } {
  const out: Uint8Array[] = [];
  const p = new Process({ args: ['t'], env: [], mounts: [], platform: createNodePlatform(), stdout: (b) => out.push(b.slice()), stderr() {} });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), p.imports({ yield() {}, tick() {}, memory_limit() {} }));
  p.setMemory(inst.exports.memory as WebAssembly.Memory);
  let code = 0;
  try {
    (inst.exports._start as () => void)();
  } catch (e) {
    if (!(e instanceof ProcExit)) throw e;
    code = e.code;
  }
  return Object.assign(Buffer.concat(out), { code });
}
