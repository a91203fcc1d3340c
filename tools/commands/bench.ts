// `gridvm bench migrate`: live migration downtime against memory size (the measuring code is shared with
// `npm run bench`: benchmarks/migrate.bench.ts). The grid and the chart library are loaded only when it runs.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { cliProgress } from '../progress.js';
import type { Command } from 'commander';
import type { Isolation, MigrateCaseResult } from '../../benchmarks/migrate.bench.js';

const DEFAULT_SIZES = '1,16,64,256';

class BenchArgError extends Error {
  override name = 'BenchArgError';
}

interface MigrateFlags {
  sizes: string;
  isolate: string;
  precopy: string;
  reps: string;
  json?: boolean;
  svg?: string;
}

function parseList<T extends string>(flag: string, v: string, allowed: readonly T[]): T[] {
  const xs = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = xs.filter((x) => !allowed.includes(x as T));
  if (!xs.length || bad.length) throw new BenchArgError(`invalid ${flag} "${v}": use a comma-separated list of ${allowed.join(', ')}`);
  return [...new Set(xs as T[])];
}

function parseSizes(v: string): number[] {
  const xs = v.split(',').map((s) => s.trim()).filter(Boolean).map((s) => Number(s.replace(/\s*(MiB|M)$/i, '')));
  if (!xs.length || xs.some((x) => !Number.isInteger(x) || x < 1 || x > 2048)) {
    throw new BenchArgError(`invalid --sizes "${v}": use memory sizes in MiB, whole numbers from 1 to 2048, e.g. 1,16,64,256`);
  }
  return [...new Set(xs)].sort((a, b) => a - b);
}

/** A chart of median downtime against memory size, one line per case, for the terminal. */
async function terminalChart(rs: MigrateCaseResult[], color: boolean): Promise<string> {
  const { default: asciichart } = await import('asciichart');
  const { seriesOf } = await import('../../benchmarks/migrate.bench.js');
  const series = seriesOf(rs);
  const sizes = [...new Set(rs.map((r) => r.mib))].sort((a, b) => a - b);
  if (!series.length || sizes.length < 2) return '';
  const palette = [asciichart.blue, asciichart.red, asciichart.green, asciichart.yellow, asciichart.magenta, asciichart.cyan];
  const data = series.map((s) => sizes.map((m) => s.points.find((p) => p.mib === m)?.ms ?? NaN));
  // asciichart spaces points evenly: stretch each to a few columns so the x labels fit
  const width = 8;
  const stretched = data.map((d) => d.flatMap((v, i) => (i === d.length - 1 ? [v] : Array.from({ length: width }, (_, k) => v + ((d[i + 1]! - v) * k) / width))));
  const chart = asciichart.plot(stretched, {
    height: 12,
    ...(color ? { colors: series.map((_, i) => palette[i % palette.length]!) } : {}),
    format: (x: number) => x.toFixed(1).padStart(8) + ' ',
  });
  const pad = ' '.repeat(10);
  let axis = '';
  sizes.forEach((m, i) => {
    const at = i * width;
    axis = axis.padEnd(at) + String(m);
  });
  const legend = series.map((s, i) => `  ${color ? palette[i % palette.length] : ''}──${color ? asciichart.reset : ''} ${s.name}`).join('\n');
  return `median downtime (ms) against memory (MiB)\n${chart}\n${pad}${axis}  MiB\n${legend}\n`;
}

function progressReporter(total: number, json: boolean): { update: (p: { caseIndex: number; label: string; phase: string; rep?: number; reps: number }) => void; stop: () => void } {
  if (process.stderr.isTTY) {
    const { SingleBar, Presets } = cliProgress();
    const bar = new SingleBar(
      { format: 'migrate [{bar}] {value}/{total} migrations | case {case} {label}: {phase}', stream: process.stderr, clearOnComplete: true, hideCursor: true },
      Presets.shades_classic,
    );
    bar.start(total, 0, { case: '', label: '', phase: '' });
    let done = 0;
    return {
      update: (p) => {
        if (p.phase === 'rep') done++;
        bar.update(done, { case: `${p.caseIndex + 1}`, label: p.label, phase: p.phase === 'rep' ? `migration ${p.rep}/${p.reps}` : p.phase === 'fill' ? 'filling memory, warm-up migrations' : p.phase === 'start' ? 'starting the grid' : 'done' });
      },
      stop: () => bar.stop(),
    };
  }
  let last = -1;
  return {
    update: (p) => {
      if (p.caseIndex === last || json) return;
      last = p.caseIndex;
      process.stderr.write(`gridvm bench migrate: case ${p.caseIndex + 1}: ${p.label}\n`);
    },
    stop: () => {},
  };
}

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('measure gridvm on this machine');
  bench
    .command('migrate')
    .description('live migration downtime (freeze -> running on the target) against memory size, on a 2-node grid, next to a memcpy of the bytes shipped')
    .option('--sizes <MiB,...>', 'memory sizes of the migrated job, in MiB', DEFAULT_SIZES)
    .option('--isolate <thread,process>', 'node isolation: thread, process or both', 'thread,process')
    .option('--precopy <both|on|off>', 'migrate with pre-copy, without, or both', 'both')
    .option('--reps <n>', 'measured migrations per case (back and forth)', '5')
    .option('--json', 'print the results as JSON')
    .option('--svg <file>', 'write an SVG line chart of downtime against memory size')
    .action(async (f: MigrateFlags) => {
      const sizes = parseSizes(f.sizes);
      const isolates = parseList('--isolate', f.isolate, ['thread', 'process'] as const) as Isolation[];
      if (!['both', 'on', 'off'].includes(f.precopy)) throw new BenchArgError(`invalid --precopy "${f.precopy}": use both, on or off`);
      const precopy = f.precopy === 'both' ? [false, true] : [f.precopy === 'on'];
      const reps = Number(f.reps);
      if (!Number.isInteger(reps) || reps < 1 || reps > 1000) throw new BenchArgError(`invalid --reps "${f.reps}": use a whole number from 1 to 1000`);
      const { measureMigrations, migrateRows, svgChart, textTable } = await import('../../benchmarks/migrate.bench.js');
      const { machineInfo } = await import('../../benchmarks/lib.js');
      const load0 = loadavg()[0]!;
      const progress = progressReporter(sizes.length * isolates.length * precopy.length * reps, !!f.json);
      let rs: MigrateCaseResult[];
      try {
        rs = await measureMigrations({ sizes, isolates, precopy, reps, onProgress: progress.update });
      } finally {
        progress.stop();
      }
      const load1 = loadavg()[0]!;
      const failed = rs.filter((r) => r.error);
      for (const r of failed) process.stderr.write(`gridvm bench migrate: case ${r.mib} MiB, ${r.isolate}, pre-copy ${r.precopy ? 'on' : 'off'} failed: ${r.error}\n`);
      if (failed.length) process.exitCode = 125;
      if (f.svg) writeFileSync(f.svg, svgChart(rs));
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ machine: machineInfo(), loadavg: [load0, load1], reps, results: rs })}\n`);
        return;
      }
      const { head, rows } = migrateRows(rs);
      process.stdout.write(textTable(head, rows));
      process.stdout.write(`\n${machineInfo()}; 1-minute load average ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end.\n`);
      process.stdout.write('downtime = frozen on the source -> running on the target; memcpy = the bytes shipped in the freeze copied into a preallocated buffer.\n');
      const chart = await terminalChart(rs, !!process.stdout.isTTY);
      if (chart) process.stdout.write(`\n${chart}`);
      if (f.svg) process.stdout.write(`\nwrote ${f.svg}\n`);
    });
}
