/**
 * Adaptive checkpoint interval (DESIGN.md, seed item 2).
 *
 * The seed's recurrence over the sequence of intervals I_0, I_1, …:
 *
 *     I_n = W·I_(n-1) + (1−W)·I_(n-2)
 *
 * with W set by the site policy. `AdaptiveInterval` computes exactly that when nothing was observed. Observations
 * adapt it by replacing the I_(n-2) term with a *target* T derived from them, so the interval moves towards T at
 * the pace W sets, and the literal recurrence takes over again when observations stop:
 *
 *     I_n = clamp(W·I_(n-1) + (1−W)·T_n, minMs, maxMs)
 *
 *     base  = sqrt(2·C·M)             when both the checkpoint cost C and the mean time between failures M are
 *                                     known (Young's approximation of the optimal interval);
 *           = I_(n-2)                 otherwise (the seed's formula);
 *     T_n   = min(base, I_(n-1))·s    when a failure was seen since the last step (s = failureShrink, default ½):
 *                                     always shorter than the current interval, and it wins over the floor below;
 *           = max(base, C/overhead)   otherwise, with overhead = targetOverhead: an interval shorter than
 *                                     C/overhead would spend more than that share of the time checkpointing,
 *                                     so expensive checkpoints lengthen the interval.
 *
 * C and M are remembered: the latest `checkpointMs` and `mtbfMs` passed to `next()` stay in force for later steps
 * (checkpoint cost does not vanish when a step reports nothing). `failureSeen` counts for one step only.
 *
 * Since W ∈ [0, 1], I_n is a convex combination of values that are already clamped, so the clamp only ever acts on
 * targets; it is applied anyway, on every value.
 *
 * Exports: local checkpoints are taken every interval; the k-th, 2k-th, … local checkpoint (k = exportEvery) is
 * also exported to the origin (the parent node), so exports are k times rarer than local checkpoints.
 *
 * Pure logic: no clock; durations come in as numbers of milliseconds.
 */

/** An error in the scheduler's or the interval's inputs: a bad policy, an unknown node or process, a misuse. */
export class SchedError extends Error {
  override name = 'SchedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A site's checkpoint-interval policy. */
export interface IntervalPolicy {
  /** W of the recurrence, in [0, 1]: the weight of the previous interval (1 = never change, 0 = jump to target). */
  w: number;
  /** Shortest interval, ms (> 0). */
  minMs: number;
  /** Longest interval, ms (≥ initialMs). */
  maxMs: number;
  /** I_0, ms, in [minMs, maxMs]. */
  initialMs: number;
  /** Export every k-th local checkpoint to the origin (integer ≥ 1; 1 = export every checkpoint). */
  exportEvery: number;
  /** Largest share of time spent checkpointing, in (0, 1], e.g. 0.05; sets the floor C/targetOverhead. */
  targetOverhead?: number;
  /** Factor in (0, 1) applied to the interval's target after a failure was seen. Default 0.5. */
  failureShrink?: number;
}

/** Defaults: one minute to start, between 5 s and 30 min, W = 0.7, ≤ 5 % overhead, every 5th checkpoint exported. */
export const DEFAULT_INTERVAL_POLICY: Readonly<Required<IntervalPolicy>> = Object.freeze({
  w: 0.7,
  minMs: 5_000,
  maxMs: 30 * 60_000,
  initialMs: 60_000,
  exportEvery: 5,
  targetOverhead: 0.05,
  failureShrink: 0.5,
});

/** What happened since the last step. All fields optional; durations in ms. */
export interface IntervalObservation {
  /** How long the last checkpoint took (C). */
  checkpointMs?: number;
  /** A node failure was seen since the last step. */
  failureSeen?: boolean;
  /** Current estimate of the mean time between failures (M), e.g. of the nodes this process runs on. */
  mtbfMs?: number;
}

/** Checks a policy and fills in the optional fields; throws SchedError saying what is wrong. */
export function validateIntervalPolicy(policy: IntervalPolicy): Readonly<Required<IntervalPolicy>> {
  const p = { ...policy };
  const bad = (msg: string): never => {
    throw new SchedError(`invalid checkpoint-interval policy: ${msg}`);
  };
  const finite = (name: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${name} must be a finite number, got ${String(v)}`);
  };
  finite('w', p.w);
  finite('minMs', p.minMs);
  finite('maxMs', p.maxMs);
  finite('initialMs', p.initialMs);
  finite('exportEvery', p.exportEvery);
  if (p.w < 0 || p.w > 1) bad(`w must be in [0, 1], got ${p.w}`);
  if (p.minMs <= 0) bad(`minMs must be > 0, got ${p.minMs}`);
  if (p.initialMs < p.minMs) bad(`initialMs (${p.initialMs}) must be ≥ minMs (${p.minMs})`);
  if (p.maxMs < p.initialMs) bad(`maxMs (${p.maxMs}) must be ≥ initialMs (${p.initialMs})`);
  if (!Number.isInteger(p.exportEvery) || p.exportEvery < 1) {
    bad(`exportEvery must be an integer ≥ 1, got ${p.exportEvery}`);
  }
  if (p.targetOverhead !== undefined) {
    finite('targetOverhead', p.targetOverhead);
    if (p.targetOverhead <= 0 || p.targetOverhead > 1) bad(`targetOverhead must be in (0, 1], got ${p.targetOverhead}`);
  }
  if (p.failureShrink !== undefined) {
    finite('failureShrink', p.failureShrink);
    if (p.failureShrink <= 0 || p.failureShrink >= 1) bad(`failureShrink must be in (0, 1), got ${p.failureShrink}`);
  }
  // An unset targetOverhead becomes Infinity (floor C/∞ = 0: no floor); an unset failureShrink becomes 0.5.
  return Object.freeze({
    w: p.w,
    minMs: p.minMs,
    maxMs: p.maxMs,
    initialMs: p.initialMs,
    exportEvery: p.exportEvery,
    targetOverhead: p.targetOverhead ?? Infinity,
    failureShrink: p.failureShrink ?? 0.5,
  });
}

/** How many past intervals `history` keeps (the recurrence needs two). */
export const INTERVAL_HISTORY_LIMIT = 256;

/** Saved state of an AdaptiveInterval (plain data, for the process's checkpoint or the coordinator's store). */
export interface AdaptiveIntervalState {
  /** The last intervals, oldest first; at least one. */
  history: number[];
  /** Steps taken so far (n of the last interval). */
  steps: number;
  costMs?: number;
  mtbfMs?: number;
}

export class AdaptiveInterval {
  readonly policy: Readonly<Required<IntervalPolicy>>;
  #history: number[];
  #steps = 0;
  #costMs: number | undefined;
  #mtbfMs: number | undefined;

  /**
   * @param start  the two intervals to start the recurrence from, [I_(-1), I_0], e.g. restored values; each is
   *               clamped to the policy's bounds. Default: [initialMs, initialMs] (constant until observations).
   */
  constructor(policy: IntervalPolicy = DEFAULT_INTERVAL_POLICY, start?: readonly [number, number]) {
    this.policy = validateIntervalPolicy(policy);
    if (start) {
      for (const v of start) {
        if (!Number.isFinite(v) || v <= 0) throw new SchedError(`start intervals must be finite and > 0, got ${v}`);
      }
      this.#history = [this.#clamp(start[0]), this.#clamp(start[1])];
    } else {
      this.#history = [this.policy.initialMs];
    }
  }

  /** Restores an interval saved with `state()`. */
  static fromState(policy: IntervalPolicy, state: AdaptiveIntervalState): AdaptiveInterval {
    const a = new AdaptiveInterval(policy);
    if (state.history.length === 0) throw new SchedError('interval state has an empty history');
    if (!Number.isInteger(state.steps) || state.steps < 0) {
      throw new SchedError(`interval state steps must be an integer ≥ 0, got ${state.steps}`);
    }
    a.#history = state.history.map((v) => a.#clamp(v)).slice(-INTERVAL_HISTORY_LIMIT);
    a.#steps = state.steps;
    a.#costMs = state.costMs;
    a.#mtbfMs = state.mtbfMs;
    return a;
  }

  state(): AdaptiveIntervalState {
    const s: AdaptiveIntervalState = { history: [...this.#history], steps: this.#steps };
    if (this.#costMs !== undefined) s.costMs = this.#costMs;
    if (this.#mtbfMs !== undefined) s.mtbfMs = this.#mtbfMs;
    return s;
  }

  /** The interval in force: I_(n-1), the time until the next local checkpoint. */
  get current(): number {
    return this.#history[this.#history.length - 1]!;
  }

  /** The intervals so far, oldest first (the last INTERVAL_HISTORY_LIMIT of them). */
  get history(): readonly number[] {
    return this.#history;
  }

  /** How many times `next()` was called. */
  get steps(): number {
    return this.#steps;
  }

  /** The remembered checkpoint cost C and MTBF M (undefined until observed). */
  get estimates(): { costMs: number | undefined; mtbfMs: number | undefined } {
    return { costMs: this.#costMs, mtbfMs: this.#mtbfMs };
  }

  /**
   * Takes one step of the recurrence (call it after each local checkpoint) and returns the new interval.
   * Throws SchedError on a negative or non-finite observation.
   */
  next(obs: IntervalObservation = {}): number {
    if (obs.checkpointMs !== undefined) {
      if (!Number.isFinite(obs.checkpointMs) || obs.checkpointMs < 0) {
        throw new SchedError(`checkpointMs must be a finite number ≥ 0, got ${obs.checkpointMs}`);
      }
      this.#costMs = obs.checkpointMs;
    }
    if (obs.mtbfMs !== undefined) {
      if (!(obs.mtbfMs > 0)) throw new SchedError(`mtbfMs must be > 0, got ${obs.mtbfMs}`);
      this.#mtbfMs = obs.mtbfMs;
    }
    const h = this.#history;
    const prev1 = h[h.length - 1]!;
    const prev2 = h.length >= 2 ? h[h.length - 2]! : prev1;
    const target = this.#target(prev1, prev2, obs.failureSeen === true);
    const { w } = this.policy;
    const value = this.#clamp(w * prev1 + (1 - w) * target);
    h.push(value);
    if (h.length > INTERVAL_HISTORY_LIMIT) h.splice(0, h.length - INTERVAL_HISTORY_LIMIT);
    this.#steps++;
    return value;
  }

  /** Whether the local checkpoint number `localSeq` (1, 2, 3, …) is also exported to the origin. */
  shouldExport(localSeq: number): boolean {
    if (!Number.isInteger(localSeq) || localSeq < 1) {
      throw new SchedError(`localSeq counts local checkpoints from 1, got ${localSeq}`);
    }
    return localSeq % this.policy.exportEvery === 0;
  }

  #target(prev1: number, prev2: number, failureSeen: boolean): number {
    const c = this.#costMs;
    const m = this.#mtbfMs;
    const base = c !== undefined && m !== undefined ? Math.sqrt(2 * c * m) : prev2;
    if (failureSeen) return Math.min(base, prev1) * this.policy.failureShrink;
    const floor = c !== undefined ? c / this.policy.targetOverhead : 0;
    return Math.max(base, floor);
  }

  #clamp(v: number): number {
    return Math.min(this.policy.maxMs, Math.max(this.policy.minMs, v));
  }
}
