// Instance reuse (vm/instances.ts, MachineOptions.instances): an instance that ran a job to a clean exit runs the next
// job of the same module only after its memory and globals are put back as instantiation left them. Every job run in
// a reused instance prints exactly what a fresh instance prints; instances whose job trapped, was suspended or grew
// its memory are not reused; modules that change other instance state are never marked reusable.
import { existsSync } from 'node:fs';
import binaryen from 'binaryen';
import { describe, expect, it } from 'vitest';
import { InstancePool, instrument, type CompiledJob, type MachineOptions } from '../../vm/index.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { loadGuest, TestVm } from '../harness/grid.js';
import { run } from '../../runtime-node/index.js';

const fresh = (job: CompiledJob, args: string[]) => {
  const vm = new TestVm(job, { args });
  const outcome = vm.machine.run();
  return { outcome, stdout: vm.stdout, stderr: vm.stderr, fuel: vm.machine.fuelUsed };
};

function pooled(job: CompiledJob, pool: InstancePool, args: string[], machine: Partial<MachineOptions> = {}) {
  const vm = new TestVm(job, { args, machine: { instances: pool, ...machine } });
  const outcome = vm.machine.run();
  const fuel = vm.machine.fuelUsed;
  const released = vm.machine.release();
  // the count survives the release (whose reset of the instance's globals would otherwise show in it)
  expect(vm.machine.fuelUsed).toBe(fuel);
  return { outcome, stdout: vm.stdout, stderr: vm.stderr, fuel, released, vm };
}

describe.runIf(hasClang() && existsSync(guestPath('statics')))('instance reuse', () => {
  it('statics: 30 jobs through one pooled instance print exactly what fresh instances print', async () => {
    const job = await loadGuest('statics');
    expect(job.info.reusable).toBe(true);
    const pool = new InstancePool();
    const argsOf = (i: number) => ['statics', ...(i % 3 === 0 ? ['exit', String(i % 7)] : [`job${i}`, 'x'.repeat(i)])];
    for (let i = 0; i < 30; i++) {
      const want = fresh(job, argsOf(i));
      const got = pooled(job, pool, argsOf(i));
      expect(got.stdout).toBe(want.stdout);
      expect(got.stdout).toMatch(/^counter=1 seeded=43 text=pristine kept=\(null\)\n/);
      expect(got.outcome).toEqual(want.outcome);
      // the VM's own globals (budget, tick floor) are reset too: fuel is counted as in a fresh instance
      expect(got.fuel).toBe(want.fuel);
      expect(got.released).toBe(true);
    }
    // one instance made, then reused: a missing reset of memory or globals would have shown above (counter=2...)
    expect(pool.stats).toMatchObject({ misses: 1, hits: 29, returned: 30, dropped: 0 });
    expect(pool.size).toBe(1);
  });

  it('an instance whose job grew its memory, trapped or was suspended is not reused; the next job gets a fresh one', async () => {
    const job = await loadGuest('statics');
    const pool = new InstancePool();
    expect(pooled(job, pool, ['statics']).released).toBe(true);
    const grew = pooled(job, pool, ['statics', 'grow']);
    expect(grew.stdout).toContain('grew: 7\n');
    expect(grew.released).toBe(false);
    expect(pool.size).toBe(0);
    const trapped = pooled(job, pool, ['statics', 'grow'], { fuel: 20_000 });
    expect(trapped.outcome.kind).toBe('trap');
    expect(trapped.released).toBe(false);
    const suspended = pooled(job, pool, ['statics', 'a'], { slice: 1000, policy: () => 'suspend' });
    expect(suspended.outcome.kind).toBe('suspended');
    expect(suspended.released).toBe(false);
    expect(pool.size).toBe(0);
    expect(pooled(job, pool, ['statics', 'b']).stdout).toBe(fresh(job, ['statics', 'b']).stdout);
    expect(pool.stats).toMatchObject({ hits: 1, returned: 2 });
    expect(pool.size).toBe(1);
  });

  it('a released Machine cannot run again, and a second release is a no-op', async () => {
    const job = await loadGuest('statics');
    const pool = new InstancePool();
    const r = pooled(job, pool, ['statics']);
    expect(r.released).toBe(true);
    expect(() => r.vm.machine.run()).toThrow(/released/);
    expect(r.vm.machine.release()).toBe(false);
    expect(pool.size).toBe(1);
  });

  it('the pool keeps at most perModule idle instances', async () => {
    const job = await loadGuest('statics');
    const pool = new InstancePool({ perModule: 1 });
    // two jobs alive at once: two instances, only one comes back
    const a = new TestVm(job, { args: ['statics'], machine: { instances: pool } });
    const b = new TestVm(job, { args: ['statics'], machine: { instances: pool } });
    expect(a.machine.run().kind).toBe('exit');
    expect(b.machine.run().kind).toBe('exit');
    expect(a.machine.release()).toBe(true);
    expect(b.machine.release()).toBe(false);
    expect(pool.stats).toMatchObject({ misses: 2, returned: 1, dropped: 1 });
  });

  it('AssemblyScript (its runtime state in 12 globals): reused instances print what fresh ones print', async () => {
    const job = await loadGuest('as_hello');
    expect(job.info.reusable).toBe(true);
    const want = fresh(job, ['as_hello']);
    const pool = new InstancePool();
    for (let i = 0; i < 3; i++) {
      const got = pooled(job, pool, ['as_hello']);
      expect(got.stdout).toBe(want.stdout);
      expect(got.fuel).toBe(want.fuel);
      expect(got.released).toBe(true);
    }
    expect(pool.stats.hits).toBe(2);
  });

  it('run() reuses instances between calls, with the same results and fuel', async () => {
    const a = await run(guestPath('statics'), { args: ['first'] });
    const b = await run(guestPath('statics'), { args: ['first'] });
    expect(b.fuelUsed).toBe(a.fuelUsed);
    // and the count is the one a fresh instance reports (run() reads it after giving the instance back)
    expect(a.fuelUsed).toBe(fresh(await loadGuest('statics'), ['statics.wasm', 'first']).fuel);
    expect(b.stdout).toEqual(a.stdout);
    for (let i = 0; i < 5; i++) {
      const r = await run(guestPath('statics'), { args: ['again', String(i)] });
      expect(new TextDecoder().decode(r.stdout)).toBe(`counter=1 seeded=43 text=pristine kept=(null)\nmalloc: 80 bytes apart\narg again\narg ${i}\n`);
    }
    expect(new TextDecoder().decode(a.stdout)).toMatch(/^counter=1 /);
  });
});

describe('which modules are reusable', () => {
  const wat = (body: string) => `(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    ${body})`;
  const reusable = (text: string): boolean | undefined => {
    const m = binaryen.parseText(text);
    m.setFeatures(binaryen.Features.All);
    const bytes = m.emitBinary();
    m.dispose();
    return instrument(bytes).info.reusable;
  };

  it('a plain command module is; data.drop, table.set, table.grow or a start function make it not', () => {
    expect(reusable(wat(`(func (export "_start") (call $exit (i32.const 0)))`))).toBe(true);
    expect(reusable(wat(`(data $d "abc") (func (export "_start") (data.drop $d))`))).toBeUndefined();
    expect(reusable(wat(`(table 2 funcref) (func $f) (func (export "_start") (table.set 0 (i32.const 0) (ref.func $f)))`))).toBeUndefined();
    expect(reusable(wat(`(table 2 funcref) (func (export "_start") (drop (table.grow 0 (ref.null func) (i32.const 1))))`))).toBeUndefined();
    expect(reusable(wat(`(global $g (mut i32) (i32.const 0)) (func $init (global.set $g (i32.const 1))) (start $init) (func (export "_start"))`))).toBeUndefined();
  });
});
