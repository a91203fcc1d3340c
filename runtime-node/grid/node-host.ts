// A node of the grid: its own kernel instances (one per process, in runner threads), reachable on the Bus as
// `node.<id>`. The NodeHost itself never runs guest code, so its event loop stays free for commands and heartbeats;
// it steers a running process through the runner's control word (vm Control) and relays the runner's events.
import { randomUUID } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import type { Bus, NodeCommand, NodeEvent } from '../../kernel/index.js';
import { Control, type InstrumentInfo } from '../../vm/runtime.js';
import { JOB_STACK_MB } from '../job-thread.js';
import { startWorker } from '../workers.js';
import {
  CONTROL_SLOTS,
  CONTROL_WORDS,
  PRECOPY_DELTA_FLAG,
  PRECOPY_FLAG,
  slotWords,
  UNSTAGED,
  stamp,
  type LocalCheckpointEvent,
  type RecycleEvent,
  type RunnerCommand,
  type RunnerData,
} from './runner-types.js';

/**
 * Spare buffers for raw snapshots, shared by the thread nodes of this process: buffers that carried a migrated
 * job's memory come back here after the restore and are handed to the next runner that may suspend to a raw
 * snapshot. Bounded; the smallest buffer that fits is taken.
 */
export class SparePool {
  private readonly bufs: ArrayBufferLike[] = [];
  private bytes = 0;
  constructor(private readonly maxBytes: number, private readonly maxCount: number) {}
  give(b: ArrayBufferLike): void {
    if (b.byteLength === 0 || b.byteLength > this.maxBytes) return;
    this.bufs.push(b);
    this.bytes += b.byteLength;
    while (this.bytes > this.maxBytes || this.bufs.length > this.maxCount) this.bytes -= this.bufs.shift()!.byteLength;
  }
  /** The smallest buffer of at least `min` bytes; with min 0 (size unknown), the largest. */
  take(min: number): ArrayBufferLike | undefined {
    let best = -1;
    for (let i = 0; i < this.bufs.length; i++) {
      const n = this.bufs[i]!.byteLength;
      if (n < min) continue;
      if (best < 0 || (min > 0 ? n < this.bufs[best]!.byteLength : n > this.bufs[best]!.byteLength)) best = i;
    }
    if (best < 0) return undefined;
    const [b] = this.bufs.splice(best, 1);
    this.bytes -= b!.byteLength;
    return b;
  }
}
/** A pool for the thread nodes of one grid (it lives and dies with the grid). */
export function newSparePool(): SparePool {
  return new SparePool(1024 * 1024 * 1024, 8);
}

interface Runner {
  worker: Worker;
  control: SharedArrayBuffer;
  /** the process it runs, or holds prepared for a migration */
  gpid: number | undefined;
  /** staged starts queued behind it, in the order they were given */
  queue: number[];
  /** the process each control slot is given to, and the generation of each slot's last start */
  slots: Array<number | undefined>;
  gens: number[];
  modules: Set<string>;
  /** starts given to it in this turn, sent together (send) at its end */
  batch?: { list: RunnerCommand[]; transfer: ArrayBuffer[] };
}

interface Hosted {
  runner: Runner;
  slot: number;
  gen: number;
  /** the slot's control words (runner-types.ts RunnerData) */
  words: Int32Array;
}

const isIdle = (r: Runner): boolean => r.gpid === undefined && r.queue.length === 0;

/** The message of a kill that took back a start its runner had not begun (nothing of it ran). */
export const KILLED_BEFORE_BEGIN = 'killed before it began';

/** Runner threads a node keeps beyond its busy ones are capped: an idle one is kept ready, not more. */
const MAX_WARM_RUNNERS = 64;

export interface NodeHostOptions {
  slots?: number;
  /** commands arrive decoded for this node alone (a process node): their buffers may be transferred to runners */
  ownsMessages?: boolean;
  /** spare buffers shared with the grid's other thread nodes */
  spares?: SparePool;
  heartbeatMs?: number;
}

export class NodeHost {
  readonly incarnation = randomUUID();
  private readonly runners: Runner[] = [];
  private readonly modules = new Map<string, Promise<{ module: WebAssembly.Module; info: InstrumentInfo }>>();
  private readonly procs = new Map<number, Hosted>();
  /** the last start command of each process here, and its newest local checkpoint (kept on this node) */
  private readonly starts = new Map<number, Extract<NodeCommand, { t: 'start' }>>();
  private readonly locals = new Map<number, Uint8Array>();
  /** runners holding a pre-copied process until its migration's start (or drop) */
  private readonly prepared = new Map<number, Runner>();
  private unsubscribe: (() => void) | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  private readonly spares: SparePool;
  /** slots the origin's scheduler gives this node (it may change them: 'slots') */
  private slots: number;

  constructor(readonly id: string, private readonly bus: Bus, private readonly opts: NodeHostOptions = {}) {
    this.spares = opts.spares ?? newSparePool();
    this.slots = opts.slots ?? 1;
  }

  start(): void {
    this.unsubscribe = this.bus.subscribe(`node.${this.id}`, (m) => this.onCommand(m as NodeCommand));
    this.emit({ t: 'hello', node: this.id, slots: this.slots, pid: process.pid, incarnation: this.incarnation });
    this.heartbeat = setInterval(() => {
      this.emit({ t: 'heartbeat', node: this.id, incarnation: this.incarnation, running: [...this.procs.keys()] });
    }, this.opts.heartbeatMs ?? 250);
    this.heartbeat.unref?.();
    // warm runners for the node's slots: a worker thread takes tens of ms to start, which a start or an incoming
    // migration would otherwise wait for
    for (let i = 0; i < this.slots; i++) this.idleRunner();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    if (this.heartbeat) clearInterval(this.heartbeat);
    await Promise.all(this.runners.map((r) => r.worker.terminate()));
    this.runners.length = 0;
  }

  private emit(e: NodeEvent): void {
    if (!this.closed) this.bus.publish('coord', e);
  }

  private onCommand(m: NodeCommand): void {
    if (this.closed) return;
    switch (m.t) {
      case 'module':
        if (!this.modules.has(m.hash)) {
          const info = m.info as InstrumentInfo;
          const p = WebAssembly.compile(m.bytes as Uint8Array<ArrayBuffer>).then((module) => ({ module, info }));
          p.catch(() => {});
          this.modules.set(m.hash, p);
        }
        return;
      case 'start':
        void this.startProcess(m);
        return;
      case 'control': {
        const h = this.procs.get(m.gpid);
        if (m.action === 'unstage' || (m.action === 'kill' && h)) {
          // a start the runner has not begun is taken back whole: it never runs here (one compare-and-swap against
          // the runner's own when it reaches the start)
          const taken = !!h && Atomics.compareExchange(h.words, 2, stamp(h.gen), stamp(h.gen, UNSTAGED)) === stamp(h.gen);
          if (taken) this.forget(h, m.gpid);
          if (m.action === 'unstage') {
            this.emit({ t: 'unstaged', node: this.id, gpid: m.gpid, ok: taken });
            return;
          }
          if (taken) {
            this.emit({ t: 'trap', node: this.id, gpid: m.gpid, reason: 'killed', message: KILLED_BEFORE_BEGIN, stack: [], usage: { fuelUsed: 0, cpuMs: 0, memoryPeakBytes: 0, checkpoints: 0 } });
            return;
          }
        }
        if (!h) return; // already gone: the coordinator learns it from the exit event
        const v = m.action === 'kill' ? Control.KILL : m.action === 'suspend' ? Control.SUSPEND : Control.CHECKPOINT;
        // the words were cleared when this process was given to the runner, so they can be set at once, even
        // before the runner has begun it (it reads them at its first safe point)
        if (m.action === 'precopy') Atomics.store(h.words, 1, PRECOPY_FLAG);
        else if (m.action === 'precopy-delta') Atomics.store(h.words, 1, PRECOPY_DELTA_FLAG);
        Atomics.store(h.words, 0, v);
        return;
      }
      case 'prepare':
        void this.prepare(m);
        return;
      case 'stream':
        void this.streamIn(m);
        return;
      case 'drop':
        this.dropPrepared(m.gpid);
        return;
      case 'fault': {
        const h = this.procs.get(m.gpid);
        if (h && m.kind === 'runner-crash') void h.runner.worker.terminate();
        return;
      }
      case 'slots':
        this.slots = m.slots;
        return;
      case 'shutdown':
        void this.close();
        return;
    }
  }

  /** A runner that is free now, and keep one more warm behind it for the next start or migration. */
  private idleRunner(): Runner {
    const free = this.runners.find(isIdle);
    if (free) {
      if (!this.closed && !this.runners.some((r) => r !== free && isIdle(r)) && this.runners.length < MAX_WARM_RUNNERS) {
        setImmediate(() => {
          if (!this.closed && !this.runners.some(isIdle)) this.newRunner();
        });
      }
      return free;
    }
    return this.newRunner();
  }

  /**
   * For a staged start: the busy runner with the shortest queue (it begins the start when its process ends), not
   * one holding a pre-copy; an idle runner if there is no such runner with a free control slot.
   */
  private stagingRunner(): Runner {
    // a slot of this node is free in fact (the end of its process is on its way to the origin): start it at once
    let busy = 0;
    for (const r of this.runners) if (r.gpid !== undefined && this.prepared.get(r.gpid) !== r) busy++;
    if (busy < this.slots) return this.idleRunner();
    let best: Runner | undefined;
    for (const r of this.runners) {
      if (r.gpid === undefined || this.prepared.get(r.gpid) === r || r.queue.length + 1 >= CONTROL_SLOTS) continue;
      if (!best || r.queue.length < best.queue.length) best = r;
    }
    return best ?? this.idleRunner();
  }

  /** Give process `gpid` a control slot of runner r, its words cleared. */
  private claimSlot(r: Runner, gpid: number): Hosted {
    let slot = r.slots.indexOf(undefined);
    if (slot < 0) throw new Error(`runner of node ${this.id} has no free control slot`);
    r.slots[slot] = gpid;
    const gen = (r.gens[slot] = ((r.gens[slot] ?? 0) + 1) & 0x1fffffff);
    const words = slotWords(r.control, slot);
    for (let i = 0; i < CONTROL_WORDS; i++) Atomics.store(words, i, i === 2 ? stamp(gen) : 0);
    return { runner: r, slot, gen, words };
  }

  /** A process leaves its runner (ended, or taken back before it began). */
  private forget(h: Hosted, gpid: number): void {
    const r = h.runner;
    if (r.slots[h.slot] === gpid) r.slots[h.slot] = undefined;
    const i = r.queue.indexOf(gpid);
    if (i >= 0) r.queue.splice(i, 1);
    if (r.gpid === gpid) r.gpid = r.queue.shift();
    this.procs.delete(gpid);
    this.starts.delete(gpid);
    this.locals.delete(gpid);
  }

  private newRunner(): Runner {
    const control = new SharedArrayBuffer(CONTROL_SLOTS * CONTROL_WORDS * 4);
    const data: RunnerData = { node: this.id, control };
    const worker = startWorker('grid/runner', { workerData: data, resourceLimits: { stackSizeMb: JOB_STACK_MB } });
    const r: Runner = {
      worker, control, gpid: undefined, queue: [], slots: new Array<number | undefined>(CONTROL_SLOTS).fill(undefined), gens: new Array<number>(CONTROL_SLOTS).fill(0), modules: new Set(),
    };
    worker.on('message', (e: NodeEvent | RecycleEvent | LocalCheckpointEvent | NodeEvent[]) => {
      if (Array.isArray(e)) for (const x of e) this.onRunnerEvent(r, x);
      else this.onRunnerEvent(r, e);
    });
    let died = '';
    worker.on('error', (err) => {
      died = `its runner thread failed: ${err.message}`;
    });
    worker.on('exit', () => {
      const i = this.runners.indexOf(r);
      if (i >= 0) this.runners.splice(i, 1);
      // its process, and the starts staged behind it (they never began: the origin places them again)
      const lost = r.gpid !== undefined ? [r.gpid, ...r.queue] : [...r.queue];
      r.gpid = undefined;
      r.queue.length = 0;
      r.slots.fill(undefined);
      // what it held prepared (a pre-copy, a streamed memory) is gone with it: starts for those go elsewhere
      for (const [g, pr] of this.prepared) if (pr === r) this.prepared.delete(g);
      for (const gpid of lost) {
        if (!this.closed && this.procs.has(gpid)) this.runnerLost(gpid, died || 'its runner thread exited');
      }
    });
    this.runners.push(r);
    return r;
  }

  /**
   * A runner thread died under a process: continue it on a fresh runner from its newest local checkpoint (its
   * output since is replayed and dropped by offset at the origin), or, without one, hand it back to the origin.
   */
  private runnerLost(gpid: number, why: string): void {
    this.procs.delete(gpid);
    const start = this.starts.get(gpid);
    const local = this.locals.get(gpid);
    if (start && local) {
      // (only a process that began has a local checkpoint; it continues on an idle runner)
      const { base: _b, mids: _m, prepared: _p, resolve: _r, spare: _s, staged: _st, ...rest } = start as typeof start & { spare?: unknown };
      void this.startProcess({ ...rest, snapshot: local });
      return;
    }
    this.starts.delete(gpid);
    this.emit({ t: 'lost', node: this.id, gpid, why });
  }

  /** Give runner r the compiled module (once per runner). */
  private async ensureModule(r: Runner, hash: string): Promise<void> {
    if (r.modules.has(hash)) return;
    const mod = this.modules.get(hash);
    if (!mod) throw new Error(`module ${hash.slice(0, 16)} was not sent to node ${this.id}`);
    const { module, info } = await mod;
    if (r.modules.has(hash)) return;
    this.send(r, { t: 'module', hash, module, info });
    r.modules.add(hash);
  }

  private async prepare(m: Extract<NodeCommand, { t: 'prepare' }>): Promise<void> {
    const held = this.prepared.get(m.gpid);
    if (m.delta) {
      // a later pre-copy round: for the runner that holds the earlier ones
      if (held) this.send(held, { t: 'prepare', gpid: m.gpid, hash: m.hash, snapshot: m.snapshot, delta: true }, this.handOver(m.snapshot));
      else this.emit({ t: 'prepared', node: this.id, gpid: m.gpid, ok: false, message: `process ${m.gpid} has no earlier pre-copy on node ${this.id}` });
      return;
    }
    let r: Runner;
    try {
      r = await this.holdRunner(m.gpid, m.hash);
    } catch (e) {
      this.emit({ t: 'prepared', node: this.id, gpid: m.gpid, ok: false, message: (e as Error).message });
      return;
    }
    this.send(r, { t: 'prepare', gpid: m.gpid, hash: m.hash, snapshot: m.snapshot }, this.handOver(m.snapshot));
  }

  /**
   * A process node's messages were decoded for it alone: bytes that have a buffer of their own (a field read from
   * its carrier file) are handed over to the runner, not copied (a copy of the job's memory in the runner's heap,
   * and garbage of that size in this one). Bytes that came inline are a view of a read buffer that Node's IPC
   * channel shares between messages: handing that over would empty the others (and can crash the channel's reader),
   * so they are copied.
   */
  private handOver(bytes: Uint8Array | undefined): ArrayBuffer[] {
    const b = bytes?.buffer;
    return this.opts.ownsMessages && b instanceof ArrayBuffer && bytes!.byteOffset === 0 && bytes!.byteLength === b.byteLength ? [b] : [];
  }

  /** Let go of what a runner holds prepared for `gpid` (a pre-copy or a streamed memory), if any. */
  private dropPrepared(gpid: number): void {
    const r = this.prepared.get(gpid);
    this.prepared.delete(gpid);
    if (r) {
      this.send(r, { t: 'drop', gpid });
      r.gpid = undefined;
    }
  }

  /**
   * An idle runner held for `gpid`'s incoming migration, with its module (an earlier prepared state of the same
   * process is stale: dropped). Throws what giving it the module throws, holding nothing then.
   */
  private async holdRunner(gpid: number, hash: string): Promise<Runner> {
    this.dropPrepared(gpid);
    const r = this.idleRunner();
    r.gpid = gpid;
    this.prepared.set(gpid, r);
    try {
      await this.ensureModule(r, hash);
    } catch (e) {
      this.prepared.delete(gpid);
      r.gpid = undefined;
      throw e;
    }
    return r;
  }

  /**
   * A process freezing on another thread node is being captured into shared memory: an idle runner copies it as it
   * is captured and holds it for the process's start (or until 'drop').
   */
  private async streamIn(m: Extract<NodeCommand, { t: 'stream' }>): Promise<void> {
    let r: Runner;
    try {
      r = await this.holdRunner(m.gpid, m.hash);
    } catch {
      return; // the start will say what is wrong with the module
    }
    if (this.prepared.get(m.gpid) !== r) return; // dropped meanwhile
    const src = m.file !== undefined ? { file: m.file } : { buffer: m.buffer, progress: m.progress };
    this.send(r, { t: 'stream-in', gpid: m.gpid, hash: m.hash, pages: m.pages, ...src });
  }

  private async startProcess(m: Extract<NodeCommand, { t: 'start' }>): Promise<void> {
    this.starts.set(m.gpid, m);
    this.locals.delete(m.gpid);
    // a streamed start goes to the runner that copied its memory; without one (it was not streamed here after all)
    // it starts from its raw snapshot on any runner
    const held = m.prepared || m.streamed ? this.prepared.get(m.gpid) : undefined;
    this.prepared.delete(m.gpid);
    // a staged start queues behind a busy runner's process (the runner's port keeps it until that one ends)
    const r = held ?? (m.staged ? this.stagingRunner() : this.idleRunner());
    if (r.gpid === undefined || r.gpid === m.gpid) r.gpid = m.gpid;
    else r.queue.push(m.gpid);
    const hosted = this.claimSlot(r, m.gpid);
    this.procs.set(m.gpid, hosted);
    try {
      if (m.prepared && !held) throw new Error(`process ${m.gpid} was not prepared on node ${this.id}`);
      // (no await when the runner has the module: the start then leaves in this turn's batch)
      if (!r.modules.has(m.hash)) await this.ensureModule(r, m.hash);
    } catch (e) {
      this.forget(hosted, m.gpid);
      this.emit({ t: 'error', node: this.id, gpid: m.gpid, message: (e as Error).message });
      return;
    }
    if (this.procs.get(m.gpid) !== hosted) return; // taken back (unstaged or killed) before it was sent
    const cmd: Extract<RunnerCommand, { t: 'start' }> = { t: 'start', gpid: m.gpid, hash: m.hash, spec: m.spec, counters: m.counters, slot: hosted.slot, gen: hosted.gen };
    if (m.snapshot) cmd.snapshot = m.snapshot;
    if (m.raw) cmd.raw = m.raw;
    if (m.base) cmd.base = m.base;
    if (m.mids?.length) cmd.mids = m.mids;
    if (m.prepared) cmd.prepared = true;
    if (m.streamed && held) cmd.streamed = true;
    if (m.resolve) cmd.resolve = m.resolve;
    if (m.policy) cmd.policy = m.policy;
    // a raw snapshot's memory moves on to the runner (it was transferred here and is used once); on thread nodes
    // the runner also gets a spare buffer the size of that memory, so a later suspension copies into already
    // faulted-in pages instead of a fresh allocation
    const snap = m.snapshot;
    const transfer: ArrayBuffer[] = [];
    if (snap && !(snap instanceof Uint8Array)) {
      // (shared buffers are shared, not transferred: see rawOf in runner.ts)
      if (snap.memory.byteLength && snap.memory.buffer instanceof ArrayBuffer) transfer.push(snap.memory.buffer);
    } else if (snap) {
      transfer.push(...this.handOver(snap));
      if (m.base && m.base.buffer !== snap.buffer) transfer.push(...this.handOver(m.base));
    }
    if (m.raw === 'memory') {
      const spare = this.spares.take(snap && !(snap instanceof Uint8Array) ? snap.memory.byteLength : 0);
      if (spare) {
        cmd.spare = spare;
        if (spare instanceof ArrayBuffer) transfer.push(spare);
      }
    }
    this.send(r, cmd, transfer);
  }

  /**
   * Everything to a runner goes through here, in order. Starts given to one runner in the same turn (a batch of
   * exits frees slots for several staged starts) leave as one message at the end of the turn: each message costs the
   * sender a structured clone and a wake-up of the runner's thread, about as much as a tiny job's start itself.
   * Any other command first sends the starts before it.
   */
  private send(r: Runner, cmd: RunnerCommand, transfer: ArrayBuffer[] = []): void {
    if (cmd.t === 'start') {
      if (!r.batch) {
        r.batch = { list: [], transfer: [] };
        queueMicrotask(() => this.flush(r));
      }
      r.batch.list.push(cmd);
      for (const t of transfer) r.batch.transfer.push(t);
      return;
    }
    this.flush(r);
    r.worker.postMessage(cmd, transfer);
  }

  private flush(r: Runner): void {
    const b = r.batch;
    if (!b) return;
    r.batch = undefined;
    r.worker.postMessage(b.list.length === 1 ? b.list[0] : ({ t: 'starts', list: b.list } satisfies RunnerCommand), b.transfer);
  }

  private onRunnerEvent(r: Runner, ev: NodeEvent | RecycleEvent | LocalCheckpointEvent): void {
    if (ev.t === 'recycle') {
      this.spares.give(ev.buffer);
      return;
    }
    if (ev.t === 'local') {
      if (this.procs.has(ev.gpid)) this.locals.set(ev.gpid, ev.snapshot);
      return;
    }
    // an export its runner wrote to a carrier file (a process node) leaves no bytes here: the node keeps the local
    // checkpoint before it, and a runner lost before the next one continues from that (one interval earlier; the
    // output since is replayed and dropped by offset at the origin, as after any local restart)
    if (ev.t === 'checkpoint' && !ev.carried) this.locals.set(ev.gpid, ev.snapshot);
    const e = ev;
    if (e.t === 'prepared' && !e.ok) {
      this.prepared.delete(e.gpid);
      if (r.gpid === e.gpid) r.gpid = r.queue.shift();
    }
    if (e.t === 'started' && r.gpid !== e.gpid) {
      // a staged start began (its runner's order is the truth)
      const i = r.queue.indexOf(e.gpid);
      if (i >= 0) {
        r.queue.splice(i, 1);
        if (r.gpid !== undefined) r.queue.unshift(r.gpid);
        r.gpid = e.gpid;
      }
    }
    if (e.t === 'exit' || e.t === 'trap' || e.t === 'suspended' || e.t === 'blocked' || e.t === 'error') {
      const h = this.procs.get(e.gpid);
      if (h?.runner === r) this.forget(h, e.gpid);
      else {
        this.starts.delete(e.gpid);
        this.locals.delete(e.gpid);
        if (r.gpid === e.gpid) r.gpid = r.queue.shift();
      }
    }
    this.emit(e);
  }
}

