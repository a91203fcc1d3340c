// Job memories: instrumentation turns the job's memory into the import `gridvm.memory` (limits, data pages), the
// Machine links a memory it creates or one it is given, and MemoryPool keeps pre-faulted memories for warm processes.
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import {
  createMemory,
  instrument,
  InstrumentError,
  memoryLimits,
  memoryPages,
  MemoryPool,
  prepareJob,
  SnapshotError,
  type CompiledJob,
} from '../../vm/index.js';
import { memoryImportLimits } from '../../vm/wasmbin.js';
import { loadGuest, ownSnapshot, TestVm } from '../harness/grid.js';
import { hasClang } from '../harness/guests.js';

const PAGE = 65536;
const clang = hasClang() || process.env.CI === 'true';

/** A WASI command in WAT, compiled by Binaryen. */
function wat(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    m.setFeatures(binaryen.Features.MVP | binaryen.Features.BulkMemory | binaryen.Features.Atomics | binaryen.Features.Memory64);
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/**
 * Prints its static data (a data segment in page 1, an iovec in page 0), after checking that memory.grow stops at
 * the maximum (3 pages) when `max`.
 */
function staticDataModule(memoryDecl: string, max: boolean): Uint8Array {
  return wat(`(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    ${memoryDecl}
    (data (i32.const 70000) "static data ok\\n")
    (data (i32.const 16) "\\70\\11\\01\\00\\0f\\00\\00\\00")
    (func (export "_start")
      ${max ? `(if (i32.ne (memory.grow (i32.const 1)) (i32.const 2)) (then unreachable))
      (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))` : ''}
      (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))))`);
}

function imports(bytes: Uint8Array) {
  return WebAssembly.Module.imports(new WebAssembly.Module(bytes)).filter((i) => i.kind === 'memory');
}
function exportsOf(bytes: Uint8Array) {
  return WebAssembly.Module.exports(new WebAssembly.Module(bytes)).filter((i) => i.kind === 'memory');
}

describe('instrumentation: the job memory is imported as gridvm.memory', () => {
  it.skipIf(!clang)('a C guest: imports gridvm.memory, still exports `memory`, limits and data pages in the info', async () => {
    const job = await loadGuest('nbody');
    expect(imports(job.bytes)).toEqual([{ module: 'gridvm', name: 'memory', kind: 'memory' }]);
    expect(exportsOf(job.bytes)).toEqual([{ name: 'memory', kind: 'memory' }]);
    expect(job.info.memoryExport).toBe('memory');
    expect(job.info.memory).toEqual({ initial: 2 });
    expect(job.info.dataPages).toEqual([0]);
  });

  it('a module with a maximum keeps it; static data and memory.grow up to the maximum work', async () => {
    const out = instrument(staticDataModule('(memory (export "memory") 2 3)', true));
    expect(out.info.memory).toEqual({ initial: 2, maximum: 3 });
    expect(out.info.dataPages).toEqual([0, 1]);
    expect(memoryImportLimits(out.bytes)).toEqual({ initial: 2, maximum: 3 });
    expect(imports(out.bytes)).toEqual([{ module: 'gridvm', name: 'memory', kind: 'memory' }]);
    const job = await prepareJob(staticDataModule('(memory (export "memory") 2 3)', true));
    const vm = new TestVm(job);
    expect(vm.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(vm.stdout).toBe('static data ok\n');
    expect(memoryPages(vm.machine.memory)).toBe(3);
    // a supplied memory must have the declared maximum
    expect(() => new TestVm(job, { machine: { memory: createMemory({ initial: 2 }) } })).toThrow(/maximum/);
    const vm2 = new TestVm(job, { machine: { memory: createMemory({ initial: 2, maximum: 3 }) } });
    expect(vm2.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(vm2.stdout).toBe('static data ok\n');
  });

  it('a module that imports its memory (env.memory, not exported) now imports gridvm.memory and exports it', async () => {
    const bytes = staticDataModule('(import "env" "memory" (memory 2))', false);
    expect(imports(bytes)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(exportsOf(bytes)).toEqual([]);
    const job = await prepareJob(bytes);
    expect(imports(job.bytes)).toEqual([{ module: 'gridvm', name: 'memory', kind: 'memory' }]);
    expect(exportsOf(job.bytes)).toEqual([{ name: 'memory', kind: 'memory' }]);
    expect(job.info.memory).toEqual({ initial: 2, importedFrom: 'env.memory' });
    const vm = new TestVm(job);
    expect(vm.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(vm.stdout).toBe('static data ok\n');
  });

  it('a shared memory stays shared (and the Machine creates a shared one)', async () => {
    const bytes = staticDataModule('(memory (export "memory") 2 3 shared)', true);
    const out = instrument(bytes);
    expect(out.info.memory).toEqual({ initial: 2, maximum: 3, shared: true });
    expect(memoryImportLimits(out.bytes)).toEqual(out.info.memory);
    const job = await prepareJob(bytes);
    const vm = new TestVm(job);
    expect(vm.machine.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(vm.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(vm.stdout).toBe('static data ok\n');
  });

  it('memory64 modules are refused with a clear error', () => {
    const bytes = wat(`(module (memory (export "memory") i64 1) (func (export "_start")))`);
    expect(() => instrument(bytes)).toThrow(InstrumentError);
    expect(() => instrument(bytes)).toThrow(/memory64/);
  });
});

describe('MemoryPool', () => {
  const lim = { initial: 2 };

  it('take() gives exactly the pages asked for, pre-faulted, and remembers the limits', () => {
    const pool = new MemoryPool();
    const m = pool.take(5, lim);
    expect(memoryPages(m)).toBe(5);
    expect(memoryLimits(m)).toEqual({ initial: 2 });
    expect(pool.take(1, lim).buffer.byteLength).toBe(2 * PAGE); // never below the initial size
    expect(pool.stats).toEqual({ hits: 0, misses: 2, dropped: 0 });
  });

  it('reuses returned memories: the largest compatible one not larger than asked, grown to size', () => {
    const pool = new MemoryPool();
    const a = pool.take(3, lim);
    const b = pool.take(6, lim);
    const c = pool.take(4, { initial: 2, maximum: 100 });
    pool.give(a);
    pool.give(b);
    pool.give(c);
    expect(pool.size).toBe(3);
    expect(pool.bytes).toBe(13 * PAGE);
    // 5 pages, no maximum: b (6) is too large, c has another maximum: a, grown from 3 to 5
    const d = pool.take(5, lim);
    expect(d).toBe(a);
    expect(memoryPages(d)).toBe(5);
    expect(pool.take(6, lim)).toBe(b);
    expect(pool.take(7, { initial: 2, maximum: 100 })).toBe(c);
    expect(pool.take(7, lim)).not.toBe(a);
    expect(pool.stats.hits).toBe(3);
    // giving twice keeps one; memories not made by the pool or createMemory are dropped
    pool.give(d);
    pool.give(d);
    expect(pool.size).toBe(1);
    pool.give(new WebAssembly.Memory({ initial: 2 }));
    expect(pool.size).toBe(1);
    expect(pool.stats.dropped).toBe(1);
  });

  it('old contents stay unless zeroed is asked for (a fresh start)', () => {
    const pool = new MemoryPool();
    const m = pool.take(3, lim);
    new Uint8Array(m.buffer).fill(0xa5);
    pool.give(m);
    const again = pool.take(4, lim);
    expect(again).toBe(m);
    const u = new Uint8Array(again.buffer);
    expect(u[100]).toBe(0xa5);
    expect(u[3 * PAGE + 100]).toBe(0); // grown
    pool.give(again);
    const z = pool.take(4, lim, { zeroed: true });
    expect(z).toBe(m);
    expect(new Uint8Array(z.buffer).every((x) => x === 0)).toBe(true);
  });

  it('respects its bounds: total bytes and count; the oldest is evicted', () => {
    const pool = new MemoryPool({ maxBytes: 10 * PAGE, maxCount: 3 });
    const ms = [4, 4, 4].map((n) => pool.take(n, lim));
    for (const m of ms) pool.give(m);
    expect(pool.bytes).toBeLessThanOrEqual(10 * PAGE);
    expect(pool.size).toBe(2);
    expect(pool.stats.dropped).toBe(1);
    pool.give(pool.take(11, lim)); // alone above the bound: dropped (the pool had none to reuse)
    expect(pool.bytes).toBeLessThanOrEqual(10 * PAGE);
    const small = [2, 2, 2, 2].map((n) => createMemory(lim, n));
    for (const m of small) pool.give(m);
    expect(pool.size).toBe(3);
    expect(pool.bytes).toBeLessThanOrEqual(10 * PAGE);
  });
});

describe.skipIf(!clang)('Machine with a supplied memory', () => {
  const run = (job: CompiledJob, args: string[], memory?: WebAssembly.Memory) => {
    const vm = new TestVm(job, { args, ...(memory ? { machine: { memory } } : {}) });
    const o = vm.machine.run();
    return { o, stdout: vm.stdout, vm };
  };

  it('runs a fresh job in a zeroed pooled memory that held another job, with identical output', async () => {
    const [nbody, asgc] = await Promise.all([loadGuest('nbody'), loadGuest('as_gc')]);
    const ref = run(nbody, ['nbody', '20000']);
    expect(ref.o).toEqual({ kind: 'exit', code: 0 });
    const pool = new MemoryPool();
    const first = run(asgc, ['as_gc'], pool.take(0, asgc.info.memory!, { zeroed: true }));
    expect(first.o.kind).toBe('exit');
    pool.give(first.vm.machine.memory);
    // as_gc's memory is larger than nbody's initial size: a fresh memory; a dirty memory of the right size is reused
    const dirty = pool.take(nbody.info.memory!.initial, nbody.info.memory!);
    new Uint8Array(dirty.buffer).fill(0x5a);
    pool.give(dirty);
    const mem = pool.take(0, nbody.info.memory!, { zeroed: true });
    expect(mem).toBe(dirty);
    const again = run(nbody, ['nbody', '20000'], mem);
    expect(again.o).toEqual({ kind: 'exit', code: 0 });
    expect(again.stdout).toBe(ref.stdout);
  });

  it('refuses a memory too large for a fresh start or a restore, and too small for the module', async () => {
    const nbody = await loadGuest('nbody');
    const big = createMemory(nbody.info.memory!, 40);
    const vm = new TestVm(nbody, { args: ['nbody', '20000'], machine: { memory: big } });
    expect(() => vm.machine.run()).toThrow(/exactly 2 pages/);
    const src = new TestVm(nbody, { args: ['nbody', '20000'], machine: { policy: (m) => (m.fuelUsed > 100_000 ? 'suspend' : 'continue') } });
    const o = src.machine.run();
    if (o.kind !== 'suspended') throw new Error(o.kind);
    const s = ownSnapshot(o.snapshot);
    expect(s.pages).toBeLessThan(40);
    const vm2 = new TestVm(nbody, { args: ['nbody', '20000'], machine: { memory: createMemory(nbody.info.memory!, 40) } });
    expect(() => vm2.machine.restore(s)).toThrow(SnapshotError);
    const tiny = new WebAssembly.Memory({ initial: 1 });
    expect(() => new TestVm(nbody, { machine: { memory: tiny } })).toThrow(/at least 2/);
  });
});
