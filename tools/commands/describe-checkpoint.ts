// `gridvm inspect`'s reading of a checkpoint: loaded by that command only (the VM's runtime takes ~100 ms to load).
import { loadChain, resolveCheckpointPath, type CheckpointMeta } from '../../runtime-node/checkpoints.js';
import { createPageEngine, PAGE_SIZE, readU32List } from '../../vm/runtime.js';

/** What a checkpoint holds, as plain data (the --json output). */
export function describeCheckpoint(path: string): Record<string, unknown> {
  const chain = loadChain(path, createPageEngine('auto'));
  const last = chain[chain.length - 1]!;
  const h = last.header;
  const meta = (h.meta ?? {}) as Partial<CheckpointMeta>;
  const kernel = h.kernel as unknown as { fds?: unknown[] } & Record<string, unknown>;
  return {
    file: resolveCheckpointPath(path),
    id: last.id,
    kind: h.kind,
    seq: h.seq,
    base: h.base ?? null,
    chainLength: chain.length,
    moduleHash: h.moduleHash,
    memoryBytes: h.pages * PAGE_SIZE,
    memoryPages: h.pages,
    storedPages: readU32List(h.dataPages).length,
    zeroPagesInDelta: readU32List(h.zeroPages).length,
    stdoutBytes: h.stdoutBytes,
    stderrBytes: h.stderrBytes,
    fuelUsed: h.fuelUsed,
    asyncifyBytes: h.asyncify.length,
    globals: h.globals.length,
    openFds: Array.isArray(kernel.fds) ? kernel.fds.filter(Boolean).length : null,
    mounts: meta.mounts ?? [],
    limits: meta.limits ?? {},
    elapsedMs: meta.elapsedMs ?? null,
    createdAt: h.createdAtMs ? new Date(h.createdAtMs).toISOString() : null,
  };
}
