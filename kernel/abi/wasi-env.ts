/** ABI: args, environ, clocks, random, proc, sched. Decodes pointers and calls kernel operations. */
import { Errno, KernelError, ProcExit } from '../errors.js';
import type { Process } from '../process/process.js';
import { clockRes, clockTime, randomGet } from '../process/time-ops.js';
import type { HostFn } from './link.js';
import { encodeUtf8 } from './memory.js';

function sizes(p: Process, list: string[], countPtr: number, sizePtr: number): void {
  let size = 0;
  for (const s of list) size += encodeUtf8(s).length + 1;
  p.memory.setU32(countPtr, list.length);
  p.memory.setU32(sizePtr, size);
}

function strings(p: Process, list: string[], ptrs: number, buf: number): void {
  const m = p.memory;
  let at = buf >>> 0;
  list.forEach((s, i) => {
    const b = encodeUtf8(s);
    m.setU32(ptrs + i * 4, at);
    m.write(at, b);
    m.setU8(at + b.length, 0);
    at += b.length + 1;
  });
}

export function envImpls(p: Process): Record<string, HostFn> {
  const m = p.memory;
  return {
    args_get: (argv: number, buf: number) => strings(p, p.args, argv, buf),
    args_sizes_get: (count: number, size: number) => sizes(p, p.args, count, size),
    environ_get: (env: number, buf: number) => strings(p, p.env, env, buf),
    environ_sizes_get: (count: number, size: number) => sizes(p, p.env, count, size),
    clock_res_get: (id: number, out: number) => m.setU64(out, clockRes(p, id)),
    clock_time_get: (id: number, _precision: bigint, out: number) => m.setU64(out, clockTime(p, id)),
    random_get: (buf: number, len: number) => randomGet(p, m.out(buf, len)),
    proc_exit: (code: number) => {
      p.exit(code >>> 0);
      throw new ProcExit(code >>> 0);
    },
    proc_raise: (_sig: number) => {
      throw new KernelError(Errno.NOTSUP, 'signals are not supported');
    },
    sched_yield: () => {},
  };
}
