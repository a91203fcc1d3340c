import { KernelError } from '../errors.js';
import type { SyscallEntry } from './table.js';

export type HostFn = (...a: any[]) => unknown;
/**
 * Implementations by namespace: a record of functions by name, or several records looked up in order (a process's
 * WASI functions come from four groups; merging them into one object took ~1.7 µs per process).
 */
export type Impls = Record<string, Record<string, HostFn> | ReadonlyArray<Record<string, HostFn>>>;

function errnoOf(e: unknown): number {
  if (e instanceof KernelError) return e.errno;
  throw e; // Trap, ProcExit and bugs propagate
}

/**
 * Wrap an ABI function that returns an errno: success (no throw) is 0, KernelError becomes its errno. Fixed-arity
 * wrappers avoid allocating a rest array on every call (fd_write is hot).
 */
function errnoWrap(f: HostFn, arity: number): HostFn {
  switch (arity) {
    case 0: return () => { try { f(); return 0; } catch (e) { return errnoOf(e); } };
    case 1: return (a: unknown) => { try { f(a); return 0; } catch (e) { return errnoOf(e); } };
    case 2: return (a: unknown, b: unknown) => { try { f(a, b); return 0; } catch (e) { return errnoOf(e); } };
    case 3: return (a: unknown, b: unknown, c: unknown) => { try { f(a, b, c); return 0; } catch (e) { return errnoOf(e); } };
    case 4: return (a: unknown, b: unknown, c: unknown, d: unknown) => { try { f(a, b, c, d); return 0; } catch (e) { return errnoOf(e); } };
    default: return (...args: unknown[]) => { try { f(...args); return 0; } catch (e) { return errnoOf(e); } };
  }
}

/** Each entry's index by "ns.name", made once per table (link runs for every process: a tiny job is ~40 µs in all) */
const tableIndex = new WeakMap<readonly SyscallEntry[], Map<string, number>>();
function indexOf(table: readonly SyscallEntry[]): Map<string, number> {
  let m = tableIndex.get(table);
  if (!m) {
    m = new Map(table.map((s, i) => [`${s.ns}.${s.name}`, i]));
    tableIndex.set(table, m);
  }
  return m;
}

function implOf(impls: Impls, ns: string, name: string): HostFn | undefined {
  const src = impls[ns];
  if (!src) return undefined;
  if (!Array.isArray(src)) return (src as Record<string, HostFn>)[name];
  for (let i = 0; i < src.length; i++) {
    const f = src[i]![name];
    if (f !== undefined) return f;
  }
  return undefined;
}

function linkOne(out: Record<string, Record<string, WebAssembly.ImportValue>>, s: SyscallEntry, impls: Impls): void {
  const f = implOf(impls, s.ns, s.name);
  if (typeof f !== 'function') throw new Error(`link: no implementation for ${s.ns}.${s.name} (syscall ${s.id}); supply it in imports()`);
  const wrapped = s.ns === 'wasi_snapshot_preview1' && s.results.length === 1 ? errnoWrap(f, s.params.length) : f;
  (out[s.ns] ??= {})[s.name] = wrapped;
}

/**
 * Build the import object from the table: every entry must have an implementation in `impls[ns]` (a record, or
 * records looked up in order); with `used` ("ns.name" keys), only the entries the module imports are linked (keys
 * that name no table entry are skipped).
 * wasi_snapshot_preview1 calls that return an errno are wrapped (KernelError -> errno); others are linked as given.
 */
export function link(table: readonly SyscallEntry[], impls: Impls, used?: ReadonlySet<string>): WebAssembly.Imports {
  const out: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  if (!used) {
    for (let i = 0; i < table.length; i++) linkOne(out, table[i]!, impls);
    return out;
  }
  // a module that imports only some calls gets only those (fewer wrappers to build and to instantiate); it usually
  // imports far fewer than the table holds, so walk its keys
  const index = indexOf(table);
  for (const key of used) {
    const i = index.get(key);
    if (i !== undefined) linkOne(out, table[i]!, impls);
  }
  return out;
}
