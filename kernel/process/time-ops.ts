/** Clocks, random and poll_oneoff. */
import { ClockId, EventType, Subclockflags } from '../abi/constants.js';
import { Errno, KernelError } from '../errors.js';
import type { Process } from './process.js';

export function clockTime(p: Process, id: number): bigint {
  switch (id) {
    case ClockId.REALTIME: return p.clock.realtime();
    case ClockId.MONOTONIC: return p.clock.monotonic();
    case ClockId.PROCESS_CPUTIME_ID:
    case ClockId.THREAD_CPUTIME_ID: return p.clock.cputime();
    default: throw new KernelError(Errno.INVAL, `unknown clock id ${id}`);
  }
}

export function clockRes(_p: Process, id: number): bigint {
  switch (id) {
    case ClockId.REALTIME: return 1000n;
    case ClockId.MONOTONIC:
    case ClockId.PROCESS_CPUTIME_ID:
    case ClockId.THREAD_CPUTIME_ID: return 1n;
    default: throw new KernelError(Errno.INVAL, `unknown clock id ${id}`);
  }
}

/** Fill with random bytes from the platform, 64 KiB at a time (the browser's getRandomValues limit). */
export function randomGet(p: Process, buf: Uint8Array): void {
  for (let i = 0; i < buf.length; i += 65536) p.platform.randomFill(buf.subarray(i, Math.min(buf.length, i + 65536)));
}

export type Subscription =
  | { userdata: bigint; type: typeof EventType.CLOCK; clockId: number; timeout: bigint; precision: bigint; flags: number }
  | { userdata: bigint; type: typeof EventType.FD_READ | typeof EventType.FD_WRITE; fd: number };

export interface PollEvent {
  userdata: bigint;
  error: number;
  type: number;
  nbytes: bigint;
  flags: number;
}

/**
 * poll_oneoff: fd subscriptions are always ready (regular files, stdio); when none is ready, sleep until the
 * earliest clock deadline (relative or ABSTIME) and report every clock that has expired.
 */
export function pollOneoff(p: Process, subs: Subscription[]): PollEvent[] {
  if (subs.length === 0) throw new KernelError(Errno.INVAL, 'poll_oneoff needs at least one subscription');
  const events: PollEvent[] = [];
  const clocks: Array<{ userdata: bigint; clockId: number; deadline: bigint }> = [];
  for (const s of subs) {
    if (s.type === EventType.CLOCK) {
      let now: bigint;
      try {
        now = clockTime(p, s.clockId);
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        events.push({ userdata: s.userdata, error: e.errno, type: s.type, nbytes: 0n, flags: 0 });
        continue;
      }
      const deadline = s.flags & Subclockflags.ABSTIME ? s.timeout : now + s.timeout;
      clocks.push({ userdata: s.userdata, clockId: s.clockId, deadline });
      continue;
    }
    const e = p.fds.get(s.fd);
    const wantRead = s.type === EventType.FD_READ;
    if (!e || (wantRead ? !e.read : !e.write) || e.isDir) {
      events.push({ userdata: s.userdata, error: Errno.BADF, type: s.type, nbytes: 0n, flags: 0 });
      continue;
    }
    let nbytes = 0n;
    if (wantRead && e.kind === 'file') {
      const size = p.handle(s.fd, e).stat().size;
      nbytes = size > BigInt(e.offset) ? size - BigInt(e.offset) : 0n;
    }
    events.push({ userdata: s.userdata, error: Errno.SUCCESS, type: s.type, nbytes, flags: 0 });
  }
  if (clocks.length === 0) return events;
  const remaining = (c: { clockId: number; deadline: bigint }): bigint => c.deadline - clockTime(p, c.clockId);
  if (events.length === 0) {
    for (;;) {
      let min = remaining(clocks[0]!);
      for (let i = 1; i < clocks.length; i++) {
        const r = remaining(clocks[i]!);
        if (r < min) min = r;
      }
      if (min <= 0n) break;
      p.flushOutput();
      p.platform.sleepMs(Math.max(1, Math.ceil(Number(min) / 1e6)));
    }
  }
  for (const c of clocks) {
    if (remaining(c) <= 0n) events.push({ userdata: c.userdata, error: Errno.SUCCESS, type: EventType.CLOCK, nbytes: 0n, flags: 0 });
  }
  return events;
}
