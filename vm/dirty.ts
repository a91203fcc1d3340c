import binaryen from 'binaryen';
import { childSlots, type ChildSlot } from './walk.js';
import { DIRTY_BASE_GLOBAL, DIRTY_SPILL } from './names.js';
import { InstrumentError } from './errors.js';

/**
 * Dirty-page tracking (an instrumentation option): after every store to linear memory the job marks the 64 KiB
 * page it wrote in a byte map, so a checkpoint copies and ships only the pages written since the previous one
 * instead of scanning all of memory. Wasm has no write protection to do this for free; this is the write-barrier
 * way (one shift, one add and a byte store per store).
 *
 * The map is one 64 KiB page (a byte for each of the 65536 possible pages) kept at the top of the job's memory, at
 * `__gridvm_dirty_base`. The job never sees it:
 * - `memory.size` answers one page less;
 * - `memory.grow` grows, moves the map to the new top and zeroes the page it leaves (a fresh page to the job);
 * - the host grows the memory by that page before a fresh start (Machine), and a snapshot keeps it (zeroed).
 * A job whose module declares a maximum therefore gets one page less than that maximum.
 *
 * What is marked: every store (plain, atomic, SIMD lane), atomic read-modify-writes and compare-exchanges, and the
 * whole range of memory.fill / memory.copy / memory.init. A store is marked after it happened, with no call in
 * between, so a safe point never falls between a store and its mark. Only the page of the first byte is marked: a
 * store that crosses into the next page (at most 16 bytes) is caught by the host, which compares the first 16 bytes
 * of the page after every dirty one. Writes by the kernel (fd_read, random_get, ...) are marked by the host.
 */

const i32 = binaryen.i32;
const X = binaryen as unknown as {
  _BinaryenFunctionAddVar(f: number, type: number): number;
  Function: { getBody(f: number): number; setBody(f: number, body: number): void };
  Store: { getBytes(e: number): number; getPtr(e: number): number; setPtr(e: number, p: number): void; getValue(e: number): number; setValue(e: number, v: number): void; getOffset(e: number): number };
  SIMDLoadStoreLane: { isStore(e: number): boolean; getPtr(e: number): number; setPtr(e: number, p: number): void; getVec(e: number): number; setVec(e: number, v: number): void; getOffset(e: number): number };
  AtomicRMW: { getPtr(e: number): number; setPtr(e: number, p: number): void; getValue(e: number): number; setValue(e: number, v: number): void; getOffset(e: number): number };
  AtomicCmpxchg: { getPtr(e: number): number; setPtr(e: number, p: number): void; getExpected(e: number): number; setExpected(e: number, v: number): void; getReplacement(e: number): number; setReplacement(e: number, v: number): void; getOffset(e: number): number };
  MemoryFill: { getDest(e: number): number; setDest(e: number, v: number): void; getValue(e: number): number; setValue(e: number, v: number): void; getSize(e: number): number; setSize(e: number, v: number): void };
  MemoryCopy: { getDest(e: number): number; setDest(e: number, v: number): void; getSource(e: number): number; setSource(e: number, v: number): void; getSize(e: number): number; setSize(e: number, v: number): void };
  MemoryInit: { getDest(e: number): number; setDest(e: number, v: number): void; getOffset(e: number): number; setOffset(e: number, v: number): void; getSize(e: number): number; setSize(e: number, v: number): void };
  MemoryGrow: { getDelta(e: number): number };
  LocalSet: { setValue(e: number, v: number): void; getIndex(e: number): number };
  LocalGet: { getIndex(e: number): number };
  Block: { getNumChildren(e: number): number; getChildAt(e: number, i: number): number };
};

export const DIRTY_GROW_FN = '__gridvm_dirty_grow';
export const DIRTY_MARK_FN = '__gridvm_dirty_mark';

export interface DirtyStats {
  /** stores that mark their page */
  stores: number;
  /** stores covered by the mark of an earlier store through the same pointer (no mark of their own) */
  shared: number;
  bulk: number;
}

/**
 * Add the map's global and helpers to `m` and instrument every function in `funcs` (the job's own functions, not
 * gridvm's helpers). Throws InstrumentError for an expression kind the walker cannot see into: a store it did not
 * see would be a checkpoint that silently misses bytes.
 */
export function addDirtyTracking(m: binaryen.Module, funcs: ReadonlyArray<{ ref: binaryen.FunctionRef; name: string }>, initialPages: number): DirtyStats {
  m.addGlobal(DIRTY_BASE_GLOBAL, i32, true, m.i32.const((initialPages * 65536) | 0));
  m.addGlobalExport(DIRTY_BASE_GLOBAL, DIRTY_BASE_GLOBAL);
  const base = () => m.global.get(DIRTY_BASE_GLOBAL, i32);
  // (d, n): mark the pages of [d, d+n); called after the bulk operation succeeded, so the range is inside memory
  m.addFunction(DIRTY_MARK_FN, binaryen.createType([i32, i32]), binaryen.none, [], m.if(
    m.local.get(1, i32),
    m.memory.fill(
      m.i32.add(base(), m.i32.shr_u(m.local.get(0, i32), m.i32.const(16))),
      m.i32.const(1),
      m.i32.add(m.i32.sub(
        m.i32.shr_u(m.i32.sub(m.i32.add(m.local.get(0, i32), m.local.get(1, i32)), m.i32.const(1)), m.i32.const(16)),
        m.i32.shr_u(m.local.get(0, i32), m.i32.const(16)),
      ), m.i32.const(1)),
    ),
  ));
  // (delta) -> the job's old page count or -1: grow, move the map to the new top page, zero the page it leaves
  m.addFunction(DIRTY_GROW_FN, i32, i32, [i32, i32], m.block(null, [
    m.local.set(1, m.memory.grow(m.local.get(0, i32))),
    m.if(m.i32.eq(m.local.get(1, i32), m.i32.const(-1)), m.return(m.i32.const(-1))),
    m.if(m.local.get(0, i32), m.block(null, [
      m.local.set(2, m.i32.mul(m.i32.sub(m.i32.add(m.local.get(1, i32), m.local.get(0, i32)), m.i32.const(1)), m.i32.const(65536))),
      m.memory.copy(m.local.get(2, i32), base(), m.i32.const(65536)),
      m.memory.fill(base(), m.i32.const(0), m.i32.const(65536)),
      m.global.set(DIRTY_BASE_GLOBAL, m.local.get(2, i32)),
    ])),
    m.i32.sub(m.local.get(1, i32), m.i32.const(1)),
  ], i32));

  const stats: DirtyStats = { stores: 0, shared: 0, bulk: 0 };
  for (const f of funcs) instrumentFunction(m, f.ref, f.name, base, stats);
  return stats;
}

interface Item {
  expr: number;
  /** stores nested in the value of a store use the next depth's scratch locals */
  depth: number;
  slot: ChildSlot;
}

function instrumentFunction(m: binaryen.Module, fref: binaryen.FunctionRef, name: string, base: () => number, stats: DirtyStats): void {
  const body = X.Function.getBody(fref);
  if (!body) return;
  const ptrLocals: number[] = [];
  const sizeLocals: number[] = [];
  const resultLocals = new Map<number, number>();
  const local = (pool: number[], depth: number) => (pool[depth] ??= X._BinaryenFunctionAddVar(fref, i32));
  const resultLocal = (t: number) => {
    let l = resultLocals.get(t);
    if (l === undefined) resultLocals.set(t, (l = X._BinaryenFunctionAddVar(fref, t)));
    return l;
  };
  // the map byte of the page of local p (+ offset); set only when not set yet: a load and a predictable branch
  // cost less than a store on every store (measured: malloc_churn 1.24x -> 1.08x)
  const markPage = (p: number, offset: number) => {
    const at = () => m.i32.add(base(), m.i32.shr_u(offset ? m.i32.add(m.local.get(p, i32), m.i32.const(offset | 0)) : m.local.get(p, i32), m.i32.const(16)));
    return m.if(m.i32.eqz(m.i32.load8_u(0, 1, at())), m.i32.store8(0, 1, at(), m.i32.const(1)));
  };
  /** a store whose mark can be that of its pointer's page (the spill covers the rest) */
  const nearOffset = (e: number) => (X.Store.getOffset(e) >>> 0) + X.Store.getBytes(e) <= DIRTY_SPILL;
  /** stores whose mark an earlier store in the same block already made (see shareMarks) */
  const covered = new Set<number>();
  const effects = new Map<number, Effects>();
  const slotOf = (get: () => number, set: (v: number) => void): ChildSlot => ({ child: get(), set });
  const stack: Item[] = [{ expr: body, depth: 0, slot: { child: body, set: (r) => X.Function.setBody(fref, r) } }];
  const push = (expr: number, depth: number, slot: ChildSlot) => {
    if (expr) stack.push({ expr, depth, slot });
  };
  while (stack.length) {
    const { expr, depth, slot } = stack.pop()!;
    const id = binaryen.getExpressionId(expr);
    switch (id) {
      case binaryen.MemorySizeId:
        slot.set(m.i32.sub(expr, m.i32.const(1)));
        continue;
      case binaryen.MemoryGrowId: {
        const delta = X.MemoryGrow.getDelta(expr);
        const call = m.call(DIRTY_GROW_FN, [delta], i32);
        slot.set(call);
        push(delta, depth, childSlots(call)![0]!);
        continue;
      }
      case binaryen.BlockId:
        shareMarks(expr, covered, effects);
        break;
      case binaryen.StoreId: {
        if (covered.has(expr)) {
          stats.shared++;
          break;
        }
        const p = local(ptrLocals, depth);
        const ptr = X.Store.getPtr(expr);
        const tee = m.local.tee(p, ptr, i32);
        X.Store.setPtr(expr, tee);
        slot.set(m.block(null, [expr, markPage(p, nearOffset(expr) ? 0 : X.Store.getOffset(expr))], binaryen.none));
        stats.stores++;
        push(ptr, depth, slotOf(() => ptr, (r) => X.LocalSet.setValue(tee, r)));
        push(X.Store.getValue(expr), depth + 1, slotOf(() => X.Store.getValue(expr), (r) => X.Store.setValue(expr, r)));
        continue;
      }
      case binaryen.SIMDLoadStoreLaneId: {
        if (!X.SIMDLoadStoreLane.isStore(expr)) break;
        const p = local(ptrLocals, depth);
        const ptr = X.SIMDLoadStoreLane.getPtr(expr);
        const tee = m.local.tee(p, ptr, i32);
        X.SIMDLoadStoreLane.setPtr(expr, tee);
        slot.set(m.block(null, [expr, markPage(p, X.SIMDLoadStoreLane.getOffset(expr))], binaryen.none));
        stats.stores++;
        push(ptr, depth, slotOf(() => ptr, (r) => X.LocalSet.setValue(tee, r)));
        push(X.SIMDLoadStoreLane.getVec(expr), depth + 1, slotOf(() => X.SIMDLoadStoreLane.getVec(expr), (r) => X.SIMDLoadStoreLane.setVec(expr, r)));
        continue;
      }
      case binaryen.AtomicRMWId:
      case binaryen.AtomicCmpxchgId: {
        const rmw = id === binaryen.AtomicRMWId;
        const A = rmw ? X.AtomicRMW : X.AtomicCmpxchg;
        const p = local(ptrLocals, depth);
        const ptr = A.getPtr(expr);
        const tee = m.local.tee(p, ptr, i32);
        A.setPtr(expr, tee);
        const t = binaryen.getExpressionType(expr);
        const r = resultLocal(t);
        slot.set(m.block(null, [m.local.set(r, expr), markPage(p, A.getOffset(expr)), m.local.get(r, t)], t));
        stats.stores++;
        push(ptr, depth, slotOf(() => ptr, (v) => X.LocalSet.setValue(tee, v)));
        if (rmw) push(X.AtomicRMW.getValue(expr), depth + 1, slotOf(() => X.AtomicRMW.getValue(expr), (v) => X.AtomicRMW.setValue(expr, v)));
        else {
          push(X.AtomicCmpxchg.getExpected(expr), depth + 1, slotOf(() => X.AtomicCmpxchg.getExpected(expr), (v) => X.AtomicCmpxchg.setExpected(expr, v)));
          push(X.AtomicCmpxchg.getReplacement(expr), depth + 1, slotOf(() => X.AtomicCmpxchg.getReplacement(expr), (v) => X.AtomicCmpxchg.setReplacement(expr, v)));
        }
        continue;
      }
      case binaryen.MemoryFillId:
      case binaryen.MemoryCopyId:
      case binaryen.MemoryInitId: {
        const B = id === binaryen.MemoryFillId ? X.MemoryFill : id === binaryen.MemoryCopyId ? X.MemoryCopy : X.MemoryInit;
        const p = local(ptrLocals, depth);
        const n = local(sizeLocals, depth);
        const dest = B.getDest(expr);
        const size = B.getSize(expr);
        const teeDest = m.local.tee(p, dest, i32);
        const teeSize = m.local.tee(n, size, i32);
        B.setDest(expr, teeDest);
        B.setSize(expr, teeSize);
        slot.set(m.block(null, [expr, m.call(DIRTY_MARK_FN, [m.local.get(p, i32), m.local.get(n, i32)], binaryen.none)], binaryen.none));
        stats.bulk++;
        push(dest, depth, slotOf(() => dest, (v) => X.LocalSet.setValue(teeDest, v)));
        push(size, depth + 1, slotOf(() => size, (v) => X.LocalSet.setValue(teeSize, v)));
        if (id === binaryen.MemoryFillId) push(X.MemoryFill.getValue(expr), depth + 1, slotOf(() => X.MemoryFill.getValue(expr), (v) => X.MemoryFill.setValue(expr, v)));
        else if (id === binaryen.MemoryCopyId) push(X.MemoryCopy.getSource(expr), depth + 1, slotOf(() => X.MemoryCopy.getSource(expr), (v) => X.MemoryCopy.setSource(expr, v)));
        else push(X.MemoryInit.getOffset(expr), depth + 1, slotOf(() => X.MemoryInit.getOffset(expr), (v) => X.MemoryInit.setOffset(expr, v)));
        continue;
      }
      default:
        break;
    }
    const slots = childSlots(expr);
    if (!slots) {
      throw new InstrumentError(`dirty-page tracking: function ${name} contains an expression of a kind gridvm cannot instrument (Binaryen id ${id}); run without dirty-page tracking`);
    }
    for (let i = slots.length - 1; i >= 0; i--) push(slots[i]!.child, depth, slots[i]!);
  }
}

interface Effects {
  /** may call (a safe point: the marks may be cleared by a capture there) */
  call: boolean;
  /** locals it sets */
  sets: ReadonlySet<number>;
}

const NO_SETS: ReadonlySet<number> = new Set();

/** What an expression may do that ends the sharing of marks: calls (memory.grow too) and local writes. Memoised. */
function effectsOf(root: number, memo: Map<number, Effects>): Effects {
  const known = memo.get(root);
  if (known) return known;
  const stack: Array<{ e: number; kids?: number[] }> = [{ e: root }];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    if (memo.has(top.e)) {
      stack.pop();
      continue;
    }
    if (!top.kids) {
      const slots = childSlots(top.e);
      if (!slots) {
        // a kind the walker cannot see into: assume the worst
        memo.set(top.e, { call: true, sets: NO_SETS });
        stack.pop();
        continue;
      }
      top.kids = slots.map((x) => x.child);
      for (const k of top.kids) if (!memo.has(k)) stack.push({ e: k });
      continue;
    }
    stack.pop();
    const id = binaryen.getExpressionId(top.e);
    let call = id === binaryen.CallId || id === binaryen.CallIndirectId || id === binaryen.CallRefId || id === binaryen.MemoryGrowId;
    let sets: Set<number> | undefined;
    if (id === binaryen.LocalSetId) (sets = new Set()).add(X.LocalSet.getIndex(top.e));
    for (const k of top.kids) {
      const f = memo.get(k)!;
      call ||= f.call;
      if (f.sets.size) for (const x of f.sets) (sets ??= new Set()).add(x);
    }
    memo.set(top.e, { call, sets: sets ?? NO_SETS });
  }
  return memo.get(root)!;
}

/**
 * Within one pass through a block's children, a store through `local.get $x` at a small offset needs no mark when
 * an earlier child already marked $x's page and nothing in between could have been a safe point (a call) or
 * changed $x. Adds such stores to `covered`. Marks are per page, so one mark covers both.
 */
function shareMarks(block: number, covered: Set<number>, memo: Map<number, Effects>): void {
  const n = X.Block.getNumChildren(block);
  const marked = new Set<number>();
  for (let i = 0; i < n; i++) {
    const c = X.Block.getChildAt(block, i);
    const id = binaryen.getExpressionId(c);
    if (id === binaryen.StoreId && (X.Store.getOffset(c) >>> 0) + X.Store.getBytes(c) <= DIRTY_SPILL) {
      const ptr = X.Store.getPtr(c);
      if (binaryen.getExpressionId(ptr) === binaryen.LocalGetId) {
        const x = X.LocalGet.getIndex(ptr);
        const v = effectsOf(X.Store.getValue(c), memo);
        if (v.call) marked.clear();
        // the address was read before the value ran: a mark of $x made before still covers it
        if (marked.has(x)) covered.add(c);
        for (const s of v.sets) marked.delete(s);
        if (!v.sets.has(x)) marked.add(x);
        continue;
      }
    }
    const f = effectsOf(c, memo);
    if (f.call) marked.clear();
    for (const s of f.sets) marked.delete(s);
  }
}
