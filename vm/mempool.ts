// Memories for jobs: created with the limits their instrumented module imports `gridvm.memory` with, and a pool of
// pre-grown, pre-faulted ones for warm processes. A fresh Wasm memory zero-fills each 4 KiB page on first touch:
// restoring 64 MiB into one costs ~25-40 ms of page faults (and V8 counts it as external memory, which can start a
// GC); into a memory whose pages are already mapped it is a memcpy (~3-10 ms). Platform-free.
import { PAGE_SIZE } from './pages.js';

/** The limits of a job's memory, in 64 KiB pages (InstrumentInfo.memory). */
export interface MemoryLimits {
  initial: number;
  maximum?: number;
  shared?: boolean;
}

const OS_PAGE = 4096;

/** The limits each memory made by createMemory was created with (a WebAssembly.Memory does not tell). */
const limitsOf = new WeakMap<WebAssembly.Memory, MemoryLimits>();
/** How many pages from 0 have been pre-faulted (the OS keeps them mapped: a Wasm memory never gives pages back). */
const faulted = new WeakMap<WebAssembly.Memory, number>();

/**
 * A new memory for a job whose module imports `gridvm.memory` with `limits`, `pages` long (default: the initial
 * size). Its limits are remembered (memoryLimits), so a pool can tell which modules it suits.
 */
export function createMemory(limits: MemoryLimits, pages = limits.initial): WebAssembly.Memory {
  const d: WebAssembly.MemoryDescriptor = { initial: Math.max(pages, limits.initial) };
  if (limits.maximum !== undefined) d.maximum = limits.maximum;
  if (limits.shared) d.shared = true;
  const m = new WebAssembly.Memory(d);
  limitsOf.set(m, { initial: limits.initial, ...(limits.maximum !== undefined ? { maximum: limits.maximum } : {}), ...(limits.shared ? { shared: true } : {}) });
  return m;
}

/** The limits a memory was created with by createMemory, or undefined for memories made elsewhere. */
export function memoryLimits(m: WebAssembly.Memory): MemoryLimits | undefined {
  return limitsOf.get(m);
}

/**
 * Whether a memory created with `have` may be imported by a module that declares `want`: the JS API requires the
 * same sharedness and, when the import has a maximum, a memory maximum no larger (we also require no smaller, so
 * the job can grow exactly as far as it could in its own memory).
 */
export function limitsCompatible(have: MemoryLimits, want: MemoryLimits): boolean {
  return !!have.shared === !!want.shared && have.maximum === want.maximum;
}

/** Pages of a memory. */
export function memoryPages(m: WebAssembly.Memory): number {
  return m.buffer.byteLength / PAGE_SIZE;
}

/**
 * Touch (write a zero byte into) every 4 KiB page of `m` in [fromPage, toPage) (64 KiB pages; default: all), so the
 * OS maps them now rather than when a restore copies into them. Writing zeros keeps a fresh memory all-zero; in a
 * memory holding data it overwrites one byte per 4 KiB: use it only on fresh pages or memories whose contents do not
 * matter (a restore overwrites them all).
 */
export function prefault(m: WebAssembly.Memory, toPage = memoryPages(m), fromPage = 0): void {
  const a = new Uint8Array(m.buffer);
  const end = Math.min(a.length, toPage * PAGE_SIZE);
  for (let i = fromPage * PAGE_SIZE; i < end; i += OS_PAGE) a[i] = 0;
  if (fromPage <= (faulted.get(m) ?? 0)) faulted.set(m, Math.max(faulted.get(m) ?? 0, end / PAGE_SIZE));
}


export interface MemoryPoolOptions {
  /** bound on the bytes of the memories kept (default 512 MiB); a memory that does not fit is dropped */
  maxBytes?: number;
  /** bound on the number of memories kept (default 8): each one also reserves address space */
  maxCount?: number;
}

export interface MemoryPoolStats {
  /** take() answered from the pool */
  hits: number;
  /** take() created a memory */
  misses: number;
  /** give() dropped a memory (unknown limits, too large, or evicted to stay within the bounds) */
  dropped: number;
}

/**
 * A pool of job memories for a warm process (a node, a runner, a browser tab), so that a restore or a migration lands
 * in pages that are already mapped.
 *
 * Sizes: a Wasm memory cannot shrink, and a job sees its memory's size (memory.size: wasi-libc's sbrk and
 * AssemblyScript's TLSF read it), so a job must get exactly the pages it had: take(n) returns a memory of exactly n
 * pages, reusing the largest pooled memory with compatible limits that is not larger than n (grown to n), else a new
 * one. A pooled memory larger than n is left for a larger job.
 *
 * Contents: take() gives a memory whose old contents are arbitrary (another job's data): right for a restore, which
 * overwrites every page. A fresh start needs an all-zero memory: pass `{ zeroed: true }` (a reused memory is then
 * cleared with fill(0), ~3 ms for 64 MiB; a new one is zero already).
 */
export class MemoryPool {
  private readonly free: WebAssembly.Memory[] = [];
  private readonly maxBytes: number;
  private readonly maxCount: number;
  readonly stats: MemoryPoolStats = { hits: 0, misses: 0, dropped: 0 };

  constructor(opts: MemoryPoolOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 512 * 1024 * 1024;
    this.maxCount = opts.maxCount ?? 8;
  }

  /** Bytes held by the pool now. */
  get bytes(): number {
    return this.free.reduce((a, m) => a + m.buffer.byteLength, 0);
  }

  /** Memories held by the pool now. */
  get size(): number {
    return this.free.length;
  }

  /**
   * A memory of exactly max(minPages, limits.initial) pages for a module that imports `gridvm.memory` with `limits`
   * (InstrumentInfo.memory), every page pre-faulted. Contents are arbitrary unless `zeroed` (see the class).
   */
  take(minPages: number, limits: MemoryLimits, opts: { zeroed?: boolean } = {}): WebAssembly.Memory {
    const pages = Math.max(minPages, limits.initial);
    if (limits.maximum !== undefined && pages > limits.maximum) throw new RangeError(`MemoryPool.take: ${pages} pages is above the memory's maximum (${limits.maximum})`);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const m = this.free[i]!;
      const n = memoryPages(m);
      if (n > pages || !limitsCompatible(limitsOf.get(m)!, limits)) continue;
      if (best < 0 || n > memoryPages(this.free[best]!)) best = i;
    }
    if (best < 0) {
      this.stats.misses++;
      const m = createMemory(limits, pages);
      prefault(m);
      return m;
    }
    this.stats.hits++;
    const m = this.free.splice(best, 1)[0]!;
    const had = memoryPages(m);
    if (had < pages) m.grow(pages - had);
    // record the requested initial (a memory's import compatibility does not depend on it; keep it for the caller)
    limitsOf.set(m, { ...limitsOf.get(m)!, initial: limits.initial });
    if (opts.zeroed) new Uint8Array(m.buffer).fill(0, 0, had * PAGE_SIZE);
    // the pages not pre-faulted yet: those the memory grew by, in the last job or just now
    prefault(m, pages, faulted.get(m) ?? 0);
    return m;
  }

  /**
   * Return a memory the caller no longer uses (its job has ended or moved away, and no Machine will run it again).
   * Memories not made by createMemory/take are dropped (their limits are unknown), as is one larger than the bound;
   * to make room, the oldest memories are evicted.
   */
  give(m: WebAssembly.Memory): void {
    if (this.free.includes(m)) return;
    const bytes = m.buffer.byteLength;
    if (!limitsOf.has(m) || bytes > this.maxBytes || this.maxCount < 1) {
      this.stats.dropped++;
      return;
    }
    let held = this.bytes;
    while (this.free.length && (held + bytes > this.maxBytes || this.free.length >= this.maxCount)) {
      held -= this.free.shift()!.buffer.byteLength;
      this.stats.dropped++;
    }
    this.free.push(m);
  }

  /** Touch every 4 KiB page of `m` below `pages` (see the function `prefault`). */
  prefault(m: WebAssembly.Memory, pages = memoryPages(m)): void {
    prefault(m, pages);
  }

  /** Drop every pooled memory (they are garbage-collected once unreferenced). */
  clear(): void {
    this.free.length = 0;
  }
}
