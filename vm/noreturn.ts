import binaryen from 'binaryen';
import { callTarget, children } from './walk.js';

/**
 * Functions that never return: every path ends in `unreachable` or in a call to a function that never returns
 * (WASI `proc_exit`, and by induction `_Exit`, `exit`, `abort`, an AssemblyScript abort handler, Rust's panic
 * functions...). They matter because they sit on the error path of nearly every function (a bounds check calls
 * abort): if one of them can reach a yield, Asyncify instruments every caller. See instrument.ts for what is done
 * with them.
 *
 * The analysis is syntactic and conservative: a function with a `return` is never in the set, a block that some
 * branch targets falls through, a conditional branch falls through, and an expression kind the walker does not know
 * falls through.
 */

const b = binaryen as unknown as Record<string, number>;
const UNREACHABLE = b.UnreachableId!;
const CALL = b.CallId!;
const BLOCK = b.BlockId!;
const IF = b.IfId!;
const LOOP = b.LoopId!;
const BREAK = b.BreakId!;
const SWITCH = b.SwitchId!;
const RETURN = b.ReturnId!;

type Info = Record<string, unknown>;
const X = binaryen as unknown as {
  Break: { getName(e: number): string; getCondition(e: number): number };
  Block: { getName(e: number): string | null; getNumChildren(e: number): number; getChildAt(e: number, i: number): number };
  If: { getCondition(e: number): number; getIfTrue(e: number): number; getIfFalse(e: number): number };
  Loop: { getBody(e: number): number };
  _BinaryenCallIsReturn(e: number): number;
};

interface Fn {
  name: string;
  body: number;
}

/** Labels that some branch targets, and whether the body has a return (or the walk met something unknown). */
function scan(body: number): { targeted: Set<string>; returns: boolean } {
  const targeted = new Set<string>();
  let returns = false;
  const stack = [body];
  while (stack.length) {
    const e = stack.pop()!;
    const id = binaryen.getExpressionId(e);
    if (id === RETURN) returns = true;
    else if (id === BREAK) targeted.add(X.Break.getName(e));
    else if (id === SWITCH) {
      const i = binaryen.getExpressionInfo(e) as unknown as Info;
      for (const n of i.names as string[]) targeted.add(n);
      targeted.add(i.defaultName as string);
    } else if (id === CALL && X._BinaryenCallIsReturn(e)) returns = true;
    if (!children(e, stack)) returns = true; // unknown kind: give up on this function
  }
  return { targeted, returns };
}

/** Whether control may continue after `e` (conservative: true unless it surely does not). */
function mayFallThrough(e: number, targeted: Set<string>, never: Set<string>, depth = 0): boolean {
  if (depth > 2000) return true;
  const id = binaryen.getExpressionId(e);
  const ft = (c: number) => mayFallThrough(c, targeted, never, depth + 1);
  if (id === UNREACHABLE) return false;
  if (id === SWITCH) return false;
  const kids: number[] = [];
  if (!children(e, kids)) return true; // a kind the walker does not know
  if (id !== BREAK && id !== BLOCK && id !== IF && id !== LOOP && id !== CALL) return kids.every(ft);
  if (id === BREAK) {
    const c = X.Break.getCondition(e);
    return !!c && ft(c);
  }
  if (id === BLOCK) {
    const name = X.Block.getName(e);
    if (name && targeted.has(name)) return true;
    return kids.every(ft);
  }
  if (id === IF) {
    if (!ft(X.If.getCondition(e))) return false;
    const f = X.If.getIfFalse(e);
    if (!f) return true;
    return ft(X.If.getIfTrue(e)) || ft(f);
  }
  if (id === LOOP) return ft(X.Loop.getBody(e));
  // a call
  if (!kids.every(ft)) return false;
  return !never.has(callTarget(e));
}

/**
 * The defined functions that never return, given the imports that never return (their internal names). Returns a
 * set of internal names, imports included.
 */
export function noreturnFunctions(funcs: readonly Fn[], noreturnImports: Iterable<string>): Set<string> {
  const never = new Set(noreturnImports);
  const candidates = funcs
    .filter((f) => f.body)
    .map((f) => ({ f, ...scan(f.body) }))
    .filter((c) => !c.returns);
  for (let changed = true; changed;) {
    changed = false;
    for (const c of candidates) {
      if (never.has(c.f.name)) continue;
      if (!mayFallThrough(c.f.body, c.targeted, never)) {
        never.add(c.f.name);
        changed = true;
      }
    }
  }
  return never;
}
