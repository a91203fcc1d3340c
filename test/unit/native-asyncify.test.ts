// Native wasm-opt (runtime-node/wasm-opt.ts), used on Node for large modules: it optimises the module after
// gridvm's own unwind, or runs Asyncify and the optimiser where that unwind does not apply (unwind: 'asyncify'
// here). Either module is another module (its own cache key and hash) that must behave exactly like binaryen.js's:
// the same output and exit code, and exact suspend/resume in fresh Machines from encoded snapshots.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findWasmOpt, hostInstrumentOptions, nativeAsyncify } from '../../runtime-node/wasm-opt.js';
import { moduleCacheKey, prepareJob } from '../../vm/index.js';
import { ownSnapshot, roundTrip, TestVm } from '../harness/grid.js';
import { guestPath, hasGuest } from '../harness/guests.js';

const have = !!findWasmOpt();
const cases = [
  { name: 'nbody', args: ['300000'], by: 'gridvm' },
  { name: 'recursion', args: ['1', '27'], by: 'gridvm' },
  { name: 'malloc_churn', args: ['2', '40000'], by: 'gridvm' },
  { name: 'as_gc', args: [], by: 'gridvm' },
  { name: 'recursion', args: ['1', '27'], by: 'asyncify' },
  { name: 'malloc_churn', args: ['2', '40000'], by: 'asyncify' },
] as const;

describe.runIf(have || process.env.CI)('native wasm-opt for the optimiser and Asyncify', () => {
  it('is found (CI installs Debian\'s binaryen package)', () => {
    expect(findWasmOpt()?.version).toMatch(/^\d+$/);
  });

  it('is chosen for large modules or GRIDVM_WASM_OPT=always, never with GRIDVM_WASM_OPT=never', () => {
    const small = new Uint8Array(1024);
    const big = new Uint8Array(5 * 1024 * 1024);
    const saved = process.env.GRIDVM_WASM_OPT;
    try {
      delete process.env.GRIDVM_WASM_OPT;
      expect(hostInstrumentOptions(small).asyncify).toBeUndefined();
      expect(hostInstrumentOptions(big, { dirtyPages: true })).toMatchObject({ dirtyPages: true, asyncify: { id: expect.stringMatching(/^wasmopt\d+/) } });
      process.env.GRIDVM_WASM_OPT = 'always';
      expect(hostInstrumentOptions(small).asyncify).toBeDefined();
      process.env.GRIDVM_WASM_OPT = 'never';
      expect(hostInstrumentOptions(big).asyncify).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.GRIDVM_WASM_OPT;
      else process.env.GRIDVM_WASM_OPT = saved;
    }
    expect(moduleCacheKey('h', { asyncify: nativeAsyncify()! })).not.toBe(moduleCacheKey('h'));
  });

  for (const c of cases) {
    it.runIf(hasGuest(c.name) || process.env.CI)(`${c.name}, stack captured by ${c.by}: same output as binaryen.js's module, and exact across suspensions into fresh Machines`, async () => {
      const bytes = new Uint8Array(readFileSync(guestPath(c.name)));
      const js = await prepareJob(bytes);
      const unwind = c.by === 'asyncify' ? { unwind: 'asyncify' as const } : {};
      const native = await prepareJob(bytes, { instrument: { asyncify: nativeAsyncify()!, ...unwind } });
      expect(native.hash).not.toBe(js.hash);
      expect(native.info.stats.unwind.by).toBe(c.by);
      const ref = new TestVm(js, { args: ['t', ...c.args], machine: { reenterAt: [] } });
      const r0 = ref.machine.run();
      expect(r0.kind).toBe('exit');
      const plain = new TestVm(native, { args: ['t', ...c.args], machine: { reenterAt: [] } });
      const r1 = plain.machine.run();
      expect(r1).toEqual(r0);
      expect(Buffer.concat(plain.out).equals(Buffer.concat(ref.out))).toBe(true);
      // suspended at every 3rd slice and continued from the encoded snapshot in a fresh Machine
      const slice = Math.max(1000, Math.floor(ref.machine.fuelUsed / 60));
      let n = 0;
      const machine = { slice, reenterAt: [], policy: () => (++n % 3 === 0 ? 'suspend' as const : 'continue' as const) };
      let vm = new TestVm(native, { args: ['t', ...c.args], machine });
      const outs = [vm.out];
      let machines = 1;
      for (;;) {
        const o = vm.machine.run();
        if (o.kind !== 'suspended') {
          expect(o).toEqual(r0);
          break;
        }
        vm = new TestVm(native, { args: ['t', ...c.args], machine }, roundTrip(ownSnapshot(o.snapshot)));
        outs.push(vm.out);
        machines++;
      }
      expect(machines).toBeGreaterThan(5);
      expect(Buffer.concat(outs.flat()).equals(Buffer.concat(ref.out))).toBe(true);
    }, 120_000);
  }
});
