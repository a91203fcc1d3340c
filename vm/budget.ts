import binaryen from 'binaryen';
import { callTarget, childSlots, type ChildSlot } from './walk.js';
import { BUDGET_GLOBAL, TICK_FLOOR_GLOBAL } from './names.js';
import { unrollLoop } from './loops.js';

/**
 * Budget checks with the budget held in a local (a register, once V8 compiles it), the way wasmtime keeps fuel in a
 * variable between calls: the function loads the budget global on entry, its loop checks count down the local, and
 * the local is written back before every call and return and re-read after every call (but calls to functions that
 * never touch the budget: no checks, no imports, no indirect calls, down their whole call tree). A check in a hot loop is
 * then `sub; compare; branch` on registers instead of a global read-modify-write plus a second global read (the tick
 * floor).
 *
 * The budget global is exact wherever the host can look at it: a call to `gridvm.yield`/`tick`, any import (exit,
 * a blocking grid call) and the function's return all see every unit counted so far. Fuel therefore stays exact and
 * deterministic; only a trap can leave the units counted since the function's last call or entry unreported.
 *
 * When the stack is captured (vm/unwind.ts or Asyncify) the extra locals are saved and restored like any other; on
 * a rewind the entry loads and write-backs are skipped and the read after each call picks up the budget the host
 * armed for the new slice.
 */

const i32 = binaryen.i32;
const CALL = binaryen.CallId;
const CALL_INDIRECT = binaryen.CallIndirectId;
const RETURN = binaryen.ReturnId;
const X = binaryen as unknown as {
  _BinaryenFunctionAddVar(f: number, type: number): number;
  Loop: { getBody(e: number): number; setBody(e: number, body: number): void };
  Function: { getBody(f: number): number; setBody(f: number, body: number): void; getResults(f: number): number };
  CallIndirect: { getResults(e: number): number; getTarget(e: number): number; setTarget(e: number, t: number): void; isReturn(e: number): boolean; setReturn(e: number, r: boolean): void; setType(e: number, t: number): void };
  Call: { getTarget(e: number): string; getNumOperands(e: number): number; getOperandAt(e: number, i: number): number; setOperandAt(e: number, i: number, o: number): void; isReturn(e: number): boolean; setReturn(e: number, r: boolean): void; setType(e: number, t: number): void };
  Return: { getValue(e: number): number; setValue(e: number, v: number): void };
};
/** Kinds that rule a function out: exception handling (a `pop` must stay first in its catch), typed function refs. */
export const REFUSED: ReadonlySet<number> = new Set([binaryen.TryId, binaryen.PopId, binaryen.CallRefId, binaryen.ThrowId, binaryen.RethrowId,
  (binaryen as unknown as Record<string, number>).TryTableId, (binaryen as unknown as Record<string, number>).ThrowRefId].filter((x) => typeof x === 'number'));
/** value types a scratch local can hold (defaultable) */
const SCRATCH_TYPES = new Set([binaryen.i32, binaryen.i64, binaryen.f32, binaryen.f64, binaryen.v128, binaryen.funcref, binaryen.externref]);

/** latch-form loops of up to this many expressions are unrolled by two (vm/loops.ts) */
const MAX_UNROLLED_LOOP = 120;

export interface CachedLoopCheck {
  loop: number;
  /** the import the check calls when the budget runs out */
  target: string;
  /** compare against the tick floor (a ticking check) instead of 0 */
  tick: boolean;
}

interface Node {
  expr: number;
  slot: ChildSlot;
}

/** Every expression of a body in post-order (children first), each with the slot it sits in; undefined if refused. */
function postOrder(body: number, bodySlot: ChildSlot, refused: ReadonlySet<number> = REFUSED): Node[] | undefined {
  const out: Node[] = [];
  const stack: Array<{ node: Node; done: boolean }> = [{ node: { expr: body, slot: bodySlot }, done: false }];
  while (stack.length) {
    const top = stack.pop()!;
    if (top.done) {
      out.push(top.node);
      continue;
    }
    const id = binaryen.getExpressionId(top.node.expr);
    if (refused.has(id)) return undefined;
    const slots = childSlots(top.node.expr);
    if (!slots) return undefined;
    stack.push({ node: top.node, done: true });
    for (let i = slots.length - 1; i >= 0; i--) stack.push({ node: { expr: slots[i]!.child, slot: slots[i]! }, done: false });
  }
  return out;
}

/**
 * Whether a function can hold its budget in a local: every expression kind known to the walker, no exception
 * handling, no typed function references, a single (or no) result, and scratch-able value types at every call.
 */
export function canCacheBudget(fref: binaryen.FunctionRef): boolean {
  const results = X.Function.getResults(fref);
  if (results !== binaryen.none && !SCRATCH_TYPES.has(results)) return false;
  const body = X.Function.getBody(fref);
  if (!body) return false;
  const nodes = postOrder(body, { child: body, set() {} });
  if (!nodes) return false;
  for (const { expr } of nodes) {
    const id = binaryen.getExpressionId(expr);
    if (id !== CALL && id !== CALL_INDIRECT && id !== RETURN) continue;
    const t = binaryen.getExpressionType(expr);
    if (t !== binaryen.none && t !== binaryen.unreachable && !SCRATCH_TYPES.has(t)) return false;
    const last = lastEvaluated(expr);
    if (last) {
      const lt = binaryen.getExpressionType(last.child);
      if (lt !== binaryen.unreachable && !SCRATCH_TYPES.has(lt)) return false;
    }
  }
  return true;
}

/** the child of a call or return evaluated last (right before control leaves the function), with its slot */
function lastEvaluated(expr: number): ChildSlot | undefined {
  const id = binaryen.getExpressionId(expr);
  if (id === CALL_INDIRECT) {
    // operands first, then the table index
    const t = X.CallIndirect.getTarget(expr);
    return { child: t, set: (r) => X.CallIndirect.setTarget(expr, r) };
  }
  if (id === CALL) {
    const n = X.Call.getNumOperands(expr);
    if (!n) return undefined;
    return { child: X.Call.getOperandAt(expr, n - 1), set: (r) => X.Call.setOperandAt(expr, n - 1, r) };
  }
  if (id === RETURN) {
    const v = X.Return.getValue(expr);
    return v ? { child: v, set: (r) => X.Return.setValue(expr, r) } : undefined;
  }
  return undefined;
}

/**
 * Turn every tail call of a function (`return_call f(args)`) into `return (call f(args))`: Binaryen's Asyncify
 * refuses tail calls ("not yet supported"). The job computes the same; only a deep chain of tail calls now uses
 * stack (and may overflow it, reported as a trap). Returns false if the function has kinds the walker cannot rewrite.
 */
export function lowerTailCalls(m: binaryen.Module, fref: binaryen.FunctionRef): boolean {
  const body = X.Function.getBody(fref);
  const nodes = postOrder(body, { child: body, set: (r) => X.Function.setBody(fref, r) }, new Set());
  if (!nodes) return false;
  for (const { expr, slot } of nodes) {
    const id = binaryen.getExpressionId(expr);
    if (id === CALL && X.Call.isReturn(expr)) X.Call.setReturn(expr, false);
    else if (id === CALL_INDIRECT && X.CallIndirect.isReturn(expr)) X.CallIndirect.setReturn(expr, false);
    else continue;
    // the call now returns what its callee returns (finalize does not recompute that)
    const t = id === CALL ? binaryen.getFunctionInfo(m.getFunction(X.Call.getTarget(expr))).results : X.CallIndirect.getResults(expr);
    (id === CALL ? X.Call : X.CallIndirect).setType(expr, t);
    slot.set(t === binaryen.none ? m.block(null, [expr, m.return()], binaryen.unreachable) : m.return(expr));
  }
  return true;
}

/**
 * Insert a function's budget checks with its budget cached in a local (see the file comment). `loops` are the loop
 * checks; `entry`, if set, is the entry check (recursive functions): the import it calls, and whether it ticks. Call canCacheBudget first.
 */
export function insertCachedChecks(m: binaryen.Module, fref: binaryen.FunctionRef, loops: CachedLoopCheck[], entry: { target: string; tick: boolean } | undefined, budgetFree: ReadonlySet<string> = new Set(), unroll: boolean | 'tiny' = true): { unrolled: number } {
  const b = X._BinaryenFunctionAddVar(fref, i32);
  const needFloor = loops.some((l) => l.tick) || !!entry?.tick;
  const f = needFloor ? X._BinaryenFunctionAddVar(fref, i32) : -1;
  const scratch = new Map<number, number>();
  const tmp = (t: number): number => {
    let idx = scratch.get(t);
    if (idx === undefined) {
      idx = X._BinaryenFunctionAddVar(fref, t);
      scratch.set(t, idx);
    }
    return idx;
  };
  const writeBack = () => m.global.set(BUDGET_GLOBAL, m.local.get(b, i32));
  const reload = (): number[] => [
    m.local.set(b, m.global.get(BUDGET_GLOBAL, i32)),
    ...(needFloor ? [m.local.set(f, m.global.get(TICK_FLOOR_GLOBAL, i32))] : []),
  ];
  const check = (target: string, tick: boolean) =>
    m.block(null, [
      m.local.set(b, m.i32.sub(m.local.get(b, i32), m.i32.const(1))),
      m.if(m.i32.lt_s(m.local.get(b, i32), tick ? m.local.get(f, i32) : m.i32.const(0)), m.call(target, [], binaryen.none)),
    ], binaryen.none);

  // A check that may unwind (`gridvm.yield`) does not call from inside its loop: it leaves the loop (`br_if` to a
  // block around it), calls the import after that block, then goes back to the loop's header (see callOutside). The
  // loop then holds no call that can unwind, so Asyncify guards it as one piece instead of instrumenting every
  // iteration. A ticking check (`gridvm.tick` never unwinds) calls in place, the write-back and reload around the
  // call in a branch V8 keeps out of the loop's hot path: measured in separate processes, nbody ran 1.12x with it
  // against 1.21x with the call outside (the extra loop level around every ticking loop cost more than it saved).
  // Small loops are unrolled by two first (vm/loops.ts): one check per two iterations.
  const checkedLoops = new Map<number, { exit: string; retry: string; done: string; target: string }>();
  let unrolled = 0;
  for (const [li, l] of loops.entries()) {
    const n = checkedLoops.size;
    if (unroll && unrollLoop(m, l.loop, `__gridvm_u${li}`, MAX_UNROLLED_LOOP, unroll === 'tiny')) unrolled++;
    const body = X.Loop.getBody(l.loop);
    if (l.tick) {
      X.Loop.setBody(l.loop, m.block(null, [check(l.target, true), body], binaryen.getExpressionType(body)));
      continue;
    }
    const labels = { exit: `__gridvm_y${n}`, retry: `__gridvm_r${n}`, done: `__gridvm_d${n}`, target: l.target };
    checkedLoops.set(l.loop, labels);
    X.Loop.setBody(l.loop, m.block(null, [
      m.local.set(b, m.i32.sub(m.local.get(b, i32), m.i32.const(1))),
      m.br(labels.exit, m.i32.lt_s(m.local.get(b, i32), m.i32.const(0))),
      body,
    ], binaryen.getExpressionType(body)));
  }
  /** block $done { loop $retry { block $exit { (the loop; br $done) } write-back; call the import; reload; b += 1; br $retry } } */
  const callOutside = (loop: number, l: { exit: string; retry: string; done: string; target: string }): number => {
    const t = binaryen.getExpressionType(loop);
    const leave = t === binaryen.unreachable ? loop : t === binaryen.none ? m.block(null, [loop, m.br(l.done)], binaryen.unreachable) : m.br(l.done, 0, loop);
    const retry = m.loop(l.retry, m.block(null, [
      m.block(l.exit, [leave], binaryen.none),
      writeBack(),
      m.call(l.target, [], binaryen.none),
      ...reload(),
      // the header counts this iteration again: give its unit back, so fuel is what the check in the loop gave
      m.local.set(b, m.i32.add(m.local.get(b, i32), m.i32.const(1))),
      m.br(l.retry),
    ], binaryen.unreachable));
    return m.block(l.done, [retry], t === binaryen.unreachable ? binaryen.auto : t);
  };
  const original = X.Function.getBody(fref);
  const start = m.block(null, [...reload(), ...(entry ? [check(entry.target, entry.tick)] : []), original], binaryen.getExpressionType(original));
  X.Function.setBody(fref, start);

  const nodes = postOrder(start, { child: start, set: (r) => X.Function.setBody(fref, r) })!;
  // Put `value` through a scratch local so the write-back runs after it is computed, right before control leaves.
  const thenWriteBack = (slot: ChildSlot): void => {
    const t = binaryen.getExpressionType(slot.child);
    if (t === binaryen.unreachable) return; // control never gets past it
    if (t === binaryen.none) {
      slot.set(m.block(null, [slot.child, writeBack()], binaryen.none));
      return;
    }
    const s = tmp(t);
    slot.set(m.block(null, [m.local.set(s, slot.child), writeBack(), m.local.get(s, t)], t));
  };
  for (const { expr, slot } of nodes) {
    const id = binaryen.getExpressionId(expr);
    const checked = checkedLoops.get(expr);
    if (checked) {
      slot.set(callOutside(expr, checked));
      continue;
    }
    if (id === RETURN) {
      const last = lastEvaluated(expr);
      if (last) thenWriteBack(last);
      else slot.set(m.block(null, [writeBack(), expr], binaryen.unreachable));
      continue;
    }
    if (id !== CALL && id !== CALL_INDIRECT) continue;
    const isReturn = id === CALL ? X.Call.isReturn(expr) : X.CallIndirect.isReturn(expr);
    // a callee that never reads or writes the budget (nor calls what does): the global stays what the local says
    if (id === CALL && !isReturn && budgetFree.has(callTarget(expr))) continue;
    const t = binaryen.getExpressionType(expr);
    const last = lastEvaluated(expr);
    if (last && binaryen.getExpressionType(last.child) === binaryen.unreachable) continue; // never called
    if (last) thenWriteBack(last);
    if (isReturn) {
      if (!last) slot.set(m.block(null, [writeBack(), expr], binaryen.unreachable));
      continue;
    }
    const pre = last ? [] : [writeBack()];
    if (t === binaryen.none || t === binaryen.unreachable) {
      slot.set(m.block(null, [...pre, expr, ...reload()], t === binaryen.none ? binaryen.none : binaryen.unreachable));
    } else {
      const s = tmp(t);
      slot.set(m.block(null, [...pre, m.local.set(s, expr), ...reload(), m.local.get(s, t)], t));
    }
  }

  // the fall-through exit
  const body = X.Function.getBody(fref);
  const results = X.Function.getResults(fref);
  if (results === binaryen.none) {
    X.Function.setBody(fref, m.block(null, [body, writeBack()], binaryen.none));
  } else if (binaryen.getExpressionType(body) !== binaryen.unreachable) {
    const s = tmp(results);
    X.Function.setBody(fref, m.block(null, [m.local.set(s, body), writeBack(), m.local.get(s, results)], results));
  }
  return { unrolled };
}

/**
 * A recursive function's budget check before its recursive calls instead of at its entry: every path reaching a
 * call that may recurse (`recurses`: a call to a function on a call-graph cycle, or an indirect call) passes a check
 * first in the same activation, so every turn of a cycle still counts and can yield, while activations that make no
 * such call (the leaves of a recursion: half of fib's calls) pay nothing. A check already passed on every path
 * covers the calls after it (`if (n < 2) return n; return fib(n-1) + fib(n-2)` gets one check, before the first
 * call). Returns the number of checks inserted, or undefined (nothing changed) for a body with kinds it does not
 * follow (exception handling, unknown kinds): the caller then checks at the entry.
 */
export function insertPreCallChecks(fref: binaryen.FunctionRef, recurses: (call: number) => boolean, makeCheck: () => number, m: binaryen.Module): number | undefined {
  const body = X.Function.getBody(fref);
  if (!body || !postOrder(body, { child: body, set() {} })) return undefined;
  /** per label: loop (branches go back to its head) or block (the AND of the states branching to its end) */
  const labels = new Map<string, { loop: boolean; all: boolean }>();
  const wraps: Array<{ slot: ChildSlot; expr: number }> = [];
  const info = (e: number) => binaryen.getExpressionInfo(e) as unknown as Record<string, unknown>;
  const branch = (name: string, s: boolean) => {
    const l = labels.get(name);
    if (l && !l.loop) l.all &&= s;
  };
  const withLabel = <T>(name: string | null | undefined, loop: boolean, f: () => T): { r: T; all: boolean } => {
    if (!name) return { r: f(), all: true };
    const saved = labels.get(name);
    const l = { loop, all: true };
    labels.set(name, l);
    try {
      return { r: f(), all: l.all };
    } finally {
      if (saved) labels.set(name, saved);
      else labels.delete(name);
    }
  };
  /** state after `e` given `s` before it: true = a check was passed on every path (or control cannot get here) */
  const walk = (slot: ChildSlot, s: boolean): boolean => {
    const e = slot.child;
    const id = binaryen.getExpressionId(e);
    const slots = childSlots(e)!;
    const child = (name: string) => slots.find((x) => x.child === info(e)[name]);
    if (id === binaryen.BlockId) {
      const { r, all } = withLabel(info(e).name as string | null, false, () => slots.reduce((st, c) => walk(c, st), s));
      return r && all;
    }
    if (id === binaryen.LoopId) return withLabel(info(e).name as string | null, true, () => walk(slots[0]!, s)).r;
    if (id === binaryen.IfId) {
      const c = walk(child('condition')!, s);
      const t = walk(child('ifTrue')!, c);
      const f = info(e).ifFalse ? walk(child('ifFalse')!, c) : c;
      return t && f;
    }
    if (id === binaryen.BreakId) {
      let st = s;
      const v = child('value');
      if (v) st = walk(v, st);
      const cond = child('condition');
      if (cond) st = walk(cond, st);
      branch(info(e).name as string, st);
      return cond ? st : true;
    }
    if (id === binaryen.SwitchId) {
      let st = s;
      const v = child('value');
      if (v) st = walk(v, st);
      st = walk(child('condition')!, st);
      for (const n of [...(info(e).names as string[]), info(e).defaultName as string]) branch(n, st);
      return true;
    }
    if (id === RETURN) {
      const v = child('value');
      if (v) walk(v, s);
      return true;
    }
    if (id === binaryen.UnreachableId) return true;
    let st = s;
    if (id === CALL_INDIRECT) {
      // operands first, then the table index
      const target = X.CallIndirect.getTarget(e);
      for (const c of slots) if (c.child !== target) st = walk(c, st);
      st = walk(slots.find((c) => c.child === target)!, st);
    } else {
      for (const c of slots) st = walk(c, st);
    }
    if ((id === CALL || id === CALL_INDIRECT) && !st && recurses(e)) {
      wraps.push({ slot, expr: e });
      return true;
    }
    return st;
  };
  walk({ child: body, set: (r) => X.Function.setBody(fref, r) }, false);
  for (const { slot, expr } of wraps) slot.set(m.block(null, [makeCheck(), expr], binaryen.getExpressionType(expr)));
  return wraps.length;
}
