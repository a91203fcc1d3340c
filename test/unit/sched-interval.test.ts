import { describe, it, expect } from 'vitest';
import {
  AdaptiveInterval, DEFAULT_INTERVAL_POLICY, SchedError, validateIntervalPolicy, type IntervalPolicy,
} from '../../kernel/sched/index.js';
import { prng } from '../harness/util.js';

const policy = (p: Partial<IntervalPolicy> = {}): IntervalPolicy =>
  ({ w: 0.5, minMs: 100, maxMs: 100_000, initialMs: 1000, exportEvery: 3, ...p });


describe('AdaptiveInterval recurrence', () => {
  it('follows I_n = W·I_(n-1) + (1−W)·I_(n-2) exactly with W = 0.5 and no observations', () => {
    const a = new AdaptiveInterval(policy({ w: 0.5 }), [1000, 2000]);
    expect(a.current).toBe(2000);
    expect([a.next(), a.next(), a.next(), a.next()]).toEqual([1500, 1750, 1625, 1687.5]);
    expect(a.history).toEqual([1000, 2000, 1500, 1750, 1625, 1687.5]);
    expect(a.current).toBe(1687.5);
    expect(a.steps).toBe(4);
  });

  it('follows the recurrence with W = 0.8 and no observations', () => {
    const a = new AdaptiveInterval(policy({ w: 0.8 }), [1000, 2000]);
    const expected = [1800, 1840, 1832, 1833.6, 1833.28];
    for (const e of expected) expect(a.next()).toBeCloseTo(e, 9);
  });

  it('stays at initialMs when started from the policy alone and nothing is observed', () => {
    const a = new AdaptiveInterval(policy({ w: 0.3 }));
    for (let i = 0; i < 10; i++) expect(a.next()).toBe(1000);
  });

  it('uses W = 1 as "never change" and W = 0 as "repeat I_(n-2)"', () => {
    const one = new AdaptiveInterval(policy({ w: 1 }), [1000, 2000]);
    expect([one.next({ failureSeen: true }), one.next({ checkpointMs: 5000 })]).toEqual([2000, 2000]);
    const zero = new AdaptiveInterval(policy({ w: 0 }), [1000, 2000]);
    expect([zero.next(), zero.next(), zero.next()]).toEqual([1000, 2000, 1000]);
  });

  it('returns to the literal recurrence over the actual sequence after a one-step observation', () => {
    const a = new AdaptiveInterval(policy({ w: 0.5 }));
    // failure: target = min(I_(n-2), I_(n-1))·½ = 500 → I_1 = ½·1000 + ½·500
    expect(a.next({ failureSeen: true })).toBe(750);
    expect(a.next()).toBe(875); // ½·750 + ½·1000
    expect(a.next()).toBe(812.5); // ½·875 + ½·750
  });

  it('clamps start values into the bounds', () => {
    const a = new AdaptiveInterval(policy({ minMs: 100, maxMs: 5000 }), [1, 1e9]);
    expect(a.history).toEqual([100, 5000]);
  });
});

describe('AdaptiveInterval adaptation', () => {
  it('shortens the interval after a failure is seen', () => {
    const a = new AdaptiveInterval(policy({ w: 0.7, initialMs: 10_000 }));
    const before = a.current;
    const after = a.next({ failureSeen: true });
    expect(after).toBeLessThan(before);
    // repeated failures keep shortening, down to minMs
    let last = after;
    for (let i = 0; i < 50; i++) {
      const v = a.next({ failureSeen: true });
      expect(v).toBeLessThanOrEqual(last);
      last = v;
    }
    expect(last).toBe(100);
  });

  it('lengthens the interval when checkpoints are expensive relative to it (overhead ≤ targetOverhead)', () => {
    const a = new AdaptiveInterval(policy({ w: 0.5, initialMs: 1000, targetOverhead: 0.05 }));
    // a 500 ms checkpoint every 1 s is 50 % overhead: the floor is 500 / 0.05 = 10 s
    const v1 = a.next({ checkpointMs: 500 });
    expect(v1).toBe(0.5 * 1000 + 0.5 * 10_000);
    let v = v1;
    for (let i = 0; i < 60; i++) v = a.next(); // the cost is remembered
    expect(v).toBeGreaterThan(9_999);
    expect(v).toBeLessThanOrEqual(10_000);
    expect(500 / v).toBeLessThanOrEqual(0.05 + 1e-6);
  });

  it('does not change the recurrence when checkpoints are cheap', () => {
    const a = new AdaptiveInterval(policy({ w: 0.5, targetOverhead: 0.05 }), [1000, 2000]);
    expect(a.next({ checkpointMs: 1 })).toBe(1500);
    expect(a.next({ checkpointMs: 1 })).toBe(1750);
  });

  it("converges to Young's interval sqrt(2·C·M) when the cost and the MTBF are known", () => {
    const a = new AdaptiveInterval(policy({ w: 0.6, maxMs: 1e7, targetOverhead: 0.01 }));
    a.next({ checkpointMs: 50, mtbfMs: 3_600_000 });
    let v = 0;
    for (let i = 0; i < 100; i++) v = a.next();
    expect(v).toBeCloseTo(Math.sqrt(2 * 50 * 3_600_000), 3); // 18 974 ms, above the 5 s overhead floor
    expect(a.estimates).toEqual({ costMs: 50, mtbfMs: 3_600_000 });
    // a lower MTBF (more failures) shortens it
    for (let i = 0; i < 100; i++) v = a.next({ mtbfMs: 600_000 });
    expect(v).toBeCloseTo(Math.max(Math.sqrt(2 * 50 * 600_000), 50 / 0.01), 3);
  });

  it('stays within [minMs, maxMs] under extreme observations (seeded property test)', () => {
    const rnd = prng(12345);
    for (let run = 0; run < 50; run++) {
      const minMs = 1 + rnd() * 1000;
      const maxMs = minMs + rnd() * 1e6;
      const initialMs = minMs + rnd() * (maxMs - minMs);
      const a = new AdaptiveInterval({
        w: rnd(), minMs, maxMs, initialMs, exportEvery: 1 + Math.floor(rnd() * 10),
        targetOverhead: rnd() < 0.5 ? undefined : 1e-6 + rnd() * (1 - 1e-6),
      });
      for (let i = 0; i < 400; i++) {
        const r = rnd();
        const obs = {
          checkpointMs: r < 0.3 ? 0 : r < 0.5 ? 1e12 * rnd() : r < 0.8 ? rnd() * 1e4 : undefined,
          failureSeen: rnd() < 0.2,
          mtbfMs: rnd() < 0.3 ? 1e-9 + rnd() * 1e12 : undefined,
        };
        const v = a.next(obs);
        expect(Number.isFinite(v)).toBe(true);
        expect(v).toBeGreaterThanOrEqual(minMs);
        expect(v).toBeLessThanOrEqual(maxMs);
      }
      expect(a.history.length).toBeLessThanOrEqual(256);
    }
  });

  it('rejects negative or non-finite observations', () => {
    const a = new AdaptiveInterval(policy());
    expect(() => a.next({ checkpointMs: -1 })).toThrow(SchedError);
    expect(() => a.next({ checkpointMs: NaN })).toThrow(/checkpointMs/);
    expect(() => a.next({ mtbfMs: 0 })).toThrow(/mtbfMs/);
  });

  it('saves and restores its state', () => {
    const a = new AdaptiveInterval(policy({ w: 0.8 }), [1000, 2000]);
    a.next({ checkpointMs: 20, mtbfMs: 1e6 });
    const b = AdaptiveInterval.fromState(policy({ w: 0.8 }), structuredClone(a.state()));
    for (let i = 0; i < 5; i++) expect(b.next()).toBe(a.next());
    expect(b.steps).toBe(a.steps);
  });
});

describe('AdaptiveInterval exports', () => {
  it('exports every k-th local checkpoint', () => {
    const a = new AdaptiveInterval(policy({ exportEvery: 3 }));
    const pattern = Array.from({ length: 9 }, (_, i) => a.shouldExport(i + 1));
    expect(pattern).toEqual([false, false, true, false, false, true, false, false, true]);
    const every = new AdaptiveInterval(policy({ exportEvery: 1 }));
    expect([1, 2, 3].map((n) => every.shouldExport(n))).toEqual([true, true, true]);
  });

  it('rejects checkpoint numbers below 1', () => {
    const a = new AdaptiveInterval(policy());
    expect(() => a.shouldExport(0)).toThrow(/from 1/);
    expect(() => a.shouldExport(1.5)).toThrow(SchedError);
  });
});

describe('IntervalPolicy validation', () => {
  it('accepts the default policy', () => {
    expect(() => validateIntervalPolicy(DEFAULT_INTERVAL_POLICY)).not.toThrow();
    expect(new AdaptiveInterval().current).toBe(DEFAULT_INTERVAL_POLICY.initialMs);
  });

  it.each<[string, Partial<IntervalPolicy>, RegExp]>([
    ['W above 1', { w: 1.1 }, /w must be in \[0, 1\]/],
    ['negative W', { w: -0.1 }, /w must be in \[0, 1\]/],
    ['NaN W', { w: NaN }, /w must be a finite number/],
    ['minMs of 0', { minMs: 0 }, /minMs must be > 0/],
    ['initialMs below minMs', { initialMs: 50 }, /initialMs \(50\) must be ≥ minMs/],
    ['maxMs below initialMs', { maxMs: 500 }, /maxMs \(500\) must be ≥ initialMs/],
    ['exportEvery of 0', { exportEvery: 0 }, /exportEvery must be an integer ≥ 1/],
    ['fractional exportEvery', { exportEvery: 2.5 }, /exportEvery must be an integer ≥ 1/],
    ['targetOverhead of 0', { targetOverhead: 0 }, /targetOverhead must be in \(0, 1\]/],
    ['failureShrink of 1', { failureShrink: 1 }, /failureShrink must be in \(0, 1\)/],
  ])('rejects a policy with %s', (_name, patch, message) => {
    expect(() => new AdaptiveInterval(policy(patch))).toThrow(SchedError);
    expect(() => new AdaptiveInterval(policy(patch))).toThrow(message);
  });

  it('names the error SchedError and says it is a policy problem', () => {
    try {
      validateIntervalPolicy(policy({ w: 2 }));
      expect.unreachable();
    } catch (e) {
      expect((e as Error).name).toBe('SchedError');
      expect((e as Error).message).toMatch(/^invalid checkpoint-interval policy: /);
    }
  });
});
