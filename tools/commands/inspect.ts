import type { Command } from 'commander';
import { loadChain, resolveCheckpointPath, type CheckpointMeta } from '../../runtime-node/checkpoints.js';
import { createPageEngine, PAGE_SIZE, readU32List } from '../../vm/index.js';
import { formatBytes } from '../units.js';

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

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show what a checkpoint holds')
    .argument('<checkpoint>', 'a checkpoint file or directory')
    .option('--json', 'print JSON')
    .action((ck: string, f: { json?: boolean }) => {
      const d = describeCheckpoint(ck);
      if (f.json) {
        process.stdout.write(JSON.stringify(d, null, 2) + '\n');
        return;
      }
      const rows: Array<[string, string]> = [
        ['file', String(d.file)],
        ['kind', `${d.kind}${d.kind === 'delta' ? ` (chain of ${d.chainLength})` : ''}`],
        ['sequence', String(d.seq)],
        ['module', String(d.moduleHash)],
        ['memory', `${formatBytes(d.memoryBytes as number)} (${d.memoryPages} pages, ${d.storedPages} stored)`],
        ['stdout bytes', String(d.stdoutBytes)],
        ['stderr bytes', String(d.stderrBytes)],
        ['fuel used', String(d.fuelUsed)],
        ['call stack', formatBytes(d.asyncifyBytes as number)],
        ['globals', String(d.globals)],
        ['open fds', String(d.openFds ?? '?')],
        ['created', String(d.createdAt ?? '?')],
      ];
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(14)} ${v}\n`);
    });
}
