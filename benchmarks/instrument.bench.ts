// Row 2: instrumentation time for the biggest guest module available, cold and cached:
//   cold, fresh process      a new Node process: import vm/job.ts + prepareJob with no cache (which loads Binaryen)
//   cold, warm process       prepareJob of a module never seen (no cache): validate, instrument, compile
//   disk cache, fresh proc   a new Node process, prepareJob with runtime-node's DiskModuleCache holding it
//   disk cache, warm process prepareJob of a module not in the memory cache but on disk: read + compile
//   memory cache             prepareJob of a module already prepared in this process: two sha-256 only
// "Never seen" modules are the guest with a unique custom section appended (same code, new content hash), because
// vm/job.ts's memory cache is module-global and cannot be cleared from outside.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTRUMENT_VERSION, instrument, moduleCacheKey, prepareJob, sha256Hex } from '../vm/index.js';
import { DiskModuleCache } from '../runtime-node/cache.js';
import { uleb128 } from '../vm/namesection.js';
import { guestBuildDir, log, median, ms, repoRoot, table, type Section } from './lib.js';

const leb = uleb128;

/** The module with a custom section `gridvm-bench` = tag appended: same code, different hash. */
export function withCustomSection(bytes: Uint8Array, tag: string): Uint8Array {
  const name = new TextEncoder().encode('gridvm-bench');
  const payload = new TextEncoder().encode(tag);
  const content = [...leb(name.length), ...name, ...payload];
  const sec = new Uint8Array([0, ...leb(content.length), ...content]);
  const out = new Uint8Array(bytes.length + sec.length);
  out.set(bytes);
  out.set(sec, bytes.length);
  return out;
}

function child(wasm: string, mode: 'cold' | 'disk', dir?: string): { loadMs: number; prepareMs: number; cached: boolean } {
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist/benchmarks/instrument-child.js'), wasm, mode, ...(dir ? [dir] : [])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`instrument-child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { loadMs: number; prepareMs: number; cached: boolean };
}

export async function benchInstrument(opts: { iters?: number } = {}): Promise<Section> {
  const iters = opts.iters ?? 5;
  const wasms = readdirSync(guestBuildDir).filter((f) => f.endsWith('.wasm')).map((f) => join(guestBuildDir, f));
  const biggest = wasms.sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!biggest) return { title: '2. Instrumentation time', body: 'No guest is built.', targets: [] };
  const name = biggest.split('/').pop()!;
  log(`instrument: ${name}`);
  const bytes = new Uint8Array(readFileSync(biggest));
  const dir = mkdtempSync(join(tmpdir(), 'gridvm-bench-cache-'));
  try {
    const disk = new DiskModuleCache(dir);
    let n = 0;
    const fresh = () => withCustomSection(bytes, `${process.pid}-${Date.now()}-${n++}`);

    // fresh processes
    const freshCold = Array.from({ length: 3 }, () => child(biggest, 'cold'));
    // fill the disk cache for the unmodified module, then read it from fresh processes
    const key = moduleCacheKey(await sha256Hex(bytes));
    const out = instrument(bytes);
    await disk.put(key, { bytes: out.bytes, info: out.info });
    const freshDisk = Array.from({ length: 3 }, () => child(biggest, 'disk', dir));

    // this process (Binaryen loaded, V8 warm)
    await prepareJob(fresh()); // warm-up
    const cold: number[] = [];
    const instrOnly: number[] = [];
    for (let i = 0; i < iters; i++) {
      const b = fresh();
      let t0 = performance.now();
      const j = await prepareJob(b);
      cold.push(performance.now() - t0);
      if (j.cached) throw new Error('instrument bench: expected a cache miss');
      t0 = performance.now();
      instrument(b);
      instrOnly.push(performance.now() - t0);
    }
    const diskHit: number[] = [];
    for (let i = 0; i < iters; i++) {
      const b = fresh();
      const k = moduleCacheKey(await sha256Hex(b));
      await disk.put(k, { bytes: out.bytes, info: out.info });
      const t0 = performance.now();
      const j = await prepareJob(b, { cache: disk });
      diskHit.push(performance.now() - t0);
      if (!j.cached) throw new Error('instrument bench: expected a disk cache hit');
    }
    const memB = fresh();
    await prepareJob(memB);
    const memHit: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const j = await prepareJob(memB);
      memHit.push(performance.now() - t0);
      if (!j.cached) throw new Error('instrument bench: expected a memory cache hit');
    }
    const s = out.info.stats;
    const coldMed = median(cold);
    const body = [
      `Biggest guest available: \`${name}\` (${(bytes.length / 1024).toFixed(1)} KiB; instrumented ${(out.bytes.length / 1024).toFixed(1)} KiB = ` +
        `${(out.bytes.length / bytes.length).toFixed(2)}x; ${s.functions} functions, ${s.loops} loops, ${s.entryChecks} entry checks, ${s.grows} memory.grow). ` +
        `Median of ${iters} (fresh-process rows: median of 3, each a new \`node\`). Large real programs: see the next section.`,
      '',
      table(
        ['prepareJob', 'ms', 'vs cold (warm process)'],
        [
          ['cold, fresh process: import vm/job.ts + load Binaryen + instrument + compile', `${ms(median(freshCold.map((r) => r.loadMs + r.prepareMs)))} (import ${ms(median(freshCold.map((r) => r.loadMs)))} + prepare ${ms(median(freshCold.map((r) => r.prepareMs)))})`, '—'],
          ['cold, warm process (no cache): validate + instrument + compile', ms(coldMed), '1.00x'],
          ['  of which instrument() alone', ms(median(instrOnly)), `${(median(instrOnly) / coldMed).toFixed(2)}x`],
          ['disk cache, fresh process (import vm/job.ts + read + compile; no Binaryen)', `${ms(median(freshDisk.map((r) => r.loadMs + r.prepareMs)))} (import ${ms(median(freshDisk.map((r) => r.loadMs)))} + prepare ${ms(median(freshDisk.map((r) => r.prepareMs)))})`, '—'],
          ['disk cache, warm process (read + compile)', ms(median(diskHit)), `${(median(diskHit) / coldMed).toFixed(3)}x`],
          ['memory cache (compiled module kept)', ms(median(memHit)), `${(median(memHit) / coldMed).toFixed(4)}x`],
        ],
      ),
    ].join('\n');
    return { title: '2. Instrumentation time', body, targets: [] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
