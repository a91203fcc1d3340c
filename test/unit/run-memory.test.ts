// run() starts fresh jobs in pooled memories (a finished job's memory serves the next job of its size): the next
// job must see an all-zero memory, as a new one would, whatever the previous job left in it.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { run } from '../../runtime-node/run.js';

function wat(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

// fills its whole memory (2 pages) with 0xAA, then exits 0
const DIRTY = wat(`(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (memory.fill (i32.const 0) (i32.const 0xAA) (i32.const 131072))
    (call $exit (i32.const 0))))`);

// counts the non-zero bytes of its memory (2 pages, no data segment) and exits with min(count, 255)
const CHECK = wat(`(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (local $i i32) (local $n i32)
    (loop $l
      (if (i32.load8_u (local.get $i)) (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 131072))))
    (call $exit (select (local.get $n) (i32.const 255) (i32.lt_u (local.get $n) (i32.const 255))))))`);

describe('run() and its pooled memories', () => {
  it('a job started after another of the same memory size sees only zeros', async () => {
    for (let i = 0; i < 3; i++) {
      const a = await run(DIRTY, { cache: false });
      expect(a.exitCode).toBe(0);
      expect(a.memoryPeakBytes).toBe(131072);
      const b = await run(CHECK, { cache: false });
      expect(b.trap?.message).toBeUndefined();
      expect(b.exitCode).toBe(0);
    }
  });
});
