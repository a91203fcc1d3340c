/** ABI: the gridvm grid calls (spawn, fork, wait, identity). Decodes pointers and calls the process's grid ops. */
import { Errno, KernelError } from '../errors.js';
import type { BlockHook, GridCall } from '../process/grid.js';
import type { Process } from '../process/process.js';
import type { HostFn } from './link.js';

const MAX_ARGV_BYTES = 1 << 20;

/** NUL-separated strings (a trailing NUL is allowed) -> argv. */
function decodeArgv(p: Process, ptr: number, len: number): string[] {
  if (len >>> 0 > MAX_ARGV_BYTES) throw new KernelError(Errno.TOOBIG, `argv is ${len >>> 0} bytes, more than ${MAX_ARGV_BYTES}`);
  if (len >>> 0 === 0) return [];
  const s = p.memory.string(ptr, len);
  const parts = s.split('\0');
  if (s.endsWith('\0')) parts.pop();
  return parts;
}

/**
 * Run a blocking call: decode it (errors become a negative errno without suspending), then ask the VM's hook. With
 * no grid identity or no hook, the call is not available here: -NOSYS.
 */
function blocking(p: Process, block: BlockHook | undefined, decode: () => GridCall, statusPtr?: number): bigint {
  try {
    if (!p.grid || !block) throw new KernelError(Errno.NOSYS, 'grid calls need a grid host (no grid identity or VM hook)');
    const call = decode();
    if (statusPtr !== undefined) p.memory.check(statusPtr, 4);
    const r = block(call);
    if (r === undefined) return 0n; // unwinding: the value is ignored
    if (statusPtr !== undefined && r.status !== undefined && r.value > 0n) p.memory.setU32(statusPtr, r.status | 0);
    return BigInt.asIntN(64, BigInt(r.value));
  } catch (e) {
    if (e instanceof KernelError) return -BigInt(e.errno);
    throw e;
  }
}

/** gridvm.spawn/fork/wait/gpid/parent/rank/size for one process; `block` comes from the VM. */
export function gridImpls(p: Process, block: BlockHook | undefined): Record<string, HostFn> {
  return {
    spawn: (pathPtr: number, pathLen: number, argvPtr: number, argvLen: number): bigint =>
      blocking(p, block, () => {
        const path = p.memory.string(pathPtr, pathLen);
        if (path === '') throw new KernelError(Errno.NOENT, 'spawn: empty module path');
        return { op: 'spawn', path, argv: decodeArgv(p, argvPtr, argvLen) };
      }),
    fork: (): bigint => blocking(p, block, () => ({ op: 'fork' })),
    wait: (gpid: bigint, statusPtr: number): bigint =>
      blocking(p, block, () => {
        const g = BigInt.asIntN(64, gpid);
        if (g === 0n || g < -1n) throw new KernelError(Errno.INVAL, `wait: bad gpid ${g} (a child's GPID, or -1 for any)`);
        return { op: 'wait', gpid: g };
      }, statusPtr),
    gpid: (): bigint => p.identity.gpid,
    parent: (): bigint => p.identity.parent,
    rank: (): number => p.identity.rank | 0,
    size: (): number => p.identity.size | 0,
  };
}
