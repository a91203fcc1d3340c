import type { HostPlatform } from '../kernel/index.js';

/** HostPlatform for browsers and Web Workers: no host file system; sleeping blocks with Atomics.wait (workers). */
export function browserPlatform(): HostPlatform {
  const origin = BigInt(Math.round(performance.timeOrigin * 1e6));
  let sleeper: Int32Array | undefined;
  return {
    realtimeNs: () => origin + BigInt(Math.round(performance.now() * 1e6)),
    monotonicNs: () => BigInt(Math.round(performance.now() * 1e6)),
    randomFill: (buf) => {
      for (let o = 0; o < buf.length; o += 65536) crypto.getRandomValues(buf.subarray(o, Math.min(buf.length, o + 65536)));
    },
    sleepMs: (ms) => {
      if (typeof SharedArrayBuffer !== 'undefined') {
        sleeper ??= new Int32Array(new SharedArrayBuffer(4));
        try {
          Atomics.wait(sleeper, 0, 0, ms);
          return;
        } catch {
          // Atomics.wait is not allowed on a window's main thread: fall through to a busy wait
        }
      }
      const end = performance.now() + ms;
      while (performance.now() < end) {
        /* spin */
      }
    },
  };
}
