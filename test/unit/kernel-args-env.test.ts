import { describe, it, expect } from 'vitest';
import { Errno, ProcExit, Process, SYSCALLS, link } from '../../kernel/index.js';
import { createNodePlatform } from '../../runtime-node/platform.js';
import { Guest, dec } from './kernel-helpers.js';
import { uleb128 } from '../../vm/namesection.js';

/** A wasm module importing every SYSCALLS entry with its signature, exporting a memory. */
function allImportsModule(): Uint8Array {
  const code = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c } as const;
  const leb = uleb128;
  const str = (s: string): number[] => [...leb(s.length), ...new TextEncoder().encode(s)];
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const types: number[] = [...leb(SYSCALLS.length)];
  const imports: number[] = [...leb(SYSCALLS.length)];
  SYSCALLS.forEach((s, i) => {
    types.push(0x60, ...leb(s.params.length), ...s.params.map((t) => code[t]), ...leb(s.results.length), ...s.results.map((t) => code[t]));
    imports.push(...str(s.ns), ...str(s.name), 0x00, ...leb(i));
  });
  const mem = [1, 0x00, 1];
  const exp = [1, ...str('memory'), 0x02, 0];
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...section(1, types), ...section(2, imports), ...section(5, mem), ...section(7, exp)]);
}

describe('syscall table and link', () => {
  it('lists every preview1 function once with stable unique ids', () => {
    const names = SYSCALLS.filter((s) => s.ns === 'wasi_snapshot_preview1').map((s) => s.name);
    expect(names).toHaveLength(46);
    expect(new Set(names).size).toBe(46);
    expect(new Set(SYSCALLS.map((s) => s.id)).size).toBe(SYSCALLS.length);
    for (const s of SYSCALLS) expect(s.doc).toMatch(/Returns:.*Errors:.*Traps:/s);
    expect(SYSCALLS.find((s) => s.name === 'yield')).toMatchObject({ ns: 'gridvm', params: [], results: [], cap: 'internal' });
    expect(SYSCALLS.find((s) => s.name === 'memory_limit')).toMatchObject({ ns: 'gridvm', params: ['i32'], results: [], cap: 'internal' });
  });

  it('imports() provides every table entry and passes gridvm handlers through unchanged', () => {
    const g = new Guest();
    const y = (): void => {};
    const ml = (_p: number): void => {};
    const imports = g.proc.imports({ yield: y, tick: () => {}, memory_limit: ml });
    for (const s of SYSCALLS) expect(typeof imports[s.ns]![s.name]).toBe('function');
    expect(imports.gridvm!.yield).toBe(y);
    expect(imports.gridvm!.memory_limit).toBe(ml);
  });

  it('link refuses a table entry without an implementation', () => {
    expect(() => link(SYSCALLS, { wasi_snapshot_preview1: {}, gridvm: {} })).toThrow(/no implementation for wasi_snapshot_preview1.args_get/);
  });

  it('a module importing every table entry with its exact signature instantiates', () => {
    const bytes = allImportsModule();
    const g = new Guest();
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes.buffer as ArrayBuffer), g.proc.imports({ yield: () => {}, tick: () => {}, memory_limit: () => {} }));
    expect(inst.exports.memory).toBeInstanceOf(WebAssembly.Memory);
  });
});

describe('args and environ', () => {
  it('args_sizes_get and args_get return argv as NUL-terminated UTF-8', () => {
    const g = new Guest({ args: ['prog', 'héllo', ''] });
    const c = g.alloc(4);
    const s = g.alloc(4);
    expect(g.call('args_sizes_get', c, s)).toBe(0);
    expect(g.u32(c)).toBe(3);
    expect(g.u32(s)).toBe(5 + 7 + 1);
    const argv = g.alloc(12);
    const buf = g.alloc(13);
    expect(g.call('args_get', argv, buf)).toBe(0);
    expect(g.u32(argv)).toBe(buf);
    expect(g.u32(argv + 4)).toBe(buf + 5);
    expect(g.u32(argv + 8)).toBe(buf + 12);
    expect(dec.decode(g.read(buf, 13))).toBe('prog\0héllo\0\0');
  });

  it('environ_sizes_get and environ_get return K=V strings', () => {
    const g = new Guest({ env: ['A=1', 'PATH=/bin'] });
    const c = g.alloc(4);
    const s = g.alloc(4);
    expect(g.call('environ_sizes_get', c, s)).toBe(0);
    expect([g.u32(c), g.u32(s)]).toEqual([2, 14]);
    const ptrs = g.alloc(8);
    const buf = g.alloc(14);
    expect(g.call('environ_get', ptrs, buf)).toBe(0);
    expect(dec.decode(g.read(buf, 14))).toBe('A=1\0PATH=/bin\0');
    expect(g.u32(ptrs + 4)).toBe(buf + 4);
  });

  it('args_sizes_get returns FAULT for a pointer outside memory', () => {
    const g = new Guest();
    expect(g.call('args_sizes_get', 65536 - 2, 0)).toBe(Errno.FAULT);
    expect(g.call('args_sizes_get', -4, 0)).toBe(Errno.FAULT);
  });

  it('re-reads the memory views after memory.grow', () => {
    const g = new Guest({ args: ['x'] });
    g.mem.grow(1);
    const p = 65536 + 100;
    expect(g.call('args_sizes_get', p, p + 4)).toBe(0);
    expect(g.u32(p)).toBe(1);
  });
});

describe('clocks, random, proc', () => {
  it('ProcExit carries its code and no stack trace, and leaves stack traces of other errors as they were', () => {
    const limit = Error.stackTraceLimit;
    const e = new ProcExit(7);
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe(7);
    expect(e.message).toBe('exit code 7');
    expect(e.stack ?? '').not.toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error('x').stack).toMatch(/\n\s+at /);
  });

  it('clock_time_get returns realtime near Date.now and a non-decreasing monotonic clock', () => {
    const g = new Guest();
    const out = g.alloc(8);
    expect(g.call('clock_time_get', 0, 1n, out)).toBe(0);
    const rt = Number(g.u64(out) / 1_000_000n);
    expect(Math.abs(rt - Date.now())).toBeLessThan(5000);
    expect(g.call('clock_time_get', 1, 1n, out)).toBe(0);
    const a = g.u64(out);
    expect(g.call('clock_time_get', 1, 1n, out)).toBe(0);
    expect(g.u64(out)).toBeGreaterThanOrEqual(a);
    expect(g.call('clock_time_get', 2, 1n, out)).toBe(0);
    expect(g.call('clock_time_get', 3, 1n, out)).toBe(0);
    expect(g.call('clock_time_get', 9, 1n, out)).toBe(Errno.INVAL);
  });

  it('clock_res_get returns a positive resolution and INVAL for an unknown clock', () => {
    const g = new Guest();
    const out = g.alloc(8);
    for (const id of [0, 1, 2, 3]) {
      expect(g.call('clock_res_get', id, out)).toBe(0);
      expect(g.u64(out)).toBeGreaterThan(0n);
    }
    expect(g.call('clock_res_get', 4, out)).toBe(Errno.INVAL);
  });

  it('random_get fills the buffer through platform.randomFill', () => {
    const base = createNodePlatform();
    let filled = 0;
    const g = new Guest({ platform: { ...base, randomFill: (b) => { filled += b.length; b.fill(7); } } });
    const p = g.alloc(100_000 > 60000 ? 40000 : 0);
    expect(g.call('random_get', p, 40000)).toBe(0);
    expect(filled).toBe(40000);
    expect(g.u8[p]).toBe(7);
    expect(g.u8[p + 39999]).toBe(7);
    expect(g.call('random_get', 65000, 1000)).toBe(Errno.FAULT);
  });

  it('proc_exit throws ProcExit and sets exitCode', () => {
    const g = new Guest();
    expect(() => g.call('proc_exit', 3)).toThrow(ProcExit);
    expect(g.proc.exitCode).toBe(3);
    try {
      g.call('proc_exit', 42);
    } catch (e) {
      expect((e as ProcExit).code).toBe(42);
    }
  });

  it('sched_yield succeeds, proc_raise and sockets are not supported', () => {
    const g = new Guest();
    expect(g.call('sched_yield')).toBe(0);
    expect(g.call('proc_raise', 2)).toBe(Errno.NOTSUP);
    expect(g.call('sock_accept', 3, 0, 0)).toBe(Errno.NOTSUP);
    expect(g.call('sock_recv', 3, 0, 0, 0, 0, 0)).toBe(Errno.NOTSUP);
    expect(g.call('sock_send', 3, 0, 0, 0, 0)).toBe(Errno.NOTSUP);
    expect(g.call('sock_shutdown', 3, 0)).toBe(Errno.NOTSUP);
    expect(g.call('sock_shutdown', 99, 0)).toBe(Errno.BADF);
  });

  it('a syscall before setMemory is a Trap, not an errno', () => {
    const p = new Process({ args: [], env: [], mounts: [], platform: createNodePlatform(), stdout: () => {}, stderr: () => {} });
    const w = p.imports({ yield: () => {}, tick: () => {}, memory_limit: () => {} }).wasi_snapshot_preview1 as Record<string, (...a: unknown[]) => number>;
    expect(() => w.args_sizes_get!(0, 4)).toThrow(/setMemory/);
  });
});
