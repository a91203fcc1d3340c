import type { Command } from 'commander';
import { formatBytes } from '../units.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show what a checkpoint holds')
    .argument('<checkpoint>', 'a checkpoint file or directory')
    .option('--json', 'print JSON')
    .action(async (ck: string, f: { json?: boolean }) => {
      const { describeCheckpoint } = await import('./describe-checkpoint.js');
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
