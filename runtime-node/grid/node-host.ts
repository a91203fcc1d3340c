// A node of the grid: its own kernel instances (one per process, in runner threads), reachable on the Bus as
// `node.<id>`. The NodeHost itself never runs guest code, so its event loop stays free for commands and heartbeats;
// it steers a running process through the runner's control word (vm Control) and relays the runner's events.
import { randomUUID } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import type { Bus, NodeCommand, NodeEvent } from '../../kernel/index.js';
import { Control, type InstrumentInfo } from '../../vm/runtime.js';
import { JOB_STACK_MB } from '../job-thread.js';
import { startWorker } from '../workers.js';
import type { RunnerCommand, RunnerData } from './runner.js';

interface Runner {
  worker: Worker;
  control: Int32Array;
  gpid: number | undefined;
  modules: Set<string>;
}

interface Hosted {
  runner: Runner;
  started: boolean;
  /** a control action asked before the runner confirmed the start */
  pending?: number;
}

export interface NodeHostOptions {
  slots?: number;
  heartbeatMs?: number;
}

export class NodeHost {
  readonly incarnation = randomUUID();
  private readonly runners: Runner[] = [];
  private readonly modules = new Map<string, Promise<{ module: WebAssembly.Module; info: InstrumentInfo }>>();
  private readonly procs = new Map<number, Hosted>();
  private unsubscribe: (() => void) | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(readonly id: string, private readonly bus: Bus, private readonly opts: NodeHostOptions = {}) {}

  start(): void {
    this.unsubscribe = this.bus.subscribe(`node.${this.id}`, (m) => this.onCommand(m as NodeCommand));
    this.emit({ t: 'hello', node: this.id, slots: this.opts.slots ?? 1, pid: process.pid, incarnation: this.incarnation });
    this.heartbeat = setInterval(() => {
      this.emit({ t: 'heartbeat', node: this.id, incarnation: this.incarnation, running: [...this.procs.keys()] });
    }, this.opts.heartbeatMs ?? 250);
    this.heartbeat.unref?.();
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
        if (!h) return; // already gone: the coordinator learns it from the exit event
        const v = m.action === 'kill' ? Control.KILL : m.action === 'suspend' ? Control.SUSPEND : Control.CHECKPOINT;
        if (h.started) Atomics.store(h.runner.control, 0, v);
        else h.pending = v;
        return;
      }
      case 'shutdown':
        void this.close();
        return;
    }
  }

  private idleRunner(): Runner {
    const free = this.runners.find((r) => r.gpid === undefined);
    if (free) return free;
    const control = new SharedArrayBuffer(4);
    const data: RunnerData = { node: this.id, control };
    const worker = startWorker('grid/runner', { workerData: data, resourceLimits: { stackSizeMb: JOB_STACK_MB } });
    const r: Runner = { worker, control: new Int32Array(control), gpid: undefined, modules: new Set() };
    worker.on('message', (e: NodeEvent) => this.onRunnerEvent(r, e));
    worker.on('error', (err) => {
      if (r.gpid !== undefined) this.emit({ t: 'error', node: this.id, gpid: r.gpid, message: `runner thread failed: ${err.message}` });
    });
    worker.on('exit', () => {
      const i = this.runners.indexOf(r);
      if (i >= 0) this.runners.splice(i, 1);
      if (r.gpid !== undefined && !this.closed) {
        this.procs.delete(r.gpid);
        this.emit({ t: 'error', node: this.id, gpid: r.gpid, message: 'runner thread exited unexpectedly' });
      }
    });
    this.runners.push(r);
    return r;
  }

  private async startProcess(m: Extract<NodeCommand, { t: 'start' }>): Promise<void> {
    const r = this.idleRunner();
    r.gpid = m.gpid;
    const hosted: Hosted = { runner: r, started: false };
    this.procs.set(m.gpid, hosted);
    try {
      if (!r.modules.has(m.hash)) {
        const mod = this.modules.get(m.hash);
        if (!mod) throw new Error(`module ${m.hash.slice(0, 16)} was not sent to node ${this.id}`);
        const { module, info } = await mod;
        const cmd: RunnerCommand = { t: 'module', hash: m.hash, module, info };
        r.worker.postMessage(cmd);
        r.modules.add(m.hash);
      }
    } catch (e) {
      this.procs.delete(m.gpid);
      r.gpid = undefined;
      this.emit({ t: 'error', node: this.id, gpid: m.gpid, message: (e as Error).message });
      return;
    }
    const cmd: RunnerCommand = {
      t: 'start', gpid: m.gpid, hash: m.hash, spec: m.spec, counters: m.counters,
      ...(m.snapshot ? { snapshot: m.snapshot } : {}),
      ...(m.resolve ? { resolve: m.resolve } : {}),
      ...(m.policy ? { policy: m.policy } : {}),
    };
    r.worker.postMessage(cmd);
  }

  private onRunnerEvent(r: Runner, e: NodeEvent): void {
    if (e.t === 'started') {
      const h = this.procs.get(e.gpid);
      if (h) {
        h.started = true;
        if (h.pending !== undefined) Atomics.store(r.control, 0, h.pending);
        h.pending = undefined;
      }
    }
    if (e.t === 'exit' || e.t === 'trap' || e.t === 'suspended' || e.t === 'blocked' || e.t === 'error') {
      if (r.gpid === e.gpid) r.gpid = undefined;
      this.procs.delete(e.gpid);
    }
    this.emit(e);
  }
}

