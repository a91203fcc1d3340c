import binaryen from 'binaryen';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { run } from '../../runtime-node/run.js';
import { guestPath, hasClang, nativePath } from '../harness/guests.js';

const needC = !hasClang() && process.env.CI !== 'true';
const dec = new TextDecoder();
const cli = new URL('../../bin/gridvm.js', import.meta.url).pathname;

function wasiModule(build: (m: binaryen.Module) => void): Uint8Array {
  const m = new binaryen.Module();
  m.setMemory(1, 16, 'memory');
  build(m);
  const bytes = m.emitBinary();
  m.dispose();
  return bytes;
}

describe('limits and bad input', () => {
  it.skipIf(needC)('a memory bomb stops at --max-memory with an error naming the limit', async () => {
    const r = await run(guestPath('memory_bomb'), { maxMemoryBytes: 32 * 1024 * 1024, stdout: 'buffer', stderr: 'buffer' });
    expect(r.exitCode).toBeNull();
    expect(r.trap?.reason).toBe('memory-limit');
    expect(r.trap?.message).toMatch(/32 MiB/);
    expect(r.trap?.message).toMatch(/--max-memory/);
    expect(r.memoryPeakBytes).toBeLessThanOrEqual(32 * 1024 * 1024);
  });

  it.skipIf(needC)('an endless loop stops when its fuel runs out', async () => {
    const r = await run(guestPath('endless'), { fuel: 5_000_000 });
    expect(r.trap?.reason).toBe('fuel');
    expect(r.trap?.message).toMatch(/5000000 units of fuel/);
    expect(r.fuelUsed).toBe(5_000_000);
  });

  it.skipIf(needC)('an endless loop stops at --timeout', async () => {
    const t0 = Date.now();
    const r = await run(guestPath('endless'), { timeoutMs: 300 });
    expect(r.trap?.reason).toBe('timeout');
    expect(r.trap?.message).toMatch(/300 ms/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it.skipIf(needC)('a trap reports the function names of the stack', async () => {
    const r = await run(guestPath('trap'), { stdout: 'buffer', stderr: 'buffer' });
    expect(r.trap?.reason).toBe('trap');
    expect(r.trap?.message).toMatch(/unreachable/);
    const names = r.trap!.stack.join(' ');
    expect(names).toMatch(/level_three[\s\S]*level_two[\s\S]*level_one/);
  });

  it('a file that is not Wasm, a malformed module, and a component are refused clearly', async () => {
    await expect(run(new TextEncoder().encode('#!/bin/sh\necho hi\n'))).rejects.toThrow(/not a WebAssembly module/);
    const bad = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff]);
    await expect(run(bad)).rejects.toThrow(/malformed WebAssembly module/);
    const component = new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
    await expect(run(component)).rejects.toThrow(/component/);
  });

  it('a module with unknown imports is refused, listing them by name', async () => {
    const bytes = wasiModule((m) => {
      m.addFunctionImport('foo', 'env', 'foo', binaryen.none, binaryen.none);
      m.addFunctionImport('bogus', 'wasi_snapshot_preview1', 'bogus_call', binaryen.none, binaryen.none);
      m.addFunction('_start', binaryen.none, binaryen.none, [], m.block(null, [m.call('foo', [], binaryen.none), m.call('bogus', [], binaryen.none)]));
      m.addFunctionExport('_start', '_start');
    });
    await expect(run(bytes, { cache: false })).rejects.toThrow(/env\.foo.*wasi_snapshot_preview1\.bogus_call|wasi_snapshot_preview1\.bogus_call.*env\.foo/);
  });

  it('a module with its own asyncify_* functions and exports (an Asyncify build) is instrumented and runs', async () => {
    binaryen.setDebugInfo(true);
    const bytes = wasiModule((m) => {
      m.addFunctionImport('proc_exit', 'wasi_snapshot_preview1', 'proc_exit', binaryen.i32, binaryen.none);
      m.addGlobal('counter', binaryen.i32, true, m.i32.const(0));
      // the module's own "asyncify" helper, named and exported as Binaryen's pass would name its own
      m.addFunction('asyncify_start_unwind', binaryen.i32, binaryen.none, [], m.global.set('counter', m.i32.add(m.global.get('counter', binaryen.i32), m.local.get(0, binaryen.i32))));
      m.addFunctionExport('asyncify_start_unwind', 'asyncify_start_unwind');
      m.addFunction('_start', binaryen.none, binaryen.none, [binaryen.i32], m.block(null, [
        m.loop('l', m.block(null, [
          m.call('asyncify_start_unwind', [m.i32.const(1)], binaryen.none),
          m.local.set(0, m.i32.add(m.local.get(0, binaryen.i32), m.i32.const(1))),
          m.br('l', m.i32.lt_u(m.local.get(0, binaryen.i32), m.i32.const(3_000_000))),
        ])),
        m.call('proc_exit', [m.i32.sub(m.global.get('counter', binaryen.i32), m.i32.const(3_000_000 - 7))], binaryen.none),
      ]));
      m.addFunctionExport('_start', '_start');
    });
    binaryen.setDebugInfo(false);
    // (its loop is tiny, so unrolled by four: ~750k units of fuel in all)
    const r = await run(bytes, { cache: false, checkpointAtFuel: [200_000], suspendAtCheckpoint: true });
    expect(r.trap).toBeUndefined();
    expect(r.suspended).toBe(true);
    const full = await run(bytes, { cache: false });
    expect(full.exitCode).toBe(7);
  });

  it('a module that is not a WASI command is refused', async () => {
    const bytes = wasiModule((m) => {
      m.addFunction('add', binaryen.createType([binaryen.i32, binaryen.i32]), binaryen.i32, [], m.i32.add(m.local.get(0, binaryen.i32), m.local.get(1, binaryen.i32)));
      m.addFunctionExport('add', 'add');
    });
    await expect(run(bytes, { cache: false })).rejects.toThrow(/not a WASI command module/);
  });

  it.skipIf(needC)('the host keeps working after all of that', async () => {
    const r = await run(guestPath('hello'), { args: ['a', 'b'], stdout: 'buffer' });
    expect(r.exitCode).toBe(0);
    expect(dec.decode(r.stdout)).toMatch(/hello from gridvm/);
  });
});

describe('gridvm CLI exit codes', () => {
  const gridvm = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

  it.skipIf(needC)('passes the job exit code through and streams both outputs', () => {
    const r = gridvm('run', guestPath('exitcode'));
    expect(r.status).toBe(3);
    expect(r.stdout.length).toBeGreaterThan(0);
    expect(r.stderr.length).toBeGreaterThan(0);
  });

  it.skipIf(needC)('exits 134 on a memory limit, 124 on a timeout, 125 on a missing file', () => {
    const a = gridvm('run', '--max-memory', '16MiB', guestPath('memory_bomb'));
    expect(a.status).toBe(134);
    expect(a.stderr).toMatch(/memory limit exceeded.*16 MiB/);
    const b = gridvm('run', '--timeout', '200ms', guestPath('endless'));
    expect(b.status).toBe(124);
    const c = gridvm('run', '/nonexistent/job.wasm');
    expect(c.status).toBe(125);
    expect(c.stderr).toMatch(/no such file|ENOENT/i);
  });

  it.skipIf(needC)('runs deep recursion (11k frames) on a job thread with a large stack, printing what the native build prints', () => {
    const r = gridvm('run', guestPath('recursion'), '--', '2');
    expect(r.status).toBe(0);
    const native = spawnSync(nativePath('recursion'), ['2'], { encoding: 'utf8' });
    expect(r.stdout).toBe(native.stdout);
  });

  it('has --help', () => {
    const r = gridvm('run', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--max-memory/);
    expect(r.stdout).toMatch(/--checkpoint-every/);
  });
});
