import { Command, CommanderError } from 'commander';
import { registerBench } from './commands/bench.js';
import { registerCache } from './commands/cache.js';
import { registerGridControl } from './commands/grid-ctl.js';
import { registerInspect } from './commands/inspect.js';
import { registerResume, registerRun } from './commands/run.js';
import { ExitCode } from './exit-codes.js';
import { limitWasmCompileTasks } from '../runtime-node/v8-flags.js';

/** The `gridvm` command line. */
export async function main(argv: string[]): Promise<void> {
  limitWasmCompileTasks();
  const program = new Command();
  program
    .name('gridvm')
    .description('gridvm: run WebAssembly jobs on a grid VM with exact checkpoints and migration')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerRun(program);
  registerResume(program);
  registerInspect(program);
  registerGridControl(program);
  registerBench(program);
  registerCache(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : ExitCode.ERROR;
      return;
    }
    const err = e as Error;
    process.stderr.write(`gridvm: ${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}\n`);
    if (process.env.GRIDVM_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = ExitCode.ERROR;
  }
}
