// Live migration downtime against memory size, through the Grid (runtime-node/grid/coordinator.ts): for each memory
// size × node isolation × pre-copy setting, a 2-node grid runs memtouch (test/guests/c/memtouch.c) with that much
// memory, and once the job has filled it, the process is migrated back and forth. Downtime = frozen on the source →
// running on the target (the coordinator's MigrationRecord). Next to it, a memcpy of the bytes shipped during the
// freeze into a preallocated, faulted-in buffer, measured in the same run. Shared by `npm run bench` (section
// "migrate") and `gridvm bench migrate` (tools/commands/bench.ts).
import { existsSync, readFileSync } from 'node:fs';
import { Grid, type JobResult, type MigrationRecord, type ProcView } from '../runtime-node/grid/coordinator.js';
import { guestWasm, log, median, MiB, ms, table, timeSync, type Section, type TargetCheck } from './lib.js';

export type Isolation = 'thread' | 'process';

export interface MigrateBenchOptions {
  /** memory sizes in MiB */
  sizes: number[];
  isolates: Isolation[];
  precopy: boolean[];
  /** measured migrations per case (back and forth) */
  reps: number;
  /** memtouch spin per dirtied page (sets the dirty rate); default WORK */
  work?: number;
  /** pause between migrations, ms (the job runs on the target meanwhile) */
  gapMs?: number;
  wasm?: string;
  onProgress?: (p: MigrateProgress) => void;
}

export interface MigrateProgress {
  caseIndex: number;
  cases: number;
  label: string;
  phase: 'start' | 'fill' | 'rep' | 'done';
  rep?: number;
  reps: number;
}

export interface MigrationSample {
  downtimeMs: number;
  totalMs: number;
  bytesShipped: number;
  precopyBytes: number;
  memoryBytes: number;
  from: string;
  to: string;
  precopy: boolean;
  /** frozen -> its snapshot reached the origin (unwind, copy, encode, hop to the origin) */
  sourceMs: number;
  /** snapshot at the origin -> running on the target (hop to the target, decode, restore, rewind) */
  targetMs: number;
}

export interface MigrateCaseResult {
  mib: number;
  isolate: Isolation;
  precopy: boolean;
  samples: MigrationSample[];
  downtimeMedianMs: number;
  downtimeMaxMs: number;
  totalMedianMs: number;
  sourceMedianMs: number;
  targetMedianMs: number;
  bytesShippedMedian: number;
  precopyBytesMedian: number;
  memoryBytes: number;
  /** memcpy of bytesShippedMedian bytes into a preallocated buffer (median of 9), ms */
  memcpyMs: number;
  /** downtime median / memcpyMs */
  ratio: number;
  /** migrations done before the measured ones (filling memory, warming both nodes) */
  warmups: number;
  /** the case failed: why (the other cases still ran) */
  error?: string;
}

/** memtouch spin per page write: ~15 ms per step natively, i.e. ~65 dirtied 64 KiB pages/s (~4 MB/s): a low dirty rate. */
export const WORK = 10_000_000;
export const DEFAULT_SIZES = [1, 16, 64, 256];

const epochNow = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const caseLabel = (c: { mib: number; isolate: Isolation; precopy: boolean }) => `${c.mib} MiB, ${c.isolate === 'thread' ? 'threads' : 'processes'}, pre-copy ${c.precopy ? 'on' : 'off'}`;

export class MigrateBenchError extends Error {
  override name = 'MigrateBenchError';
}

/** The memtouch guest, or a clear error if it is not built. */
export function memtouchPath(wasm?: string): string {
  const p = wasm ?? guestWasm('memtouch');
  if (!existsSync(p)) {
    throw new MigrateBenchError(`${p} is missing: build the example jobs first (\`npm run build\`; C jobs need Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32: see README "Quick start")`);
  }
  return p;
}

/** Median time (ms) to copy `bytes` into a preallocated, faulted-in buffer. */
export function memcpyMs(bytes: number): number {
  if (bytes <= 0) return 0;
  const src = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4096) src[i] = (i * 2654435761) >>> 24 || 1;
  const dst = new Uint8Array(bytes);
  dst.fill(1);
  return median(timeSync(() => dst.set(src), 9, 2));
}

/** When each 'suspended' event of a process reaches the origin (splits the downtime into source and target side). */
class SuspendWatch {
  readonly arrivals = new Map<number, number>();
  private readonly off: () => void;
  constructor(grid: Grid) {
    this.off = grid.bus.subscribe('coord', (m) => {
      const e = m as { t: string; gpid?: number };
      if (e.t === 'suspended' && e.gpid !== undefined) this.arrivals.set(e.gpid, epochNow());
    });
  }
  close(): void {
    this.off();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, rej) => (t = setTimeout(() => rej(new MigrateBenchError(`${what} took longer than ${ms / 1000} s`)), ms))),
  ]);
}

/** One migration, timed by the coordinator's MigrationRecord. */
async function migrateOnce(grid: Grid, watch: SuspendWatch, gpid: number, to: string, precopy: boolean, ended: Promise<JobResult>): Promise<MigrationSample> {
  const jobEnded = ended.then((r) => {
    const p = r.processes.find((x) => x.gpid === gpid);
    throw new MigrateBenchError(`memtouch ended during the benchmark (${p?.state ?? '?'}, exit ${p?.exitCode ?? '?'}${p?.failure ? `: ${p.failure.message}` : ''})`);
  });
  watch.arrivals.delete(gpid);
  const r: MigrationRecord = await withTimeout(Promise.race([grid.migrate(gpid, to, { precopy }), jobEnded]), 120_000, `migrating GPID ${gpid} to ${to}`);
  const arrived = watch.arrivals.get(gpid) ?? NaN;
  return {
    downtimeMs: r.downtimeMs, totalMs: r.totalMs, bytesShipped: r.bytesShipped, precopyBytes: r.precopyBytes, memoryBytes: r.memoryBytes,
    from: r.from, to: r.to, precopy: r.precopy, sourceMs: arrived - r.frozenAt, targetMs: r.runningAt - arrived,
  };
}

async function waitRunning(grid: Grid, ended: Promise<JobResult>): Promise<ProcView> {
  let done = false;
  void ended.then(() => (done = true));
  const t0 = Date.now();
  for (;;) {
    const v = grid.ps()[0];
    if (v && v.state === 'running' && v.node) return v;
    if (done || (v && ['exited', 'failed', 'killed'].includes(v.state))) throw new MigrateBenchError(`memtouch ended before it could be migrated (${v?.state}${v?.failure ? `: ${v.failure.message}` : ''})`);
    if (Date.now() - t0 > 60_000) throw new MigrateBenchError(`memtouch did not start within 60 s (state ${v?.state})`);
    await sleep(5);
  }
}

/** Run one case: a fresh 2-node grid, memtouch with `mib` MiB, `reps` measured migrations back and forth. */
async function runCase(path: string, c: { mib: number; isolate: Isolation; precopy: boolean }, o: MigrateBenchOptions, progress: (p: Omit<MigrateProgress, 'caseIndex' | 'cases' | 'label' | 'reps'>) => void): Promise<MigrateCaseResult> {
  const work = o.work ?? WORK;
  const gap = o.gapMs ?? 100;
  // periodic checkpoints off (1 h interval): they would compete with the migrations for the job's thread
  // heartbeat timeout 60 s: a node busy with a big snapshot must not be declared lost (this measures migration, not
  // failure detection; under load a 256 MiB pre-copy between processes stalled a node's event loop past the default 3 s)
  const grid = await Grid.start({ nodes: 2, isolate: c.isolate, heartbeatTimeoutMs: 60_000, checkpointPolicy: { w: 0.5, minMs: 3_600_000, maxMs: 3_600_000, initialMs: 3_600_000, exportEvery: 1_000_000 } });
  const watch = new SuspendWatch(grid);
  let stderr = '';
  try {
    progress({ phase: 'start' });
    const { done } = await grid.submit({
      wasm: new Uint8Array(readFileSync(path)), name: 'memtouch', args: [String(c.mib), '1000000000', String(work)],
      // pre-copy runs the job with dirty-page tracking, as `gridvm run --precopy` does: the freeze then copies and
      // ships only the pages written since the pre-copy
      ...(c.precopy ? { trackDirty: true } : {}),
      stderr: (b) => (stderr += Buffer.from(b).toString()),
    });
    const ended = done.then((r) => {
      if (stderr) r.processes[0]!.failure ??= { why: 'error', message: stderr.trim(), node: null, at: '' };
      return r;
    });
    ended.catch(() => {});
    const v0 = await waitRunning(grid, ended);
    const gpid = v0.gpid;
    const nodes = grid.nodes().map((n) => n.id);
    const other = (n: string) => nodes.find((x) => x !== n)!;
    let where = v0.node!;
    // fill: migrate until the job's fuel shows it has written all of its memory, then twice more (both nodes warm)
    const fillUnits = ((c.mib * MiB) / 8) * 1.05 + 400_000;
    progress({ phase: 'fill' });
    let warmups = 0;
    let filledAt = -1;
    const t0 = Date.now();
    for (;;) {
      const s = await migrateOnce(grid, watch, gpid, other(where), c.precopy, ended);
      where = s.to;
      warmups++;
      const v = grid.ps().find((p) => p.gpid === gpid)!;
      if (filledAt < 0 && v.fuelUsed >= fillUnits) filledAt = warmups;
      if (filledAt >= 0 && warmups >= filledAt + 2) break;
      if (Date.now() - t0 > 300_000) throw new MigrateBenchError(`memtouch ${c.mib} MiB did not fill its memory within 300 s (fuel ${v.fuelUsed} of ${Math.round(fillUnits)})`);
      await sleep(filledAt < 0 ? 50 : gap);
    }
    const samples: MigrationSample[] = [];
    for (let i = 0; i < o.reps; i++) {
      await sleep(gap);
      const s = await migrateOnce(grid, watch, gpid, other(where), c.precopy, ended);
      where = s.to;
      samples.push(s);
      progress({ phase: 'rep', rep: i + 1 });
    }
    grid.kill(gpid);
    await withTimeout(ended, 30_000, 'killing memtouch');
    const shipped = median(samples.map((s) => s.bytesShipped));
    const down = samples.map((s) => s.downtimeMs);
    const cpy = memcpyMs(Math.round(shipped));
    return {
      ...c, samples, warmups,
      downtimeMedianMs: median(down), downtimeMaxMs: Math.max(...down), totalMedianMs: median(samples.map((s) => s.totalMs)),
      sourceMedianMs: median(samples.map((s) => s.sourceMs)), targetMedianMs: median(samples.map((s) => s.targetMs)),
      bytesShippedMedian: shipped, precopyBytesMedian: median(samples.map((s) => s.precopyBytes)),
      memoryBytes: Math.max(...samples.map((s) => s.memoryBytes)), memcpyMs: cpy, ratio: cpy > 0 ? median(down) / cpy : NaN,
    };
  } finally {
    watch.close();
    await grid.close();
  }
}

/** Every case of the cross product sizes × isolates × precopy, in that order. */
export async function measureMigrations(o: MigrateBenchOptions): Promise<MigrateCaseResult[]> {
  const path = memtouchPath(o.wasm);
  if (!o.sizes.length || o.sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new MigrateBenchError(`memory sizes must be positive integers (MiB), not ${o.sizes.join(',')}`);
  if (!Number.isInteger(o.reps) || o.reps < 1) throw new MigrateBenchError(`--reps must be a positive integer, not ${o.reps}`);
  const cases = o.isolates.flatMap((isolate) => o.precopy.flatMap((precopy) => o.sizes.map((mib) => ({ mib, isolate, precopy }))));
  const out: MigrateCaseResult[] = [];
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    const label = caseLabel(c);
    let r: MigrateCaseResult;
    try {
      r = await runCase(path, c, o, (p) => o.onProgress?.({ ...p, caseIndex: i, cases: cases.length, label, reps: o.reps }));
    } catch (e) {
      r = {
        ...c, samples: [], warmups: 0, error: (e as Error).message, downtimeMedianMs: NaN, downtimeMaxMs: NaN, totalMedianMs: NaN,
        sourceMedianMs: NaN, targetMedianMs: NaN, bytesShippedMedian: NaN, precopyBytesMedian: NaN, memoryBytes: NaN, memcpyMs: NaN, ratio: NaN,
      };
    }
    o.onProgress?.({ phase: 'done', caseIndex: i, cases: cases.length, label, reps: o.reps });
    out.push(r);
  }
  return out;
}

// ------------------------------------------------------------------ reporting

const mibStr = (b: number) => (Number.isFinite(b) ? (b / MiB >= 1 ? `${(b / MiB).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`) : '—');

export function migrateRows(rs: MigrateCaseResult[]): { head: string[]; rows: string[][] } {
  return {
    head: ['memory', 'nodes', 'pre-copy (with dirty-page tracking)', 'downtime median ms', 'max ms', 'source / target side ms', 'request → running ms', 'shipped in freeze', 'pre-copied', 'memcpy of shipped ms', 'downtime / memcpy'],
    rows: rs.map((r) => r.error ? [`${r.mib} MiB`, r.isolate === 'thread' ? 'threads' : 'processes', r.precopy ? 'on' : 'off', `failed: ${r.error}`, '', '', '', '', '', '', ''] : [
      `${r.mib} MiB`, r.isolate === 'thread' ? 'threads' : 'processes', r.precopy ? 'on' : 'off', ms(r.downtimeMedianMs), ms(r.downtimeMaxMs),
      `${ms(r.sourceMedianMs)} / ${ms(r.targetMedianMs)}`, ms(r.totalMedianMs), mibStr(r.bytesShippedMedian), r.precopy ? mibStr(r.precopyBytesMedian) : '—',
      ms(r.memcpyMs), Number.isFinite(r.ratio) ? `${r.ratio.toFixed(1)}x` : '—',
    ]),
  };
}

/** Plain-text table (for the terminal). */
export function textTable(head: string[], rows: string[][]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

interface Series {
  name: string;
  points: Array<{ mib: number; ms: number }>;
}

export function seriesOf(rs: MigrateCaseResult[]): Series[] {
  const by = new Map<string, Series>();
  for (const r of rs) {
    if (!Number.isFinite(r.downtimeMedianMs)) continue;
    const name = `${r.isolate === 'thread' ? 'threads' : 'processes'}, pre-copy ${r.precopy ? 'on' : 'off'}`;
    if (!by.has(name)) by.set(name, { name, points: [] });
    by.get(name)!.points.push({ mib: r.mib, ms: r.downtimeMedianMs });
  }
  for (const s of by.values()) s.points.sort((a, b) => a.mib - b.mib);
  return [...by.values()];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A simple SVG line chart: median downtime (ms) against memory size (MiB, log2 axis), one line per case. */
export function svgChart(rs: MigrateCaseResult[], title = 'gridvm live migration: downtime vs memory size'): string {
  const series = seriesOf(rs);
  const W = 720, H = 440, L = 70, R = 230, T = 40, B = 60;
  const pw = W - L - R, ph = H - T - B;
  const sizes = [...new Set(series.flatMap((s) => s.points.map((p) => p.mib)))].sort((a, b) => a - b);
  const lx = (m: number) => Math.log2(m);
  const x0 = sizes.length ? lx(sizes[0]!) : 0, x1 = sizes.length ? lx(sizes[sizes.length - 1]!) : 1;
  const ymaxRaw = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.ms)));
  const step = niceStep(ymaxRaw / 5);
  const ymax = Math.ceil(ymaxRaw / step) * step;
  const X = (m: number) => L + (x1 === x0 ? pw / 2 : ((lx(m) - x0) / (x1 - x0)) * pw);
  const Y = (v: number) => T + ph - (v / ymax) * ph;
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L + pw / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let v = 0; v <= ymax + 1e-9; v += step) {
    out.push(`<line x1="${L}" y1="${Y(v).toFixed(1)}" x2="${L + pw}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toFixed(3)}</text>`);
  }
  for (const m of sizes) {
    out.push(`<line x1="${X(m).toFixed(1)}" y1="${T}" x2="${X(m).toFixed(1)}" y2="${T + ph}" stroke="#eee"/>`);
    out.push(`<text x="${X(m).toFixed(1)}" y="${T + ph + 18}" text-anchor="middle">${m}</text>`);
  }
  out.push(`<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="black"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="black"/>`);
  out.push(`<text x="${L + pw / 2}" y="${H - 18}" text-anchor="middle">memory (MiB, log scale)</text>`);
  out.push(`<text transform="translate(18 ${T + ph / 2}) rotate(-90)" text-anchor="middle">median downtime (ms)</text>`);
  series.forEach((s, i) => {
    const c = colors[i % colors.length]!;
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${s.points.map((p) => `${X(p.mib).toFixed(1)},${Y(p.ms).toFixed(1)}`).join(' ')}"/>`);
    for (const p of s.points) out.push(`<circle cx="${X(p.mib).toFixed(1)}" cy="${Y(p.ms).toFixed(1)}" r="3" fill="${c}"><title>${esc(`${s.name}: ${p.mib} MiB, ${ms(p.ms)} ms`)}</title></circle>`);
    const ly = T + 10 + i * 20;
    out.push(`<line x1="${L + pw + 15}" y1="${ly}" x2="${L + pw + 40}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${L + pw + 46}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceStep(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

// ------------------------------------------------------------------ `npm run bench` section

const TARGETS: Array<{ isolate: Isolation; precopy: boolean; goalMs: number; what: string }> = [
  { isolate: 'thread', precopy: false, goalMs: 10, what: 'migration downtime at 64 MiB between threads' },
  { isolate: 'process', precopy: false, goalMs: 30, what: 'migration downtime at 64 MiB between processes' },
  { isolate: 'thread', precopy: true, goalMs: 5, what: 'migration downtime at 64 MiB with pre-copy (low dirty rate), threads' },
  { isolate: 'process', precopy: true, goalMs: 5, what: 'migration downtime at 64 MiB with pre-copy (low dirty rate), processes' },
];

export async function benchMigrate(): Promise<Section> {
  const reps = 5;
  let lastCase = -1;
  const rs = await measureMigrations({
    sizes: DEFAULT_SIZES, isolates: ['thread', 'process'], precopy: [false, true], reps,
    onProgress: (p) => {
      if (p.caseIndex !== lastCase) log(`migrate: case ${p.caseIndex + 1}/${p.cases}: ${p.label}`);
      lastCase = p.caseIndex;
    },
  });
  const targets: TargetCheck[] = TARGETS.map((t) => {
    const r = rs.find((x) => x.mib === 64 && x.isolate === t.isolate && x.precopy === t.precopy);
    const ok = !!r && Number.isFinite(r.downtimeMedianMs);
    return {
      what: t.what, target: `<= ${t.goalMs} ms`,
      measured: ok ? `${ms(r!.downtimeMedianMs)} ms median, max ${ms(r!.downtimeMaxMs)} (${mibStr(r!.bytesShippedMedian)} shipped in the freeze; its memcpy ${ms(r!.memcpyMs)} ms)` : `not measured${r?.error ? `: ${r.error}` : ''}`,
      met: ok && r!.downtimeMedianMs <= t.goalMs,
      limit: MIGRATE_LIMIT(t.isolate, t.precopy, r),
    };
  });
  const { head, rows } = migrateRows(rs);
  const body = [
    `memtouch (MiB, steps 1e9, work ${WORK.toLocaleString('en')}: one dirtied 64 KiB page per step, ~65 pages/s natively) on a fresh 2-node grid per case ` +
      `(\`Grid.start({ nodes: 2, isolate })\`, periodic checkpoints off); once the job has filled its memory (by its fuel) and after two ` +
      `warm-up migrations (both nodes have run it), ${reps} migrations back and forth, 100 ms apart. Downtime = frozen on the source → ` +
      `running on the target (MigrationRecord.downtimeMs); request → running includes reaching the next safe point (and the pre-copy ` +
      `rounds). memcpy = \`TypedArray.set\` of the median bytes shipped during the freeze into a preallocated, faulted-in buffer ` +
      `(median of 9), measured in the same run. Source side = frozen → the snapshot\'s \`suspended\` event reaches the origin; target side = from there → running on the target.`,
    '',
    table(head, rows),
  ].join('\n');
  return { title: 'Live migration downtime vs memory (benchmarks/migrate.bench.ts)', body, targets };
}

function MIGRATE_LIMIT(isolate: Isolation, precopy: boolean, r: MigrateCaseResult | undefined): string {
  if (!r || !Number.isFinite(r.downtimeMedianMs)) return 'not measured';
  const side = `source side ${ms(r.sourceMedianMs)} ms, target side ${ms(r.targetMedianMs)} ms`;
  if (precopy) {
    return `${mibStr(r.bytesShippedMedian)} shipped in the freeze (${mibStr(r.precopyBytesMedian)} pre-copied and applied ` +
      `into the target's pooled memory before it; ${side}). The job runs with dirty-page tracking, so the freeze copies ` +
      'and encodes only the pages written since the last pre-copy round (two rounds for a state of 8 MiB or more: the ' +
      'second ships the pages written while the first travelled). ' + (isolate === 'process'
      ? 'Between processes the freeze delta crosses two process hops (its pages through /dev/shm files) before the ' +
        'target applies it, instantiates and rewinds.'
      : 'What remains is the capture, the message hops between threads, instantiation and the rewind.');
  }
  if (isolate === 'process') {
    return `${side} for ${mibStr(r.bytesShippedMedian)} (memcpy ${ms(r.memcpyMs)} ms). No encoding or checksum on this path: ` +
      'the memory goes through a file in /dev/shm, the state through the IPC messages (node → origin → node). At the safe ' +
      "point the source runner writes the job's live memory straight to the file (no copy in Machine.beginUnwind: the " +
      "file is the backup that repairs Asyncify's window after the unwind, a read of the bytes the unwind wrote at offset 0), " +
      "and the target runner reads it straight into the job's pooled memory. The file is reused: the target keeps it as " +
      'a spare and writes its next outgoing migration into it (a new tmpfs file allocates and zeroes every page; ' +
      'removing one cost ~2.5 ms at 64 MiB), so what remains is one write and one read of the memory through the ' +
      "kernel's page cache (each slower than memcpy: ~7-10 ms at 64 MiB here) in sequence plus the IPC hops, " +
      'instantiation and the rewind. A write split over two threads measured no faster; a split read was (~6.4 -> ' +
      '4.1 ms at 64 MiB in a microbenchmark), but the restore is synchronous and cannot wait for libuv\'s threads.';
  }
  return `${side} for ${mibStr(r.bytesShippedMedian)} (memcpy ${ms(r.memcpyMs)} ms). No encoding or checksum on this path: ` +
    "the safe point copies the memory into a spare SharedArrayBuffer in 4 MiB chunks, publishing its progress, and the " +
    "target copies each chunk into its pooled memory as it lands (runner.ts streamIn: told by a 'streaming' event the " +
    'source posts when the freeze begins), so the two whole-memory copies overlap on the two cores; the start then ' +
    'writes only the data-segment pages again. What remains is about one memcpy (the capture), the unwind, the message ' +
    'hops, instantiation and the rewind; a fresh (not yet pooled) spare or target memory adds its page faults.';
}
