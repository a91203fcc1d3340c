// Instances of instrumented modules kept for the next job of the same module. Instantiating is a large part of a
// tiny job (V8 builds the instance, its exports and globals, and copies the data segments; hello.wasm at steady
// state: ~36 µs per job instantiating, ~27 reusing; and garbage for the collector). An instance that ran a job to a
// clean exit can run another once it is put back exactly as instantiation left it: memory (still at its initial size)
// zeroed and the data segments' pages (InstrumentInfo.dataPages, as the first instantiation wrote them) copied back,
// mutable globals set to their first values. Modules that change other instance state
// (data.drop, table.set, table.grow), have a start function or track dirty pages are not reused
// (InstrumentInfo.reusable). The instance's imports are trampolines that call the current job's functions, so the
// next job binds its own Process and Machine. Platform-free.
import { SYSCALLS, type HostFn } from '../kernel/index.js';
import type { GlobalValue } from './machine.js';

/** One reusable instance: its memory, and the table of functions its imports call (set for each job). */
export interface PooledInstance {
  readonly module: WebAssembly.Module;
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  /** what each function import calls, in the order of `ModuleRecord.keys` */
  readonly fns: HostFn[];
  /** every mutable global it exports (the job's, and the VM's budget, tick floor, memory limit): all are reset */
  readonly globals: WebAssembly.Global[];
}

/** What the pool knows of a module: its imports, and the state a fresh instance of it starts in. */
interface ModuleRecord {
  /** "ns.name" of each function import, in the order of PooledInstance.fns */
  keys: string[];
  /** bytes of memory right after instantiation (the initial pages) */
  bytes: number;
  /** the pages the data segments wrote at instantiation (InstrumentInfo.dataPages) and their contents; the rest was
   * zero */
  data: Array<{ at: number; bytes: Uint8Array }>;
  /** the first values of the mutable exported globals (PooledInstance.globals order) */
  globals: GlobalValue[];
  idle: PooledInstance[];
}

export interface InstancePoolOptions {
  /** idle instances kept per module (default 2) */
  perModule?: number;
  /** modules with idle instances kept (default 16; the least recently used are dropped) */
  modules?: number;
  /** an instance whose initial memory is larger than this is not kept (default 16 MiB) */
  maxMemoryBytes?: number;
}

export interface InstancePoolStats {
  /** a job got an idle instance */
  hits: number;
  /** a job instantiated one that can go back to the pool */
  misses: number;
  /** instances put back after a clean exit */
  returned: number;
  /** instances not taken back (the job trapped, was suspended, or grew its memory) or dropped for room */
  dropped: number;
}

const PAGE = 65536;

const arityOf = new Map(SYSCALLS.map((s) => [`${s.ns}.${s.name}`, s.params.length]));

/** A fixed-arity import that calls fns[i] (no rest arrays on the hot path: fd_write is called per printf). */
function trampoline(fns: HostFn[], i: number, arity: number): HostFn {
  switch (arity) {
    case 0: return () => fns[i]!();
    case 1: return (a: unknown) => fns[i]!(a);
    case 2: return (a: unknown, b: unknown) => fns[i]!(a, b);
    case 3: return (a: unknown, b: unknown, c: unknown) => fns[i]!(a, b, c);
    case 4: return (a: unknown, b: unknown, c: unknown, d: unknown) => fns[i]!(a, b, c, d);
    default: return (...a: unknown[]) => fns[i]!(...a);
  }
}

/**
 * Idle instances by module (MachineOptions.instances). A Machine given the pool takes an idle instance of its module
 * if there is one, or instantiates one that can come back; `Machine.release()` puts it back after a clean exit.
 */
export class InstancePool {
  private readonly records = new Map<WebAssembly.Module, ModuleRecord>();
  private readonly perModule: number;
  private readonly maxModules: number;
  private readonly maxMemoryBytes: number;
  readonly stats: InstancePoolStats = { hits: 0, misses: 0, returned: 0, dropped: 0 };

  constructor(opts: InstancePoolOptions = {}) {
    this.perModule = opts.perModule ?? 2;
    this.maxModules = opts.modules ?? 16;
    this.maxMemoryBytes = opts.maxMemoryBytes ?? 16 * 1024 * 1024;
  }

  /** Whether an idle instance of `module` is ready (a fresh start then needs no memory of its own). */
  ready(module: WebAssembly.Module): boolean {
    return (this.records.get(module)?.idle.length ?? 0) > 0;
  }

  /** Idle instances held, over all modules. */
  get size(): number {
    let n = 0;
    for (const r of this.records.values()) n += r.idle.length;
    return n;
  }

  /** @internal (Machine) an idle instance of `module`, or undefined */
  take(module: WebAssembly.Module): PooledInstance | undefined {
    const r = this.records.get(module);
    const p = r?.idle.pop();
    if (!p) return undefined;
    this.stats.hits++;
    // most recently used last (eviction drops the first)
    this.records.delete(module);
    this.records.set(module, r!);
    return p;
  }

  /**
   * @internal (Machine) instantiate `module` with imports that call `fns` (filled from `imports` now, and by each
   * later job), in `memory` (fresh: zero but for what instantiation writes); the first instance of a module also
   * records the state it starts in: its memory's size, the pages the data segments wrote (`dataPages`), and its
   * mutable globals' values.
   */
  instantiate(
    module: WebAssembly.Module,
    functionImports: readonly WebAssembly.ModuleImportDescriptor[],
    imports: WebAssembly.Imports,
    memory: WebAssembly.Memory,
    dataPages: readonly number[],
  ): PooledInstance {
    this.stats.misses++;
    let r = this.records.get(module);
    const fns: HostFn[] = [];
    const linked: Record<string, Record<string, WebAssembly.ImportValue>> = { gridvm: { memory } };
    functionImports.forEach((d, i) => {
      fns.push(imports[d.module]![d.name] as HostFn);
      (linked[d.module] ??= {})[d.name] = trampoline(fns, i, arityOf.get(`${d.module}.${d.name}`) ?? -1);
    });
    const instance = new WebAssembly.Instance(module, linked);
    const globals: WebAssembly.Global[] = [];
    for (const v of Object.values(instance.exports)) {
      if (!(v instanceof WebAssembly.Global)) continue;
      try {
        v.value = v.value; // throws for an immutable global
        globals.push(v);
      } catch {
        /* immutable: nothing to reset */
      }
    }
    if (!r) {
      const mem = new Uint8Array(memory.buffer);
      r = {
        keys: functionImports.map((d) => `${d.module}.${d.name}`),
        bytes: mem.length,
        data: dataPages.filter((pg) => (pg + 1) * PAGE <= mem.length).map((pg) => ({ at: pg * PAGE, bytes: mem.slice(pg * PAGE, (pg + 1) * PAGE) })),
        globals: globals.map((g) => g.value as GlobalValue),
        idle: [],
      };
      this.records.set(module, r);
      while (this.records.size > this.maxModules) {
        const first = this.records.keys().next().value as WebAssembly.Module;
        this.stats.dropped += this.records.get(first)!.idle.length;
        this.records.delete(first);
      }
    }
    return { module, instance, memory, fns, globals };
  }

  /** @internal (Machine) bind a job's functions to a pooled instance's imports */
  bind(p: PooledInstance, imports: WebAssembly.Imports): void {
    const keys = this.records.get(p.module)?.keys;
    if (!keys) throw new Error('InstancePool.bind: the module is not in this pool');
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const dot = key.indexOf('.');
      p.fns[i] = imports[key.slice(0, dot)]![key.slice(dot + 1)] as HostFn;
    }
  }

  /**
   * @internal (Machine) take back an instance whose job exited cleanly: reset its memory and globals, or drop it
   * (returns false) when its memory is no longer the initial size or the pool is full.
   */
  give(p: PooledInstance): boolean {
    const r = this.records.get(p.module);
    p.fns.fill(dropped);
    if (!r || p.memory.buffer.byteLength !== r.bytes || r.bytes > this.maxMemoryBytes || r.idle.length >= this.perModule) {
      this.stats.dropped++;
      return false;
    }
    const mem = new Uint8Array(p.memory.buffer);
    mem.fill(0);
    for (const d of r.data) mem.set(d.bytes, d.at);
    const first = r.globals;
    const globals = p.globals;
    for (let i = 0; i < globals.length; i++) globals[i]!.value = first[i]!;
    r.idle.push(p);
    this.stats.returned++;
    return true;
  }

  /** Drop every idle instance. */
  clear(): void {
    this.records.clear();
  }
}

/** What an idle instance's imports call: nothing may (a job calling in after its release is a bug). */
function dropped(): never {
  throw new Error('gridvm: an import of a released instance was called');
}
