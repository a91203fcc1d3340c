import { KernelError } from '../errors.js';
import type { SyscallEntry } from './table.js';

export type HostFn = (...a: any[]) => unknown;
export type Impls = Record<string, Record<string, HostFn>>;

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

/** "ns.name" of each entry, made once per table (link runs for every process: a tiny job is ~40 µs in all) */
const tableKeys = new WeakMap<readonly SyscallEntry[], string[]>();
function keysOf(table: readonly SyscallEntry[]): string[] {
  let k = tableKeys.get(table);
  if (!k) {
    k = table.map((s) => `${s.ns}.${s.name}`);
    tableKeys.set(table, k);
  }
  return k;
}

/**
 * Build the import object from the table: every entry must have an implementation in `impls[ns][name]`; with
 * `used` ("ns.name" keys), only the entries the module imports are linked.
 * wasi_snapshot_preview1 calls that return an errno are wrapped (KernelError -> errno); others are linked as given.
 */
export function link(table: readonly SyscallEntry[], impls: Impls, used?: ReadonlySet<string>): WebAssembly.Imports {
  const out: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  const keys = keysOf(table);
  for (let i = 0; i < table.length; i++) {
    const s = table[i]!;
    // a module that imports only some calls gets only those (fewer wrappers to build and to instantiate)
    if (used && !used.has(keys[i]!)) continue;
    const f = impls[s.ns]?.[s.name];
    if (typeof f !== 'function') throw new Error(`link: no implementation for ${s.ns}.${s.name} (syscall ${s.id}); supply it in imports()`);
    const wrapped = s.ns === 'wasi_snapshot_preview1' && s.results.length === 1 ? errnoWrap(f, s.params.length) : f;
    (out[s.ns] ??= {})[s.name] = wrapped;
  }
  return out;
}
