import binaryen from 'binaryen';
import { callTarget as targetOf, children, renameLabels } from './walk.js';
import { REFUSED } from './budget.js';

/**
 * gridvm's own stack capture ("unwind"), in place of Binaryen's Asyncify pass for the modules it can handle.
 *
 * Asyncify makes one version of each function that may suspend, and that version pays for the rewind in every
 * call: each statement is guarded by a check of the global state (is this a rewind? which call are we going back
 * to?) so the function can jump back to the call it was suspended in. On deep recursion of small functions that
 * costs ~1.7x on its own (measured on fib: budget check only 1.08x, with Asyncify 1.95x).
 *
 * Here each such function F gets two versions, both from the same flattened body (Binaryen's Flat IR: every value
 * that lives across a call is in a local), so their frames have the same layout:
 * - F itself, the fast version: the original code, with each call that may unwind (a "site") inside a `try` whose
 *   catch notes the site's number and branches to the saves after the body (push the frame: the locals live after
 *   the site, or after any site in a large module's function with many, and its number; throw on), a call to a suspending import
 *   followed by `if (state)` to the same, and at
 *   its entry (address-taken functions only) `if (state == rewinding) return F_resume(...)`. A call that does not
 *   unwind costs nothing.
 * - F_resume, run only when a captured stack is rewound: it pops its frame (locals and site number), then runs its
 *   body with every statement guarded by a local flag until it reaches the site, calls it (the callee rewinds in
 *   turn), clears the flag and goes on to the end, still able to unwind again. Only the frames that were on the
 *   stack at the checkpoint run this slower version, once: a loop holding a site continues, from its next turn, in
 *   a clean copy of itself (the fast version's code for it), so a long-running loop pays no guards after a resume.
 *
 * The host sees exactly Asyncify's interface: the exports `asyncify_start_unwind(p)`, `asyncify_stop_unwind()`,
 * `asyncify_start_rewind(p)`, `asyncify_stop_rewind()`, `asyncify_get_state()`, a data area at `p` whose first two
 * words are the current and end pointers of the frame stack, frames pushed on unwind (innermost first) and popped on
 * rewind, and the suspending import called again at the end of a rewind. vm/machine.ts works with either.
 */

export const STATE_GLOBAL = '__asyncify_state';
export const DATA_GLOBAL = '__asyncify_data';
/**
 * The exception an unwind travels up the job's own functions with (from the first frame to see the state set, to
 * the entry's wrapper): a call that does not unwind costs nothing, where a check of the state after every call cost
 * ~14% on recursion of small functions.
 */
const TAG = '__gridvm_unwinding';
/** the import that widens the unwind window (gridvm.unwind_window) */
const WINDOW_FN = '__gridvm_unwind_window';
/** the label of the fast version's body: a site that unwinds branches out of it to the saves */
const SAVE_LABEL = '__gridvm_save';
/** in modules flattened by native wasm-opt, functions with more sites than this give them all one frame layout and one save (see addUnwind) */
const SHARED_FRAME_MIN_SITES = 8;

/** the module cannot be handled here (Binaryen's Asyncify is used instead); nothing observable was changed */
/**
 * The passes that prepare a function for the unwind: Binaryen's Flat IR (every value that lives across a call is in
 * a local), then fewer locals, keeping the code flat (as Asyncify runs them). Without the latter the optimiser
 * cannot recover the code once the unwind's try blocks and rewind guards are in: measured on CRuby, a module with
 * flatten alone ran 2-4x slower than the original after wasm-opt -O1 (and V8 ran out of memory compiling it).
 */
export const UNWIND_PREPARE: readonly string[] = ['flatten', 'simplify-locals-nonesting', 'reorder-locals', 'coalesce-locals', 'simplify-locals-nonesting', 'reorder-locals'];
export class UnwindUnsupported extends Error {}

export interface UnwindStats {
  /** functions with a fast and a resume version */
  functions: number;
  /** calls after which the fast versions check for an unwind */
  sites: number;
  /** loops of resume versions that go on in a clean copy (no rewind guards) once the rewind is over */
  cleanLoops: number;
  /** functions whose sites share one frame layout and one save (more than SHARED_FRAME_MIN_SITES sites; large modules only) */
  sharedFrames: number;
}

const i32 = binaryen.i32;
const BLOCK = binaryen.BlockId;
const IF = binaryen.IfId;
const LOOP = binaryen.LoopId;
const CALL = binaryen.CallId;
const CALL_INDIRECT = binaryen.CallIndirectId;
const LOCAL_SET = binaryen.LocalSetId;

const X = binaryen as unknown as {
  _BinaryenFunctionAddVar(f: number, type: number): number;
  _BinaryenExpressionFinalize(e: number): void;
  Function: { getBody(f: number): number; setBody(f: number, body: number): void; getParams(f: number): number; getResults(f: number): number; getNumVars(f: number): number; getVar(f: number, i: number): number };
  Block: { getNumChildren(e: number): number; getChildAt(e: number, i: number): number; setChildAt(e: number, i: number, c: number): void };
  If: { getCondition(e: number): number; setCondition(e: number, c: number): void; getIfTrue(e: number): number; setIfTrue(e: number, c: number): void; getIfFalse(e: number): number; setIfFalse(e: number, c: number): void };
  Loop: { getName(e: number): string | null; getBody(e: number): number; setBody(e: number, c: number): void };
  LocalSet: { getValue(e: number): number; setValue(e: number, v: number): void; isTee(e: number): boolean };
  RefFunc: { getFunc(e: number): string };
  Call: { getTarget(e: number): string; getNumOperands(e: number): number; getOperandAt(e: number, i: number): number };
};
/**
 * binaryen.js's C API, for the walks over every expression of large modules: names come back as pointers to
 * Binaryen's interned strings (one pointer per distinct name), compared and used as keys without decoding.
 */
const C = binaryen as unknown as Record<string, (e: number, i?: number) => number>;
const blockName = C._BinaryenBlockGetName!;
const loopName = C._BinaryenLoopGetName!;
const loopBody = C._BinaryenLoopGetBody!;
const blockCount = C._BinaryenBlockGetNumChildren!;
const blockChild = C._BinaryenBlockGetChildAt!;
const ifCondition = C._BinaryenIfGetCondition!;
const ifTrue = C._BinaryenIfGetIfTrue!;
const ifFalse = C._BinaryenIfGetIfFalse!;
const breakName = C._BinaryenBreakGetName!;
const breakCondition = C._BinaryenBreakGetCondition!;
const breakValue = C._BinaryenBreakGetValue!;
const switchNames = C._BinaryenSwitchGetNumNames!;
const switchNameAt = C._BinaryenSwitchGetNameAt!;
const switchDefault = C._BinaryenSwitchGetDefaultName!;
const switchCondition = C._BinaryenSwitchGetCondition!;
const switchValue = C._BinaryenSwitchGetValue!;
const returnValue = C._BinaryenReturnGetValue!;
const setIndex = C._BinaryenLocalSetGetIndex!;
const setValue = C._BinaryenLocalSetGetValue!;
const getIndex = C._BinaryenLocalGetGetIndex!;

/** bytes a saved local of this type takes in a frame */
const SIZE = new Map<number, number>([[binaryen.i32, 4], [binaryen.i64, 8], [binaryen.f32, 4], [binaryen.f64, 8], [binaryen.v128, 16]]);

interface Fn {
  ref: binaryen.FunctionRef;
  name: string;
  calls: Set<string>;
  indirect: boolean;
}

/**
 * Add gridvm's unwind to module `m`: every defined function that may reach one of the `suspending` imports (by
 * internal name) through direct calls, or that makes an indirect call, gets a fast and a resume version; `cold`
 * functions (they never return and unwinding is off inside them) are left out, as Asyncify's removelist would.
 * Throws UnwindUnsupported, before changing what the module computes, for what it does not handle: exception
 * handling, typed function references, multi-value or reference-typed locals, results and call sites, expression
 * kinds the walker does not know. `prepared`: the module's functions have been through UNWIND_PREPARE already
 * (native wasm-opt runs them on the whole module, on both cores). `cleanLoops`: the outermost loops of resume
 * versions that hold sites get clean copies (off by default for prepared modules, the large ones: the copies add up
 * to the resume versions' size, where yosys already fills most of binaryen.js's 4 GiB).
 */
export function addUnwind(m: binaryen.Module, suspending: ReadonlySet<string>, cold: ReadonlySet<string>, progress: (fraction: number) => void = () => {}, prepared = false, cleanLoops = !prepared): UnwindStats {
  // ---- the call graph (after the budget checks: they call the suspending yield)
  const fns: Fn[] = [];
  const refFuncs = new Set<string>();
  const n = m.getNumFunctions();
  for (let i = 0; i < n; i++) {
    const ref = m.getFunctionByIndex(i);
    const info = binaryen.getFunctionInfo(ref);
    if (info.module) continue;
    const calls = new Set<string>();
    let indirect = false;
    const stack = [info.body];
    while (stack.length) {
      const e = stack.pop()!;
      const id = binaryen.getExpressionId(e);
      if (REFUSED.has(id)) throw new UnwindUnsupported(`function ${info.name} uses exception handling or typed function references`);
      if (id === CALL) calls.add(targetOf(e));
      else if (id === CALL_INDIRECT) indirect = true;
      else if (id === binaryen.RefFuncId) refFuncs.add(X.RefFunc.getFunc(e));
      if (!children(e, stack)) throw new UnwindUnsupported(`function ${info.name} has an expression kind gridvm's walker does not know (${id})`);
    }
    fns.push({ ref, name: info.name, calls, indirect });
  }
  // functions an indirect call may enter while rewinding: they keep the check at their entry (the host enters
  // exported functions through wrappers, below)
  const entered = new Set<string>(refFuncs);
  for (let i = 0; i < m.getNumElementSegments(); i++) for (const n of binaryen.getElementSegmentInfo(m.getElementSegmentByIndex(i)).data) entered.add(n);
  for (let i = 0; i < m.getNumGlobals(); i++) {
    const stack = [binaryen.getGlobalInfo(m.getGlobalByIndex(i)).init];
    while (stack.length) {
      const e = stack.pop()!;
      if (!e) continue;
      if (binaryen.getExpressionId(e) === binaryen.RefFuncId) entered.add(X.RefFunc.getFunc(e));
      children(e, stack);
    }
  }
  // A suspending import in the table would be reached by an indirect call, which the fast versions do not check
  // after (they catch the exception a job function throws; an import returns with the state set instead).
  for (const n of suspending) if (entered.has(n)) throw new UnwindUnsupported(`suspending import ${n} is address-taken`);
  const callers = new Map<string, string[]>();
  for (const f of fns) for (const c of f.calls) (callers.get(c) ?? callers.set(c, []).get(c)!).push(f.name);
  const unwinds = new Set<string>();
  const work: string[] = [];
  const mark = (name: string) => {
    if (unwinds.has(name) || cold.has(name)) return;
    unwinds.add(name);
    work.push(name);
  };
  for (const f of fns) if (f.indirect || [...f.calls].some((c) => suspending.has(c))) mark(f.name);
  while (work.length) for (const c of callers.get(work.pop()!) ?? []) mark(c);
  const chosen = fns.filter((f) => unwinds.has(f.name));

  // ---- what the frames can hold
  for (const f of chosen) {
    const results = X.Function.getResults(f.ref);
    if (results !== binaryen.none && !SIZE.has(results)) throw new UnwindUnsupported(`function ${f.name} returns a type gridvm's unwind cannot produce`);
  }
  const isSiteCall = (e: number): boolean => {
    const id = binaryen.getExpressionId(e);
    if (binaryen.getExpressionType(e) === binaryen.unreachable) return false; // an operand never returns: never called
    if (id === CALL_INDIRECT) return true;
    if (id !== CALL) return false;
    const t = targetOf(e);
    return suspending.has(t) || unwinds.has(t);
  };
  /** the site call of a statement: the call itself, or the value of a local.set */
  const siteOf = (e: number): number | undefined => {
    if (isSiteCall(e)) return e;
    if (binaryen.getExpressionId(e) === LOCAL_SET && !X.LocalSet.isTee(e)) {
      const v = X.LocalSet.getValue(e);
      if (isSiteCall(v)) return v;
    }
    return undefined;
  };
  /** statements that contain sites (control structures), and the number of sites of a function */
  const scan = (fname: string, body: number): { holders: Set<number>; sites: number; order: number[] } => {
    const holders = new Set<number>();
    const order: number[] = [];
    let sites = 0;
    const visit = (e: number): boolean => {
      const id = binaryen.getExpressionId(e);
      let has = false;
      if (id === BLOCK) {
        for (let i = 0, c = X.Block.getNumChildren(e); i < c; i++) has = visit(X.Block.getChildAt(e, i)) || has;
      } else if (id === LOOP) has = visit(X.Loop.getBody(e));
      else if (id === IF) {
        has = visit(X.If.getIfTrue(e));
        const f = X.If.getIfFalse(e);
        if (f) has = visit(f) || has;
        if (siteDeep(X.If.getCondition(e))) throw new UnwindUnsupported(`function ${fname}: a call in a condition after flattening`);
      } else if (siteOf(e) !== undefined) {
        sites++;
        order.push(e);
        return true;
      } else if (siteDeep(e)) throw new UnwindUnsupported(`function ${fname}: a call nested in an expression after flattening`);
      if (has) holders.add(e);
      return has;
    };
    visit(body);
    return { holders, sites, order };
  };
  const siteDeep = (e: number): boolean => {
    const stack = [e];
    while (stack.length) {
      const x = stack.pop()!;
      if (isSiteCall(x)) return true;
      children(x, stack);
    }
    return false;
  };

  // ---- flatten, then check what was made (flattening alone keeps what the module computes)
  // then fewer locals (every frame saves all of them): passes that keep the code flat, as Asyncify runs them
  chosen.forEach((f, i) => {
    if (!prepared) m.runPassesOnFunction(f.ref, [...UNWIND_PREPARE]);
    if (i % 256 === 0) progress((0.4 * i) / chosen.length);
  });
  const plans = chosen.map((f) => {
    const params = binaryen.expandType(X.Function.getParams(f.ref));
    const vars: number[] = [];
    for (let i = 0, c = X.Function.getNumVars(f.ref); i < c; i++) vars.push(X.Function.getVar(f.ref, i));
    for (const t of [...params, ...vars]) if (!SIZE.has(t)) throw new UnwindUnsupported(`function ${f.name} has a local of a type gridvm's unwind cannot save`);
    const body = X.Function.getBody(f.ref);
    return { f, params, vars, ...scan(f.name, body) };
  });

  // ---- state, data, and the controls the host calls
  m.addGlobal(STATE_GLOBAL, i32, true, m.i32.const(0));
  m.addGlobal(DATA_GLOBAL, i32, true, m.i32.const(0));
  const state = () => m.global.get(STATE_GLOBAL, i32);
  const data = () => m.global.get(DATA_GLOBAL, i32);
  const checkData = () => m.if(m.i32.gt_u(m.i32.load(0, 4, data()), m.i32.load(4, 4, data())), m.unreachable());
  const control = (name: string, exp: string, params: number, results: number, body: number) => {
    m.addFunction(name, params, results, [], body);
    m.addFunctionExport(name, exp);
  };
  control('__gridvm_start_unwind', 'asyncify_start_unwind', i32, binaryen.none, m.block(null, [
    m.global.set(STATE_GLOBAL, m.i32.const(1)), m.global.set(DATA_GLOBAL, m.local.get(0, i32)), checkData()]));
  control('__gridvm_stop_unwind', 'asyncify_stop_unwind', binaryen.none, binaryen.none, m.block(null, [
    m.global.set(STATE_GLOBAL, m.i32.const(0)), checkData()]));
  control('__gridvm_start_rewind', 'asyncify_start_rewind', i32, binaryen.none, m.block(null, [
    m.global.set(STATE_GLOBAL, m.i32.const(2)), m.global.set(DATA_GLOBAL, m.local.get(0, i32)), checkData()]));
  control('__gridvm_stop_rewind', 'asyncify_stop_rewind', binaryen.none, binaryen.none, m.block(null, [
    m.global.set(STATE_GLOBAL, m.i32.const(0)), checkData()]));
  control('__gridvm_get_state', 'asyncify_get_state', binaryen.none, i32, state());

  const resumeOf = new Map(plans.map((p) => [p.f.name, uniqueName(m, `${p.f.name}$resume`)]));
  /** a site calling an import (gridvm.yield, a blocking grid call): it returns, with the state set, to unwind */
  const isImport = (call: number): boolean => binaryen.getExpressionId(call) === CALL && !resumeOf.has(targetOf(call));
  m.addTag(TAG, binaryen.none, binaryen.none);
  // a frame that would end past the window asks the host to widen it (a tier-up re-entry backs up only what the
  // window covers, not all of memory); the host traps if the frames cannot fit
  m.addFunctionImport(WINDOW_FN, 'gridvm', 'unwind_window', i32, binaryen.none);
  /**
   * A site's call as the resume version makes it: a direct call to a function with a resume version calls that
   * version while rewinding (so the callee needs no check at its entry), the fast one otherwise.
   */
  const rewindingCall = (call: number, rw: number): number => {
    if (binaryen.getExpressionId(call) !== CALL) return call;
    const resume = resumeOf.get(targetOf(call));
    if (!resume) return call; // an import: the host ends the rewind there
    const ops: number[] = [];
    for (let i = 0, c = X.Call.getNumOperands(call); i < c; i++) ops.push(m.copyExpression(X.Call.getOperandAt(call, i)));
    const t = binaryen.getExpressionType(call);
    return m.if(m.local.get(rw, i32), m.call(resume, ops, t), call);
  };
  let sites = 0;
  let cleanLoopsAll = 0;
  let sharedFrames = 0;
  for (const [pi, plan] of plans.entries()) {
    if (pi % 256 === 0) progress(0.4 + (0.6 * pi) / plans.length);
    const { f, params, vars, holders } = plan;
    const results = X.Function.getResults(f.ref);
    const locals = [...params, ...vars];
    const store = (t: number, off: number, ptr: number, v: number): number => {
      if (t === binaryen.i32) return m.i32.store(off, 1, ptr, v);
      if (t === binaryen.i64) return m.i64.store(off, 1, ptr, v);
      if (t === binaryen.f32) return m.f32.store(off, 1, ptr, v);
      if (t === binaryen.f64) return m.f64.store(off, 1, ptr, v);
      return m.v128.store(off, 1, ptr, v);
    };
    const load = (t: number, off: number, ptr: number): number => {
      if (t === binaryen.i32) return m.i32.load(off, 1, ptr);
      if (t === binaryen.i64) return m.i64.load(off, 1, ptr);
      if (t === binaryen.f32) return m.f32.load(off, 1, ptr);
      if (t === binaryen.f64) return m.f64.load(off, 1, ptr);
      return m.v128.load(off, 1, ptr);
    };

    // A site pushes a frame: the locals live after it (the local its call sets is not: the call sets it again when
    // resumed), then the site's number on top, so a rewind reads the number first. A function with many sites gives
    // them all one frame layout, of the locals live after any of them, and its fast version one save, after its body:
    // a save per site was ~30% of yosys's fast versions, all of which V8 compiles and tiers up (its largest function:
    // 1.9 MB -> 0.5 MB, TurboFan 4.6 s -> 1.6 s). Only in modules flattened by native wasm-opt (the large ones):
    // one shared save keeps the union alive at every site, and where a hot loop holds a site that costs spills
    // (nbody 1.035x -> 1.096x its original, paired), and V8's frames of small recursive functions grew 8-16 bytes.
    const liveAfter = liveness(X.Function.getBody(f.ref), locals.length, siteOf);
    let union = 0n;
    const liveAt = plan.order.map((e) => {
      let live = liveAfter.get(e) ?? 0n;
      if (binaryen.getExpressionId(e) === LOCAL_SET) live &= ~(1n << BigInt(setIndex(e)));
      // a rewind calls an import again (the host decodes its arguments) and an indirect call through the same
      // table index: their operands must be restored too (a resume version restores its own locals instead)
      const call = siteOf(e)!;
      if (binaryen.getExpressionId(call) === CALL_INDIRECT || !resumeOf.has(targetOf(call))) live |= uses(call);
      union |= live;
      return live;
    });
    const layoutOf = (live: bigint) => {
      const slots: Array<{ local: number; type: number; at: number }> = [];
      let size = 0;
      for (const i of bitsOf(live)) {
        slots.push({ local: i, type: locals[i]!, at: size });
        size += SIZE.get(locals[i]!)!;
      }
      return { slots, size: size + 4 };
    };
    const sharedLayout = prepared && plan.sites > SHARED_FRAME_MIN_SITES ? layoutOf(union) : undefined;
    if (sharedLayout) sharedFrames++;
    /** site k's frame layout; a save or restore at site k touches only the locals live after it (none when shared) */
    const frames = sharedLayout ? [] : liveAt.map(layoutOf);
    /** push a frame of `slots` (`size` bytes), numbered `site`, and go on unwinding */
    const push = (p: number, slots: ReturnType<typeof layoutOf>['slots'], size: number, site: number): number => m.block(null, [
      m.local.set(p, m.i32.load(0, 4, data())),
      m.if(m.i32.gt_u(m.i32.add(m.local.get(p, i32), m.i32.const(size)), m.i32.load(4, 4, data())),
        m.call(WINDOW_FN, [m.i32.add(m.local.get(p, i32), m.i32.const(size))], binaryen.none)),
      ...slots.map((sl) => store(sl.type, sl.at, m.local.get(p, i32), m.local.get(sl.local, sl.type))),
      m.i32.store(size - 4, 1, m.local.get(p, i32), site),
      m.i32.store(0, 4, data(), m.i32.add(m.local.get(p, i32), m.i32.const(size))),
      m.throw(TAG, []),
    ], binaryen.unreachable);
    /** push the frame of site k (at the site itself) */
    const save = (p: number, k: number): number => push(p, frames[k]!.slots, frames[k]!.size, m.i32.const(k));
    /**
     * Site k's call, `stmt` (its result put in a local by `after`), made so that an unwind starting in it pushes
     * this frame (`onUnwind`) and goes on unwinding: an import returns with the state set (check it), a job
     * function throws the unwind exception (catch it: nothing to check when no unwind happens).
     */
    const guarded = (call: number, stmt: number, onUnwind: number, after: number[]): number[] =>
      isImport(call) ? [stmt, m.if(state(), onUnwind), ...after] : [m.try('', stmt, [TAG], [onUnwind]), ...after];

    // ---- the resume version, from a copy of the flat body
    const flat = X.Function.getBody(f.ref);
    const copy = m.copyExpression(flat);
    const copyHolders = new Set<number>();
    mirror(flat, copy, holders, copyHolders);
    const nLocals = locals.length;
    const rp = nLocals, rw = nLocals + 1, ridx = nLocals + 2;
    /**
     * `local.set $x (call ...)` as `$tmp = call; <then>; $x = $tmp`: the unwind check runs before $x is written, so
     * a frame saved there still holds $x's old value (which the call may have read: a rewind calls an import again).
     */
    const viaScratch = (set: number, value: number, scratch: (t: number) => number): { stmt: number; then: number } => {
      const t = binaryen.getExpressionType(value);
      const tmp = scratch(t);
      return { stmt: m.local.set(tmp, value), then: m.local.set(setIndex(set), m.local.get(tmp, t)) };
    };
    /**
     * Make `e`'s sites as the fast version has them, numbered from `at.k` on: site k's call guarded so that an unwind
     * starting in it runs `onUnwind(k)`. Used for the fast version's body and for the clean copies of loops in the
     * resume version (which save into its own frame).
     */
    const asFast = (e: number, set: (r: number) => void, at: { k: number }, holdersOf: Set<number>, onUnwind: (k: number) => number, scratch: (t: number) => number): void => {
      const id = binaryen.getExpressionId(e);
      if (!holdersOf.has(e)) {
        const call = siteOf(e);
        if (call !== undefined) {
          const me = at.k++;
          const parts = call === e ? { stmt: e, then: undefined } : viaScratch(e, call, scratch);
          set(m.block(null, guarded(call, parts.stmt, onUnwind(me), parts.then ? [parts.then] : []), binaryen.none));
        }
        return;
      }
      const rec = (c: number, setC: (r: number) => void) => asFast(c, setC, at, holdersOf, onUnwind, scratch);
      if (id === BLOCK) {
        for (let i = 0, c = X.Block.getNumChildren(e); i < c; i++) rec(X.Block.getChildAt(e, i), (r) => X.Block.setChildAt(e, i, r));
      } else if (id === LOOP) rec(X.Loop.getBody(e), (r) => X.Loop.setBody(e, r));
      else if (id === IF) {
        rec(X.If.getIfTrue(e), (r) => X.If.setIfTrue(e, r));
        const fl = X.If.getIfFalse(e);
        if (fl) rec(fl, (r) => X.If.setIfFalse(e, r));
      }
      X._BinaryenExpressionFinalize(e);
    };
    const rwExtra: number[] = [];
    const rwScratch = (t: number): number => {
      let i = rwExtra.indexOf(t);
      if (i < 0) i = rwExtra.push(t) - 1;
      return nLocals + 3 + i;
    };
    /**
     * An unwind at site k of the resume version: with a shared layout, note k (in ridx: the rewind is over, it is
     * not read again) and branch to the one save after the body, as the fast version does; resume versions were
     * two thirds of yosys' instrumented module, mostly their saves and restores per site.
     */
    const rwSave = (me: number): number => sharedLayout
      ? m.block(null, [m.local.set(ridx, m.i32.const(me)), m.br(SAVE_LABEL)], binaryen.unreachable)
      : save(rp, me);
    let k = 0;
    /** whether the loop being rewritten sits inside a loop that already has a clean copy (which holds its own) */
    let inCleanLoop = false;
    const rwStmt = (e: number, set: (r: number) => void): void => {
      const id = binaryen.getExpressionId(e);
      if (!copyHolders.has(e)) {
        const call = siteOf(e);
        if (call !== undefined) {
          const me = k++;
          const rc = rewindingCall(call, rw);
          const parts = call === e ? { stmt: rc, then: undefined } : viaScratch(e, rc, rwScratch);
          // the rewind is over once the call returns
          const after = [m.local.set(rw, m.i32.const(0)), ...(parts.then ? [parts.then] : [])];
          set(m.if(m.i32.or(m.i32.eqz(m.local.get(rw, i32)), m.i32.eq(m.local.get(ridx, i32), m.i32.const(me))),
            m.block(null, guarded(call, parts.stmt, rwSave(me), after), binaryen.none)));
          return;
        }
        set(m.if(m.i32.eqz(m.local.get(rw, i32)), e));
        return;
      }
      if (id === BLOCK) {
        for (let i = 0, c = X.Block.getNumChildren(e); i < c; i++) rwStmt(X.Block.getChildAt(e, i), (r) => X.Block.setChildAt(e, i, r));
      } else if (id === LOOP) {
        const name = X.Loop.getName(e);
        if (!name || !cleanLoops || inCleanLoop) {
          rwStmt(X.Loop.getBody(e), (r) => X.Loop.setBody(e, r));
        } else {
          // Once the rewind is over, the loop's next turn runs a clean copy of it (its sites as in the fast
          // version): else every later iteration would pay the guards, which measured 5-12% on jobs whose main
          // loop was on the stack at a checkpoint or tier-up re-entry.
          const clean = m.copyExpression(e);
          const cleanHolders = new Set<number>();
          mirror(e, clean, copyHolders, cleanHolders);
          const n = cleanCopies++;
          renameLabels(clean, `__gridvm_c${n}`);
          const at = { k };
          asFast(clean, () => { throw new Error('a loop is not a site'); }, at, cleanHolders, rwSave, rwScratch);
          // the loops inside go on guarded until this one's next turn: copies of copies grew yosys past
          // binaryen.js's 4 GiB; one copy per outermost loop adds at most the resume version's size
          inCleanLoop = true;
          rwStmt(X.Loop.getBody(e), (r) => X.Loop.setBody(e, r));
          inCleanLoop = false;
          if (at.k !== k) throw new Error(`unwind: the clean copy of a loop numbers its sites ${at.k}, the resume version ${k}`);
          const toClean = `__gridvm_toclean${n}`, after = `__gridvm_after${n}`;
          X.Loop.setBody(e, m.block(null, [m.br(toClean, m.i32.eqz(m.local.get(rw, i32))), X.Loop.getBody(e)], binaryen.auto));
          X._BinaryenExpressionFinalize(e);
          set(m.block(after, [m.block(toClean, [e, m.br(after)], binaryen.none), clean], binaryen.none));
          return;
        }
      } else if (id === IF) {
        const lo = k;
        rwStmt(X.If.getIfTrue(e), (r) => X.If.setIfTrue(e, r));
        const mid = k;
        const fl = X.If.getIfFalse(e);
        if (fl) rwStmt(fl, (r) => X.If.setIfFalse(e, r));
        // rewinding: take the arm that holds the site
        const inTrue = mid === lo ? m.i32.const(0) : m.i32.lt_u(m.i32.sub(m.local.get(ridx, i32), m.i32.const(lo)), m.i32.const(mid - lo));
        X.If.setCondition(e, m.select(m.local.get(rw, i32), inTrue, X.If.getCondition(e)));
      }
      X._BinaryenExpressionFinalize(e); // a child that ended in a branch may now fall through
    };
    let cleanCopies = 0;
    let rwBody = copy;
    rwStmt(copy, (r) => { rwBody = r; });
    /** pop the frame of site k: its locals (all of the shared layout's: every save stores them all) */
    const pop = ({ slots, size }: ReturnType<typeof layoutOf>): number[] => [
      m.local.set(rp, m.i32.sub(m.i32.load(0, 4, data()), m.i32.const(size))),
      m.i32.store(0, 4, data(), m.local.get(rp, i32)),
      ...slots.map((sl) => m.local.set(sl.local, load(sl.type, sl.at, m.local.get(rp, i32)))),
    ];
    const restore = [
      m.local.set(ridx, m.i32.load(0, 1, m.i32.sub(m.i32.load(0, 4, data()), m.i32.const(4)))),
      ...(sharedLayout
        ? pop(sharedLayout)
        : frames.map((frame, k) => m.if(m.i32.eq(m.local.get(ridx, i32), m.i32.const(k)), m.block(null, pop(frame), binaryen.none)))),
      m.local.set(rw, m.i32.const(1)),
    ];
    // Falling off the end still rewinding: the site number matched no site (the stack is not this module's). A
    // flat body with results never falls off its end (it returns), a void one may once resumed.
    const tail = results === binaryen.none ? m.if(m.local.get(rw, i32), m.unreachable()) : m.unreachable();
    if (sharedLayout) {
      // a shared layout's saves out of line, as in the fast version
      rwBody = m.block(null, [
        m.block(SAVE_LABEL, results === binaryen.none ? [rwBody, tail, m.return()] : [rwBody, tail], binaryen.none),
        push(rp, sharedLayout.slots, sharedLayout.size, m.local.get(ridx, i32)),
      ], binaryen.unreachable);
    }
    const resumeName = resumeOf.get(f.name)!;
    m.addFunction(resumeName, X.Function.getParams(f.ref), results, [...vars, i32, i32, i32, ...rwExtra],
      m.block(null, sharedLayout ? [...restore, rwBody] : [...restore, rwBody, tail], binaryen.auto));

    // ---- the fast version
    const fp = X._BinaryenFunctionAddVar(f.ref, i32);
    const fsite = X._BinaryenFunctionAddVar(f.ref, i32);
    const fastExtra = new Map<number, number>();
    const fastScratch = (t: number): number => fastExtra.get(t) ?? fastExtra.set(t, X._BinaryenFunctionAddVar(f.ref, t)).get(t)!;
    let fastBody = flat;
    const toSave = (me: number) => m.block(null, [m.local.set(fsite, m.i32.const(me)), m.br(SAVE_LABEL)], binaryen.unreachable);
    asFast(flat, (r) => { fastBody = r; }, { k: 0 }, holders, toSave, fastScratch);
    // the saves out of line, after the body: a site only notes its number and branches there
    if (plan.sites) {
      fastBody = m.block(null, [
        m.block(SAVE_LABEL, results === binaryen.none ? [fastBody, m.return()] : [fastBody], binaryen.none),
        ...(sharedLayout
          ? [push(fp, sharedLayout.slots, sharedLayout.size, m.local.get(fsite, i32))]
          : [...frames.map((_, k) => m.if(m.i32.eq(m.local.get(fsite, i32), m.i32.const(k)), save(fp, k))), m.unreachable()]),
      ], binaryen.unreachable);
    }
    const resume = m.call(resumeName, params.map((t, i) => m.local.get(i, t)), results);
    const divert = m.if(m.i32.eq(state(), m.i32.const(2)),
      results === binaryen.none ? m.block(null, [resume, m.return()], binaryen.unreachable) : m.return(resume));
    X.Function.setBody(f.ref, entered.has(f.name) ? m.block(null, [divert, fastBody], binaryen.auto) : fastBody);
    sites += plan.sites;
    cleanLoopsAll += cleanCopies;
  }
  // The host calls exports: a wrapper enters the function (its resume version when rewinding) and ends the unwind
  // exception there, so the host sees Asyncify's behaviour (the export returns, with the state set).
  const exported: Array<{ name: string; value: string }> = [];
  for (let i = 0; i < m.getNumExports(); i++) {
    const e = binaryen.getExportInfo(m.getExportByIndex(i));
    if (e.kind === binaryen.ExternalFunction && resumeOf.has(e.value)) exported.push({ name: e.name, value: e.value });
  }
  for (const { name, value } of exported) {
    const ref = m.getFunction(value);
    const params = binaryen.expandType(X.Function.getParams(ref));
    const results = X.Function.getResults(ref);
    const args = () => params.map((t, i) => m.local.get(i, t));
    const enter = m.if(m.i32.eq(state(), m.i32.const(2)), m.call(resumeOf.get(value)!, args(), results), m.call(value, args(), results));
    const wrapper = uniqueName(m, `${value}$entry`);
    m.addFunction(wrapper, X.Function.getParams(ref), results, [],
      m.try('', enter, [TAG], [results === binaryen.none ? m.nop() : zeroOf(m, results)]));
    m.removeExport(name);
    m.addFunctionExport(wrapper, name);
  }
  return { functions: plans.length, sites, cleanLoops: cleanLoopsAll, sharedFrames };
}

function zeroOf(m: binaryen.Module, t: number): number {
  if (t === binaryen.i32) return m.i32.const(0);
  if (t === binaryen.i64) return m.i64.const(0n);
  if (t === binaryen.f32) return m.f32.const(0);
  if (t === binaryen.f64) return m.f64.const(0);
  return m.v128.const([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/** Walk two identical trees side by side, mapping the marked nodes of the first to the second. */
function mirror(a: number, b: number, marked: Set<number>, out: Set<number>): void {
  const stack: Array<[number, number]> = [[a, b]];
  while (stack.length) {
    const [x, y] = stack.pop()!;
    if (marked.has(x)) out.add(y);
    const xs: number[] = [];
    const ys: number[] = [];
    children(x, xs);
    children(y, ys);
    for (let i = 0; i < xs.length; i++) stack.push([xs[i]!, ys[i]!]);
  }
}

function uniqueName(m: binaryen.Module, base: string): string {
  let name = base;
  for (let i = 1; m.getFunction(name); i++) name = `${base}${i}`;
  return name;
}

const BREAK = binaryen.BreakId;
const SWITCH = binaryen.SwitchId;
const RETURN = binaryen.ReturnId;
const UNREACHABLE = binaryen.UnreachableId;
const LOCAL_GET = binaryen.LocalGetId;


/**
 * The indices of the set bits, in increasing order. (Testing bit i as `x >> i & 1` makes a new BigInt of x's size
 * per bit: quadratic in the number of locals, minutes on yosys' largest functions.)
 */
function bitsOf(x: bigint): number[] {
  const out: number[] = [];
  const s = x.toString(2);
  for (let i = s.length - 1, b = 0; i >= 0; i--, b++) if (s.charCodeAt(i) === 49) out.push(b);
  return out;
}

/** The locals an expression reads (a bit per local index). */
function uses(e: number): bigint {
  let out = 0n;
  const stack = [e];
  while (stack.length) {
    const x = stack.pop()!;
    if (binaryen.getExpressionId(x) === LOCAL_GET) out |= 1n << BigInt(getIndex(x));
    else children(x, stack);
  }
  return out;
}

/**
 * Liveness of the locals of a flat function body: for each statement that `isSite` accepts, the locals that may be
 * read after it (one bit per local). Backward over the structured code: a branch to a block continues after the
 * block, to a loop at its head (iterated to a fixpoint), `return` and `unreachable` end it.
 */
function liveness(body: number, _nLocals: number, isSite: (e: number) => number | undefined): Map<number, bigint> {
  const after = new Map<number, bigint>();
  /** live locals at each label's target, by the label's interned-name pointer */
  const labels = new Map<number, bigint>();
  const usesOf = (e: number): bigint => (e ? uses(e) : 0n);
  const heads = new Map<number, bigint>();
  const live = (e: number, out: bigint): bigint => {
    const id = binaryen.getExpressionId(e);
    if (id === BLOCK) {
      const name = blockName(e);
      const saved = name ? labels.get(name) : undefined;
      if (name) labels.set(name, out);
      let l = out;
      for (let c = blockCount(e) - 1; c >= 0; c--) l = live(blockChild(e, c), l);
      if (name) saved === undefined ? labels.delete(name) : labels.set(name, saved);
      return l;
    }
    if (id === LOOP) {
      const name = loopName(e);
      const saved = name ? labels.get(name) : undefined;
      // from this loop's head as an enclosing loop's previous iteration left it: the sets only grow, so that is
      // still below the fixpoint, and nested loops are not walked 2^depth times
      let head = heads.get(e) ?? 0n;
      for (;;) {
        if (name) labels.set(name, head);
        const next = live(loopBody(e), out);
        if (next === head) break;
        head = next;
      }
      heads.set(e, head);
      if (name) saved === undefined ? labels.delete(name) : labels.set(name, saved);
      return head;
    }
    if (id === IF) {
      const t = live(ifTrue(e), out);
      const fl = ifFalse(e);
      const f = fl ? live(fl, out) : out;
      return uses(ifCondition(e)) | t | f;
    }
    if (id === BREAK) {
      const target = labels.get(breakName(e)) ?? 0n;
      const cond = breakCondition(e);
      const u = usesOf(cond) | usesOf(breakValue(e));
      return cond ? u | target | out : u | target;
    }
    if (id === SWITCH) {
      let l = uses(switchCondition(e)) | usesOf(switchValue(e));
      for (let i = 0, c = switchNames(e); i < c; i++) l |= labels.get(switchNameAt(e, i)) ?? 0n;
      return l | (labels.get(switchDefault(e)) ?? 0n);
    }
    if (id === RETURN) return usesOf(returnValue(e));
    if (id === UNREACHABLE) return 0n;
    if (isSite(e) !== undefined) after.set(e, out);
    if (id === LOCAL_SET) return (out & ~(1n << BigInt(setIndex(e)))) | uses(setValue(e));
    // any other statement: reads its operands; if it cannot fall through (its type is unreachable), nothing after it
    return (binaryen.getExpressionType(e) === binaryen.unreachable ? 0n : out) | uses(e);
  };
  live(body, 0n);
  return after;
}
