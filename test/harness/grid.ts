// In-process grid test helpers: run instrumented guests as Machines with a grid identity, /proc info and blocking
// grid calls answered by the test (what the coordinator does, without it). Also a kernel-level Guest with those.
import { readFileSync } from 'node:fs';
import { Process, type GridCall, type GridIdentity, type GridResult, type MountSpec, type ProcStatus, type ProcessState } from '../../kernel/index.js';
import { createNodePlatform } from '../../runtime-node/platform.js';
import {
  applyChain,
  concatChunks,
  createPageEngine,
  decodeSnapshot,
  encodeSnapshot,
  Machine,
  prepareJob,
  snapshotFromChain,
  type CompiledJob,
  type MachineOptions,
  type RunOutcome,
  type Snapshot,
} from '../../vm/index.js';
import { Guest, type GuestOptions } from '../unit/kernel-helpers.js';
import { guestPath } from './guests.js';

const dec = new TextDecoder();

/** Instrument (memory-cached) and compile a built guest. */
export function loadGuest(name: string): Promise<CompiledJob> {
  return prepareJob(new Uint8Array(readFileSync(guestPath(name))));
}

export interface VmOptions {
  args?: string[];
  env?: string[];
  mounts?: MountSpec[];
  grid?: GridIdentity;
  procInfo?: (gpid: bigint) => ProcStatus | undefined;
  machine?: Partial<Omit<MachineOptions, 'pages' | 'now'>>;
}

/** One Machine + Process, with its stdout/stderr collected. */
export class TestVm {
  readonly out: Uint8Array[] = [];
  readonly err: Uint8Array[] = [];
  readonly proc: Process;
  readonly machine: Machine;

  /** A fresh job, or (with `from`) a fresh Machine restored from a snapshot (memory from the snapshot or `apply`). */
  constructor(readonly job: CompiledJob, o: VmOptions = {}, from?: { snap: Snapshot; apply?: (dst: Uint8Array) => void }) {
    this.proc = new Process(
      {
        args: o.args ?? [job.hash.slice(0, 8)],
        env: o.env ?? [],
        mounts: o.mounts ?? [],
        platform: createNodePlatform(),
        stdout: (b) => this.out.push(b),
        stderr: (b) => this.err.push(b),
        ...(o.grid ? { grid: o.grid } : {}),
        ...(o.procInfo ? { procInfo: o.procInfo } : {}),
      },
      from?.snap.kernel as ProcessState | undefined,
    );
    this.machine = new Machine(job, this.proc, { pages: createPageEngine('auto'), now: () => performance.now(), ...(o.machine ?? {}) });
    if (from) this.machine.restore(from.snap, from.apply);
  }

  get stdout(): string {
    return this.out.map((b) => dec.decode(b)).join('');
  }
  get stderr(): string {
    return this.err.map((b) => dec.decode(b)).join('');
  }
}

/** A snapshot that outlives the next capture: memory copied out of the page engine's area. */
export function ownSnapshot(s: Snapshot): Snapshot {
  return { ...s, memory: s.memory.slice(0, s.pages * 65536), asyncify: s.asyncify.slice() };
}

/** Encode a snapshot to checkpoint-file bytes and decode it again: what moving it to another machine does. */
export function roundTrip(s: Snapshot): { snap: Snapshot; apply: (dst: Uint8Array) => void } {
  const engine = createPageEngine('auto');
  const bytes = concatChunks(encodeSnapshot(s, engine).chunks);
  const d = decodeSnapshot(bytes, engine);
  return { snap: snapshotFromChain([d]), apply: (dst) => applyChain([d], dst) };
}

/**
 * Run a job to its end, answering every blocking grid call with `answer`. With `migrate`, every blocked snapshot is
 * encoded, decoded and continued in a fresh Machine (built by `migrate`), as a coordinator moving it would.
 * Returns the outcome, every call seen, and the stdout of all the Machines in order.
 */
export function drive(
  first: TestVm,
  answer: (call: GridCall) => GridResult,
  opts: { migrate?: (from: { snap: Snapshot; apply: (dst: Uint8Array) => void }) => TestVm } = {},
): { outcome: RunOutcome; calls: GridCall[]; stdout: string; vms: TestVm[] } {
  const calls: GridCall[] = [];
  const vms = [first];
  let vm = first;
  for (;;) {
    const outcome = vm.machine.run();
    if (outcome.kind !== 'blocked') return { outcome, calls, stdout: vms.map((v) => v.stdout).join(''), vms };
    calls.push(outcome.call);
    if (opts.migrate) {
      vm = opts.migrate(roundTrip(outcome.snapshot));
      vms.push(vm);
    }
    vm.machine.resolveBlocked(answer(outcome.call));
  }
}

/** Guest (kernel-helpers) whose process has a grid identity, /proc info and a block hook. Default mount: /proc. */
export class GridGuest extends Guest {
  /** the gridvm namespace of the imports (spawn, fork, wait, gpid, ...) */
  gridvm: Record<string, (...a: any[]) => any> = {};

  constructor(o: GuestOptions & { grid?: GridIdentity; procInfo?: (gpid: bigint) => ProcStatus | undefined; block?: (c: GridCall) => GridResult | undefined }) {
    super({ ...(o.platform ? { platform: o.platform } : {}) });
    const proc = new Process(
      {
        args: o.args ?? ['prog'],
        env: o.env ?? [],
        mounts: o.mounts ?? [{ guest: '/proc', kind: 'proc' }],
        platform: o.platform ?? createNodePlatform(),
        stdout: (b) => this.out.push(b),
        stderr: (b) => this.err.push(b),
        ...(o.grid ? { grid: o.grid } : {}),
        ...(o.procInfo ? { procInfo: o.procInfo } : {}),
      },
      o.state,
    );
    const imports = proc.imports({ yield: () => {}, tick: () => {}, memory_limit: () => {}, ...(o.block ? { block: o.block } : {}) });
    proc.setMemory(this.mem);
    // Guest's fields are readonly for its users; this subclass swaps in its own process
    Object.assign(this, { proc, wasi: imports.wasi_snapshot_preview1 });
    this.gridvm = imports.gridvm as Record<string, (...a: any[]) => any>;
  }
}
