// gridvm's processes (the CLI, grid node processes) limit V8's background Wasm compile tasks to the cores their job
// threads leave free; the effect (a single run of yosys 5.0 s -> ~1.6 s here) is measured in benchmarks/real.
import { describe, expect, it } from 'vitest';
import { wasmCompileTasks } from '../../runtime-node/v8-flags.js';

describe('wasmCompileTasks', () => {
  it('leaves one core to the job: cores - 1, at least one', () => {
    expect(wasmCompileTasks([], '', 2)).toBe(1);
    expect(wasmCompileTasks([], '', 1)).toBe(1);
    expect(wasmCompileTasks([], '', 16)).toBe(15);
  });
  it('keeps a limit the process was started with (node flags or NODE_OPTIONS)', () => {
    expect(wasmCompileTasks(['--wasm-num-compilation-tasks=4'], '', 8)).toBeUndefined();
    expect(wasmCompileTasks(['--stack-size=900'], '--wasm_num_compilation_tasks=2', 8)).toBeUndefined();
    expect(wasmCompileTasks(['--stack-size=900'], '--max-old-space-size=100', 8)).toBe(7);
  });
});
