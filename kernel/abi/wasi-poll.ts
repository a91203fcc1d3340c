/** ABI: poll_oneoff (subscription 48 bytes, event 32 bytes) and the socket stubs. */
import { Errno, KernelError } from '../errors.js';
import type { Process } from '../process/process.js';
import { pollOneoff, type Subscription } from '../process/time-ops.js';
import { EventType, SIZE } from './constants.js';
import type { HostFn } from './link.js';

function readSubscriptions(p: Process, ptr: number, n: number): Subscription[] {
  const m = p.memory;
  m.check(ptr, n * SIZE.SUBSCRIPTION);
  const subs: Subscription[] = [];
  for (let i = 0; i < n; i++) {
    const at = ptr + i * SIZE.SUBSCRIPTION;
    const userdata = m.u64(at);
    const tag = m.u8At(at + 8);
    if (tag === EventType.CLOCK) {
      subs.push({ userdata, type: EventType.CLOCK, clockId: m.u32(at + 16), timeout: m.u64(at + 24), precision: m.u64(at + 32), flags: m.u16(at + 40) });
    } else if (tag === EventType.FD_READ || tag === EventType.FD_WRITE) {
      subs.push({ userdata, type: tag, fd: m.u32(at + 16) });
    } else {
      throw new KernelError(Errno.INVAL, `bad subscription tag ${tag}`);
    }
  }
  return subs;
}

export function pollImpls(p: Process): Record<string, HostFn> {
  const m = p.memory;
  const noSockets = (fd: number): never => {
    p.fd(fd);
    throw new KernelError(Errno.NOTSUP, 'sockets are not supported');
  };
  return {
    poll_oneoff: (inPtr: number, outPtr: number, n: number, neventsPtr: number) => {
      n >>>= 0;
      m.check(neventsPtr, 4);
      m.check(outPtr, n * SIZE.EVENT);
      const events = pollOneoff(p, readSubscriptions(p, inPtr, n));
      events.forEach((e, i) => {
        const at = outPtr + i * SIZE.EVENT;
        m.out(at, SIZE.EVENT).fill(0);
        m.setU64(at, e.userdata);
        m.setU16(at + 8, e.error);
        m.setU8(at + 10, e.type);
        m.setU64(at + 16, e.nbytes);
        m.setU16(at + 24, e.flags);
      });
      m.setU32(neventsPtr, events.length);
    },
    sock_accept: (fd: number, _flags: number, _out: number) => noSockets(fd),
    sock_recv: (fd: number, _iovs: number, _n: number, _fl: number, _nread: number, _oflags: number) => noSockets(fd),
    sock_send: (fd: number, _iovs: number, _n: number, _fl: number, _nwritten: number) => noSockets(fd),
    sock_shutdown: (fd: number, _how: number) => noSockets(fd),
  };
}
