import type { Command } from 'commander';
import {
  cacheMaxBytes,
  cleanModuleCache,
  defaultModuleCacheDir,
  instrumenterCodeId,
  scanModuleCache,
  type ModuleCacheEntry,
} from '../../runtime-node/cache.js';
import { ExitCode } from '../exit-codes.js';
import { formatBytes } from '../units.js';

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/** An entry as plain data (the --json output). */
function entryJson(e: ModuleCacheEntry): Record<string, unknown> {
  return { key: e.key, instrumenter: e.instrumenter, current: e.current, bytes: e.bytes, lastUsed: new Date(e.lastUsedMs).toISOString(), files: e.files };
}

/** "2026-12-07 10:04" in local time. */
function when(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
const entries = (n: number): string => count(n, 'entry', 'entries');

function list(f: { json?: boolean }): void {
  const dir = defaultModuleCacheDir();
  const { entries: all, staleTemp } = scanModuleCache(dir);
  const totalBytes = all.reduce((s, e) => s + e.bytes, 0);
  const limitBytes = cacheMaxBytes();
  if (f.json) {
    const d = { dir, instrumenter: instrumenterCodeId(), totalBytes, limitBytes, entries: all.map(entryJson), staleTempFiles: staleTemp.length };
    process.stdout.write(JSON.stringify(d, null, 2) + '\n');
    return;
  }
  const other = all.filter((e) => !e.current);
  process.stdout.write(`${dir}: ${entries(all.length)}, ${formatBytes(totalBytes)} (limit ${formatBytes(limitBytes)})\n`);
  if (all.length) {
    const rows = [['SIZE', 'LAST USED', 'THIS BUILD', 'KEY'], ...all.map((e) => [formatBytes(e.bytes), when(e.lastUsedMs), e.current ? 'yes' : 'no', e.key])];
    process.stdout.write(table(rows));
  }
  if (other.length) {
    const bytes = other.reduce((s, e) => s + e.bytes, 0);
    process.stdout.write(`${entries(other.length)} (${formatBytes(bytes)}) made by other builds can never be served: \`gridvm cache clean\` removes them\n`);
  }
}

export function registerCache(program: Command): void {
  const cache = program
    .command('cache')
    .description('list or clean the cache of instrumented modules ($GRIDVM_CACHE_DIR/modules, else ~/.cache/gridvm/modules)');
  cache
    .command('ls', { isDefault: true })
    .description('list the cached modules, most recently used first (the default)')
    .option('--json', 'print JSON')
    .action(list);
  cache
    .command('clean')
    .description('remove the cached modules that this build cannot serve (made by another instrumenter)')
    .option('--all', 'remove every cached module')
    .option('--json', 'print JSON')
    .action((f: { all?: boolean; json?: boolean }) => {
      const dir = defaultModuleCacheDir();
      const r = cleanModuleCache(dir, { all: !!f.all });
      if (r.failed.length) process.exitCode = ExitCode.ERROR;
      if (f.json) {
        const d = {
          dir,
          removed: r.removed.map(entryJson),
          removedTempFiles: r.removedTemp.length,
          freedBytes: r.freedBytes,
          kept: r.kept,
          keptBytes: r.keptBytes,
          failed: r.failed,
        };
        process.stdout.write(JSON.stringify(d, null, 2) + '\n');
        return;
      }
      const what = f.all ? '' : ' made by other builds';
      const temp = r.removedTemp.length ? ` and ${count(r.removedTemp.length, 'unfinished write')}` : '';
      process.stdout.write(
        `${dir}: removed ${entries(r.removed.length)}${what}${temp}, freed ${formatBytes(r.freedBytes)}; ` +
          `${r.kept} left (${formatBytes(r.keptBytes)})\n`,
      );
      for (const x of r.failed) process.stderr.write(`gridvm: could not remove ${x.file}: ${x.error}\n`);
    });
}
