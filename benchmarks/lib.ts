// Shared helpers for the benchmarks: workloads, timing statistics, paths, markdown tables.
// A benchmark is a set of Workloads (same job, different variants) run side by side in one process and reported as
// ratios. Times are wall-clock milliseconds from performance.now().
import { existsSync, openSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One variant of a benchmark: `run(iters)` runs it `iters` times and returns each run's wall time in ms. */
export interface Workload {
  name: string;
  run(iters: number): Promise<number[]>;
}

/** The repository root (this file is benchmarks/lib.ts, compiled to dist/benchmarks/lib.js). */
export const repoRoot: string = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'vm'))) return d;
    d = dirname(d);
  }
  throw new Error('benchmarks: cannot find the repository root');
})();

export const guestBuildDir = join(repoRoot, 'test/guests/build');
export const guestWasm = (name: string): string => join(guestBuildDir, `${name}.wasm`);
export const guestNative = (name: string): string => join(guestBuildDir, `${name}.native`);

let devNullFd: number | undefined;
/** A file descriptor of /dev/null (for node:wasi's stdout). */
export function devNull(): number {
  devNullFd ??= openSync('/dev/null', 'w');
  return devNullFd;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[n >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}
export const min = (xs: number[]): number => Math.min(...xs);
export const geomean = (xs: number[]): number => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

/** Time `fn` `iters` times (ms each), after `warmup` untimed calls. */
export async function timeIt(fn: () => unknown | Promise<unknown>, iters: number, warmup = 0): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Synchronous variant of timeIt (no await between runs: for microsecond-scale work). */
export function timeSync(fn: () => unknown, iters: number, warmup = 0): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const out: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Milliseconds with sensible precision. */
export function ms(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toFixed(3);
}
export function us(xMs: number | undefined): string {
  if (xMs === undefined || !Number.isFinite(xMs)) return '—';
  const u = xMs * 1000;
  return u >= 100 ? u.toFixed(0) : u.toFixed(1);
}
export function ratio(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}x`;
}
export const MiB = 1024 * 1024;

/** A markdown table. */
export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

export function machineInfo(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'} × ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
    `Node ${process.version} (V8 ${process.versions.v8}), ${process.platform}-${process.arch}`;
}

/** A benchmark's result: a markdown section and the target checks it made. */
export interface Section {
  title: string;
  body: string;
  targets: TargetCheck[];
}

export interface TargetCheck {
  what: string;
  target: string;
  measured: string;
  met: boolean;
  /** what limits it (required when not met) */
  limit?: string;
}

export function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}
