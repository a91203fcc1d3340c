/** ABI: args, environ, clocks, random, proc, sched. Decodes pointers and calls kernel operations. */
import { Errno, KernelError, ProcExit } from '../errors.js';
import type { Process } from '../process/process.js';
import { clockRes, clockTime, randomGet } from '../process/time-ops.js';
import type { HostFn } from './link.js';
import { encodeUtf8 } from './memory.js';

/** Bytes of `list` as NUL-terminated UTF-8 strings (ASCII, the usual case, without a TextEncoder call). */
function listSize(list: readonly string[]): number {
  let size = 0;
  for (const s of list) size += (isAscii(s) ? s.length : encodeUtf8(s).length) + 1;
  return size;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function sizes(p: Process, list: readonly string[], countPtr: number, sizePtr: number): void {
  p.memory.setU32(countPtr, list.length);
  p.memory.setU32(sizePtr, listSize(list));
}

/** argv/environ: the strings, NUL-terminated, in one write at `buf`, and a pointer to each at `ptrs`. */
function strings(p: Process, list: readonly string[], ptrs: number, buf: number): void {
  const m = p.memory;
  const out = new Uint8Array(listSize(list));
  let o = 0;
  list.forEach((s, i) => {
    m.setU32(ptrs + i * 4, ((buf >>> 0) + o) >>> 0);
    if (isAscii(s)) {
      for (let k = 0; k < s.length; k++) out[o + k] = s.charCodeAt(k);
      o += s.length;
    } else {
      const b = encodeUtf8(s);
      out.set(b, o);
      o += b.length;
    }
    out[o++] = 0;
  });
  m.write(buf, out);
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
