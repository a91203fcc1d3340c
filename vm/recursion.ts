import binaryen from 'binaryen';
import { childSlots, renameLabels, type ChildSlot } from './walk.js';

/**
 * Self-recursion unrolled by one level: in a small function that calls itself, each direct call to itself is
 * replaced by a copy of the function's body, so one activation does the work of two levels of the recursion and
 * pays one budget check for both.
 *
 * A recursive function's check runs before its first recursive call on each path (insertPreCallChecks), so fib,
 * Ackermann or a tree walk pay a check per activation: ~1.25x on Ackermann alone, where the body is a handful of
 * instructions. Unrolled, fib's activation covers itself and its two children (one check for up to three calls of
 * the source), and half as many frames make a deep stack (fewer frames to unwind at a checkpoint). Fuel counts the
 * checks, so it stays exact: the same module counts the same checks at any slice, checkpoint or suspension.
 *
 * The copy of a call `f(a, b)` is `block $inl (result T) { local.set p'0 a; local.set p'1 b; body' }`, where body'
 * is a copy of f's original body whose locals (params and vars) are fresh locals of f, whose own labels are renamed,
 * and whose `return x` are `br $inl x`; its calls to f stay calls. Only functions with no loop are unrolled: each
 * copy then runs at most once per activation, so its fresh locals are still zero (as a new frame's would be) when
 * it starts. Also refused: exception handling (a `pop` must stay first in its catch), multi-value results, kinds
 * the walker does not know, and bodies of more than `maxExpressions` expressions.
 */
export function unrollSelfRecursion(m: binaryen.Module, fref: binaryen.FunctionRef, name: string, maxExpressions: number): number {
  const body = X.Function.getBody(fref);
  if (!body) return 0;
  const results = X.Function.getResults(fref);
  if (binaryen.expandType(results).length > 1) return 0;
  // the self-calls with the slot each sits in (the function's body itself: the root slot), in pre-order
  const sites: ChildSlot[] = [];
  let count = 0;
  const stack: ChildSlot[] = [{ child: body, set: (r) => X.Function.setBody(fref, r) }];
  while (stack.length) {
    const slot = stack.pop()!;
    const e = slot.child;
    if (++count > maxExpressions) return 0;
    const id = binaryen.getExpressionId(e);
    if (REFUSED.has(id)) return 0;
    if (id === binaryen.CallId && X.Call.getTarget(e) === name) sites.push(slot);
    const slots = childSlots(e);
    if (!slots) return 0;
    for (let i = slots.length - 1; i >= 0; i--) stack.push(slots[i]!);
  }
  if (!sites.length) return 0;
  const params = binaryen.expandType(X.Function.getParams(fref));
  const vars: number[] = [];
  for (let i = 0, n = X.Function.getNumVars(fref); i < n; i++) vars.push(X.Function.getVar(fref, i));
  const locals = [...params, ...vars];
  // every copy from the original body, before any call is replaced
  const copies = sites.map(() => m.copyExpression(body));
  // inner calls first (reversed pre-order): a call that is an operand of another is replaced before the outer call's
  // operands move into its copy's local.sets
  for (let k = sites.length - 1; k >= 0; k--) {
    const slot = sites[k]!;
    const call = slot.child;
    const label = `__gridvm_rec${k}`;
    const copy = copies[k]!;
    renameLabels(copy, `$r${k}`);
    const map = locals.map((t) => X._BinaryenFunctionAddVar(fref, t));
    const root = retarget(m, copy, map, label);
    const sets: number[] = [];
    for (let i = 0; i < params.length; i++) sets.push(m.local.set(map[i]!, X.Call.getOperandAt(call, i)));
    slot.set(m.block(label, [...sets, root], results));
  }
  return sites.length;
}

/**
 * In a copied body: local indices through `map`, and each `return x` turned into `br $label x`. Returns the root
 * (itself replaced when the body is a bare `return`).
 */
function retarget(m: binaryen.Module, root: number, map: number[], label: string): number {
  let out = root;
  const stack: ChildSlot[] = [{ child: root, set: (r) => { out = r; } }];
  while (stack.length) {
    const slot = stack.pop()!;
    const e = slot.child;
    const id = binaryen.getExpressionId(e);
    if (id === binaryen.ReturnId) {
      const v = X._BinaryenReturnGetValue(e);
      const br = m.br(label, undefined, v || undefined);
      slot.set(br);
      if (v) stack.push({ child: v, set: (r) => X.Break.setValue(br, r) });
      continue;
    }
    if (id === binaryen.LocalGetId) X._BinaryenLocalGetSetIndex(e, map[X._BinaryenLocalGetGetIndex(e)]!);
    else if (id === binaryen.LocalSetId) X._BinaryenLocalSetSetIndex(e, map[X._BinaryenLocalSetGetIndex(e)]!);
    for (const s of childSlots(e)!) stack.push(s);
  }
  return out;
}

const X = binaryen as unknown as {
  _BinaryenFunctionAddVar(f: number, type: number): number;
  _BinaryenLocalGetGetIndex(e: number): number;
  _BinaryenLocalGetSetIndex(e: number, i: number): void;
  _BinaryenLocalSetGetIndex(e: number): number;
  _BinaryenLocalSetSetIndex(e: number, i: number): void;
  _BinaryenReturnGetValue(e: number): number;
  Function: { getBody(f: number): number; setBody(f: number, body: number): void; getParams(f: number): number; getResults(f: number): number; getNumVars(f: number): number; getVar(f: number, i: number): number };
  Call: { getTarget(e: number): string; getOperandAt(e: number, i: number): number };
  Break: { setValue(e: number, v: number): void };
};

const B = binaryen as unknown as Record<string, number | undefined>;
/** loops (a copy could run twice in one activation), exception handling, tail calls (lowered before this runs) */
const REFUSED = new Set([binaryen.LoopId, binaryen.TryId, binaryen.PopId, binaryen.ThrowId, binaryen.RethrowId, B.TryTableId, B.ThrowRefId, B.ReturnCallId, B.ReturnCallIndirectId].filter((x): x is number => typeof x === 'number'));
