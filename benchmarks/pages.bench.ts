// Page engine micro-benchmark: AssemblyScript (Wasm SIMD) vs TypeScript on 64 MiB of memory. It decides
// AUTO_ENGINE in vm/pages.ts. Run directly: `npx tsx benchmarks/pages.bench.ts` (or node dist/benchmarks/pages.bench.js).
// Prints a table; writes nothing else. GB/s = 64 MiB of job memory (one buffer) per second, 1 GB = 1e9 bytes.
import { pathToFileURL } from 'node:url';
import { createPageEngine, PAGE_SIZE, type PageEngine } from '../vm/pages.js';
import { median, timeSync } from './lib.js';

export interface PagesBenchRow {
  op: string;
  bytes: number;
  asMs: number;
  tsMs: number;
  asGBps: number;
  tsGBps: number;
  /** AS speed / TS speed (> 1: AssemblyScript is faster). */
  ratio: number;
}

export interface PagesBenchOptions {
  bytes?: number;
  /** Timed repetitions per case; the median is reported. */
  reps?: number;
  warmup?: number;
}

function fillRandom(u8: Uint8Array, seed: number): void {
  const w = new Uint32Array(u8.buffer, u8.byteOffset, u8.length >>> 2);
  let s = seed | 0 || 1;
  for (let i = 0; i < w.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    w[i] = s;
  }
}

function time(fn: () => void, reps: number, warmup: number): number {
  return median(timeSync(fn, reps, warmup));
}

export async function benchPages(opts: PagesBenchOptions = {}): Promise<{ rows: PagesBenchRow[] }> {
  const bytes = opts.bytes ?? 64 * 1024 * 1024;
  const reps = opts.reps ?? 7;
  const warmup = opts.warmup ?? 3;
  const nPages = Math.floor(bytes / PAGE_SIZE);
  const engines = { as: createPageEngine('assemblyscript'), ts: createPageEngine('typescript') };

  // Snapshot-like pair: b equals a except one byte in every 16th page (the other pages are compared in full).
  const a = new Uint8Array(bytes);
  fillRandom(a, 0x12345);
  const b = a.slice();
  for (let p = 0; p < nPages; p += 16) b[p * PAGE_SIZE + ((p * 7919) % PAGE_SIZE)] ^= 1;
  const hashes = new Uint32Array(2 * nPages);
  const flags = new Uint8Array(nPages);

  type Case = { op: string; setup: (e: PageEngine) => void; run: (e: PageEngine) => void };
  const cases: Case[] = [
    {
      op: 'hash pages (random data)',
      setup: (e) => e.area(bytes).set(a),
      run: (e) => e.hashPages(nPages, hashes),
    },
    {
      op: 'zero pages (all zero: full scan)',
      setup: (e) => e.area(bytes).fill(0),
      run: (e) => e.zeroPages(nPages, flags),
    },
    {
      op: 'hashBytes (64 MiB, outside buffer)',
      setup: () => {},
      run: (e) => void e.hashBytes(a),
    },
    {
      op: 'diff (a, b both in area)',
      setup: (e) => {
        const area = e.area(2 * bytes);
        area.set(a);
        area.set(b, bytes);
      },
      run: (e) => {
        const area = e.area(2 * bytes);
        e.diffPages(area.subarray(0, bytes), area.subarray(bytes), nPages, flags);
      },
    },
    {
      op: 'diff (a in area, b outside)',
      setup: (e) => e.area(bytes).set(a),
      run: (e) => e.diffPages(e.area(bytes), b, nPages, flags),
    },
    {
      op: 'diff (both outside)',
      setup: () => {},
      run: (e) => e.diffPages(a, b, nPages, flags),
    },
  ];

  const rows: PagesBenchRow[] = [];
  for (const c of cases) {
    const ms: Record<'as' | 'ts', number> = { as: 0, ts: 0 };
    for (const k of ['as', 'ts'] as const) {
      c.setup(engines[k]);
      ms[k] = time(() => c.run(engines[k]), reps, warmup);
    }
    const asGBps = bytes / ms.as / 1e6;
    const tsGBps = bytes / ms.ts / 1e6;
    rows.push({ op: c.op, bytes, asMs: ms.as, tsMs: ms.ts, asGBps, tsGBps, ratio: asGBps / tsGBps });
  }
  return { rows };
}

function format(rows: PagesBenchRow[]): string {
  const head = ['operation (64 MiB)', 'AS ms', 'AS GB/s', 'TS ms', 'TS GB/s', 'AS/TS'];
  const body = rows.map((r) => [
    r.op,
    r.asMs.toFixed(2),
    r.asGBps.toFixed(2),
    r.tsMs.toFixed(2),
    r.tsGBps.toFixed(2),
    `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  return [head, ...body].map((row) => row.map((cell, i) => (i ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rows } = await benchPages();
  console.log(format(rows));
}
