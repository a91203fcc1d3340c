import { existsSync, mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  decodeSnapshot,
  encodeSnapshot,
  SnapshotError,
  type DecodedSnapshot,
  type DeltaBase,
  type Encoded,
  type InstrumentInfo,
  type PageEngine,
  type Snapshot,
} from '../vm/runtime.js';
import { writeAtomic } from './cache.js';
import { readBytes } from './files.js';

export const LATEST = 'latest';

/** Facts about the run stored in every checkpoint, so that `gridvm resume` needs nothing else. */
export interface CheckpointMeta {
  moduleFile: string;
  info: InstrumentInfo;
  mounts: Array<{ guest: string; kind: 'host' | 'memory' | 'proc'; host?: string; readonly?: boolean }>;
  limits: { maxMemoryBytes?: number; fuel?: number; timeoutMs?: number };
  elapsedMs: number;
  source?: string;
}

/**
 * A directory of checkpoints of one run: `job-<hash>.wasm` (the instrumented module), `ckpt-NNNNNN.gvm` (full or
 * delta checkpoints) and `latest` (the name of the newest complete checkpoint). Every file is written atomically,
 * `latest` last, so a crash at any moment leaves the previous checkpoint usable.
 */
export class CheckpointWriter {
  private base: DeltaBase | undefined;
  private sinceFull = 0;
  written = 0;
  bytesWritten = 0;

  constructor(
    readonly dir: string,
    private readonly engine: PageEngine,
    private readonly opts: { delta?: boolean; fullEvery?: number; keep?: number } = {},
  ) {
    mkdirSync(dir, { recursive: true });
  }

  /** Store the instrumented module beside the checkpoints (once per module). Returns its file name. */
  saveModule(hash: string, bytes: Uint8Array): string {
    const name = `job-${hash.slice(0, 16)}.wasm`;
    const path = join(this.dir, name);
    if (!existsSync(path)) writeAtomic(path, [bytes]);
    return name;
  }

  write(s: Snapshot, meta: CheckpointMeta): { path: string; encoded: Encoded } {
    const file = `ckpt-${String(s.seq).padStart(6, '0')}.gvm`;
    const fullEvery = this.opts.fullEvery ?? 16;
    const useDelta = !!this.opts.delta && this.base !== undefined && this.sinceFull < fullEvery - 1 && this.base.pages <= s.pages;
    const encoded = encodeSnapshot(s, this.engine, {
      ...(useDelta ? { delta: this.base! } : {}),
      createdAtMs: Date.now(),
      meta: meta as unknown as Record<string, unknown>,
      file,
    });
    const path = join(this.dir, file);
    writeAtomic(path, encoded.chunks);
    writeAtomic(join(this.dir, LATEST), [new TextEncoder().encode(file + '\n')]);
    const isDelta = encoded.header.kind === 'delta';
    this.sinceFull = isDelta ? this.sinceFull + 1 : 0;
    this.base = encoded.base;
    this.written++;
    this.bytesWritten += encoded.size;
    if (this.opts.keep && !isDelta) this.prune(file);
    return { path, encoded };
  }

  /** Keep only the newest chain: remove checkpoints older than the last full one. */
  private prune(lastFull: string): void {
    for (const f of readdirSync(this.dir)) {
      if (/^ckpt-\d+\.gvm$/.test(f) && f < lastFull) unlinkSync(join(this.dir, f));
    }
  }
}

/** Resolve a path given to `gridvm resume` / `inspect`: a checkpoint file, or a directory (its `latest`). */
export function resolveCheckpointPath(path: string): string {
  if (existsSync(join(path, LATEST))) return join(path, readFileSync(join(path, LATEST), 'utf8').trim());
  return path;
}

/** Load a checkpoint and the deltas' bases it depends on, oldest first. */
export function loadChain(path: string, engine: PageEngine): DecodedSnapshot[] {
  const chain: DecodedSnapshot[] = [];
  let p = resolveCheckpointPath(path);
  for (let guard = 0; guard < 10_000; guard++) {
    let bytes: Uint8Array;
    try {
      bytes = readBytes(p);
    } catch (e) {
      throw new SnapshotError(`cannot read checkpoint ${p}: ${(e as Error).message}`, { cause: e });
    }
    const d = decodeSnapshot(bytes, engine);
    chain.unshift(d);
    if (d.header.kind === 'full') return chain;
    if (!d.header.baseFile) throw new SnapshotError(`delta checkpoint ${basename(p)} does not name its base file`);
    const baseId = d.header.base;
    p = join(dirname(p), d.header.baseFile);
    if (!existsSync(p)) throw new SnapshotError(`delta checkpoint ${basename(path)} needs its base ${d.header.baseFile}, which is missing`);
    void baseId;
  }
  throw new SnapshotError('checkpoint chain too long');
}
