import type { HostPlatform } from '../platform.js';

/** Saved clock state: the guest-visible monotonic time at the save, and the process start on that clock. */
export interface ClockState {
  monotonicNs: bigint;
  startMonotonicNs: bigint;
}

/**
 * The guest's clocks. Monotonic time is virtual: it continues after a restore from the value saved at the
 * checkpoint, whatever the new host's clock says, so it never goes backwards. CPU-time clocks count guest-visible
 * monotonic time since the process started (a job runs on one thread). Realtime is the host's wall clock.
 */
export class VirtualClock {
  private offset: bigint;
  private hostBase: bigint;
  private readonly start: bigint;
  private last = 0n;

  constructor(private readonly platform: HostPlatform, state?: ClockState) {
    this.hostBase = platform.monotonicNs();
    if (state) {
      this.offset = BigInt(state.monotonicNs);
      this.start = BigInt(state.startMonotonicNs);
    } else {
      this.offset = this.hostBase;
      this.start = this.hostBase;
    }
  }

  monotonic(): bigint {
    const d = this.platform.monotonicNs() - this.hostBase;
    const t = this.offset + (d > 0n ? d : 0n);
    if (t > this.last) this.last = t;
    return this.last;
  }

  realtime(): bigint {
    return this.platform.realtimeNs();
  }

  cputime(): bigint {
    return this.monotonic() - this.start;
  }

  save(): ClockState {
    return { monotonicNs: this.monotonic(), startMonotonicNs: this.start };
  }
}
