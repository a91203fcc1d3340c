// The Machine gathers a job's stdout/stderr between safe points (MachineOptions.outputBuffer, Process.bufferOutput):
// wasi-libc line-buffers stdio, so a job printing lines would otherwise make one host write per line. What the sinks
// receive must be exactly the job's output, in order, and every byte counted in a checkpoint (stdoutBytes,
// stderrBytes) must have reached its sink before the checkpoint is taken. Output must not wait for the job to end:
// it is flushed at every yield and tick, when run() returns (exit, trap, suspension), before stdin reads and sleeps.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Snapshot } from '../../vm/index.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { loadGuest, TestVm } from '../harness/grid.js';

const total = (chunks: Uint8Array[]) => chunks.reduce((n, b) => n + b.length, 0);

describe.runIf(hasClang() && existsSync(guestPath('hello')))('job output through a Machine', () => {
  it('hello: its ten lines (a write each when written through) reach the sink as one write, the same bytes as written through', async () => {
    const job = await loadGuest('hello');
    const args = ['hello', 'a', 'b'];
    const through = new TestVm(job, { args, env: ['HOME=/h'], machine: { outputBuffer: 0 } });
    expect(through.machine.run()).toEqual({ kind: 'exit', code: 0 });
    // line-buffered by wasi-libc: a write per line without gathering
    expect(through.out.length).toBe(10);
    const gathered = new TestVm(job, { args, env: ['HOME=/h'] });
    expect(gathered.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(gathered.out.length).toBe(1);
    expect(gathered.stdout).toBe(through.stdout);
    expect(gathered.stdout).toMatch(/^hello from gridvm\nargc=3\nargv\[0\]=hello\n[^]*env HOME=\/h\n$/);
    expect(gathered.proc.stdoutBytes).toBe(total(through.out));
  });

  it('endless: its line reaches the sink by the second yield, long before the job is stopped', async () => {
    const job = await loadGuest('endless');
    let yields = 0;
    const seen: string[] = [];
    const vm: TestVm = new TestVm(job, {
      machine: {
        slice: 50_000,
        fuel: 5_000_000,
        policy: () => {
          yields++;
          seen.push(vm.stdout);
          return 'continue';
        },
      },
    });
    const o = vm.machine.run();
    expect(o.kind).toBe('trap');
    expect(o.kind === 'trap' && o.trap.reason).toBe('fuel');
    expect(yields).toBeGreaterThan(10);
    // the budget is armed at 0, so the first yield comes before main runs; by the second the line is out, and the
    // job never prints again
    const first = seen.indexOf('endless: started\n');
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThanOrEqual(1);
    expect(seen.slice(0, first).every((t) => t === '')).toBe(true);
    expect(seen.slice(first).every((t) => t === 'endless: started\n')).toBe(true);
  });

  it('trap: the line printed before the trap reaches the sink', async () => {
    const job = await loadGuest('trap');
    const vm = new TestVm(job);
    const o = vm.machine.run();
    expect(o.kind).toBe('trap');
    expect(vm.stdout).toBe('trap: about to trap\n');
  });

  it('recursion: at every checkpoint the sinks have received exactly the bytes the checkpoint counts', async () => {
    const job = await loadGuest('recursion');
    const want = new TestVm(job, { machine: { outputBuffer: 0 } });
    expect(want.machine.run()).toEqual({ kind: 'exit', code: 0 });
    const counts: Array<[number, number, number, number]> = [];
    const vm: TestVm = new TestVm(job, {
      machine: {
        slice: 20_000,
        policy: () => 'checkpoint',
        onCheckpoint: (s: Snapshot) => counts.push([s.stdoutBytes, total(vm.out), s.stderrBytes, total(vm.err)]),
      },
    });
    expect(vm.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(vm.stdout).toBe(want.stdout);
    expect(vm.stderr).toBe(want.stderr);
    expect(counts.length).toBeGreaterThan(50);
    for (const [snapOut, gotOut, snapErr, gotErr] of counts) {
      expect(gotOut).toBe(snapOut);
      expect(gotErr).toBe(snapErr);
    }
    // the checkpoints are spread over the output: some before it, some within it
    const outs = new Set(counts.map((c) => c[0]));
    expect(outs.size).toBeGreaterThan(3);
    // fewer writes than lines: consecutive lines between two yields went as one
    expect(vm.out.length).toBeLessThan(want.out.length);
  });
});
