// A suspension captured into a shared buffer in chunks, with progress (MachineOptions.captureProgress): what a
// migration between thread nodes streams to its target while it is captured. The streamed copy, made only from the
// chunks as they are reported, holds exactly the captured memory; restoring into it (a pooled memory that held other
// data), with only the data-segment pages written again after instantiation, continues the job exactly, also with
// deep call stacks, across many hops.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CAPTURE_CHUNK, MemoryPool, type Snapshot } from '../../vm/runtime.js';
import { guestPath, hasClang } from '../harness/guests.js';
import { loadGuest, TestVm } from '../harness/grid.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const PAGE = 65536;

describe.runIf(hasClang() && existsSync(guestPath('recursion')))('streamed capture: memory copied while it is captured', () => {
  for (const [guest, args] of [['recursion', ['1', '23']], ['malloc_churn', ['2', '200000']]] as const) {
    it(`${guest}: 10 hops, each streamed chunk by chunk into a pooled memory and continued there: exact`, async () => {
      const job = await loadGuest(guest);
      const ref = new TestVm(job, { args: [guest, ...args], machine: { slice: 5000 } });
      expect(ref.machine.run().kind).toBe('exit');
      const total = ref.machine.fuelUsed;
      const points = Array.from({ length: 10 }, (_, i) => Math.floor((total * (i + 1)) / 11));
      const pool = new MemoryPool();
      const lim = job.info.memory!;
      expect(lim).toBeDefined();
      let from: { snap: Snapshot; memory: WebAssembly.Memory } | undefined;
      let stdout = '';
      for (const at of points) {
        // the target side: a pooled memory full of another job's bytes, filled only from reported chunks
        let target: WebAssembly.Memory | undefined;
        let got = 0;
        let buf: Uint8Array | undefined;
        const progress: number[] = [];
        const vm = new TestVm(job, {
          args: [guest, ...args],
          machine: {
            slice: 5000,
            ...(from ? { memory: from.memory } : {}),
            policy: (m) => (m.fuelUsed >= at ? 'suspend' : 'continue'),
            captureBuffer: (action, bytes) => {
              if (action !== 'suspend') return undefined;
              buf = new Uint8Array(new SharedArrayBuffer(bytes));
              target = pool.take(bytes / PAGE, lim);
              new Uint8Array(target.buffer).fill(0xab);
              return buf;
            },
            captureProgress: (copied) => {
              progress.push(copied);
              new Uint8Array(target!.buffer).set(buf!.subarray(got, copied), got);
              got = copied;
            },
          },
        }, from ? {
          snap: from.snap,
          // the memory holds the streamed bytes: write again only what instantiation overwrote
          apply: (dst) => {
            for (const pg of job.info.dataPages ?? []) if (pg < from!.snap.pages) dst.set(from!.snap.memory.subarray(pg * PAGE, (pg + 1) * PAGE), pg * PAGE);
          },
        } : undefined);
        const outcome = vm.machine.run();
        stdout += vm.stdout;
        expect(outcome.kind).toBe('suspended');
        if (outcome.kind !== 'suspended') return;
        const s = outcome.snapshot;
        const bytes = s.pages * PAGE;
        // captured into the caller's buffer, chunk by chunk, in order, the last report covering all of memory
        expect(s.memory.buffer).toBe(buf!.buffer);
        expect(progress.length).toBe(Math.ceil(bytes / CAPTURE_CHUNK));
        progress.forEach((p, i) => expect(p).toBe(Math.min(bytes, (i + 1) * CAPTURE_CHUNK)));
        // the streamed copy is the snapshot's memory
        expect(sha(new Uint8Array(target!.buffer, 0, bytes))).toBe(sha(s.memory.subarray(0, bytes)));
        if (from) pool.give(from.memory);
        from = { snap: { ...s, memory: s.memory.slice(0, bytes), asyncify: s.asyncify.slice() }, memory: target! };
      }
      const last = new TestVm(job, { args: [guest, ...args], machine: { slice: 5000, memory: from!.memory } }, {
        snap: from!.snap,
        apply: (dst) => {
          for (const pg of job.info.dataPages ?? []) if (pg < from!.snap.pages) dst.set(from!.snap.memory.subarray(pg * PAGE, (pg + 1) * PAGE), pg * PAGE);
        },
      });
      expect(last.machine.run().kind).toBe('exit');
      stdout += last.stdout;
      expect(stdout).toBe(ref.stdout);
    }, 120_000);
  }
});
