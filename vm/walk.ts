import binaryen from 'binaryen';

/**
 * A read-only walk over a Binaryen function body that finds what instrumentation needs: loops, memory.grow
 * expressions, direct call targets, indirect calls, address-taken functions and legacy `try` bodies.
 *
 * binaryen.js has no generic child iterator, so children are named per expression kind. A kind not listed here is
 * walked through the fields of getExpressionInfo that hold expression references by name (`unknownKinds` counts
 * them so tests notice).
 */
export interface WalkFacts {
  loops: number[];
  /** for each loop, how many loops of the same function enclose it */
  loopDepth: number[];
  /** whether some loop body makes a call (direct or indirect) */
  loopCalls: boolean;
  grows: number[];
  calls: Set<string>;
  indirect: boolean;
  refFuncs: Set<string>;
  tries: number;
  /** throw / rethrow expressions */
  throws: number;
  /** return_call / return_call_indirect expressions (Asyncify cannot handle them: see lowerTailCalls) */
  tailCalls: number;
  /**
   * Expressions that change instance state outside memory and globals (data.drop, table.set, table.grow): an
   * instance that ran them cannot be reset for another job (InstrumentInfo.reusable).
   */
  stateOps: number;
}

type Info = Record<string, unknown> & { id: number };

const b = binaryen as unknown as Record<string, number> & typeof binaryen;

/** child fields (single expression) per expression id */
const SINGLE: Record<number, string[]> = {};
/** child fields (arrays of expressions) per expression id */
const MULTI: Record<number, string[]> = {};
/** the binaryen.js class name per expression id (its setters: `set<Field>`, `set<Element>At`) */
const KIND: Record<number, string> = {};
function kinds(name: string, single: string[], multi: string[] = []): void {
  const id = b[`${name}Id`];
  if (typeof id !== 'number') return;
  SINGLE[id] = single;
  MULTI[id] = multi;
  KIND[id] = name;
}
kinds('Block', [], ['children']);
kinds('If', ['condition', 'ifTrue', 'ifFalse']);
kinds('Loop', ['body']);
kinds('Break', ['condition', 'value']);
kinds('Switch', ['condition', 'value']);
kinds('Call', [], ['operands']);
kinds('CallIndirect', ['target'], ['operands']);
kinds('CallRef', ['target'], ['operands']);
kinds('LocalGet', []);
kinds('LocalSet', ['value']);
kinds('GlobalGet', []);
kinds('GlobalSet', ['value']);
kinds('Load', ['ptr']);
kinds('Store', ['ptr', 'value']);
kinds('Const', []);
kinds('Unary', ['value']);
kinds('Binary', ['left', 'right']);
kinds('Select', ['ifTrue', 'ifFalse', 'condition']);
kinds('Drop', ['value']);
kinds('Return', ['value']);
kinds('MemorySize', []);
kinds('MemoryGrow', ['delta']);
kinds('Nop', []);
kinds('Unreachable', []);
kinds('AtomicCmpxchg', ['ptr', 'expected', 'replacement']);
kinds('AtomicRMW', ['ptr', 'value']);
kinds('AtomicWait', ['ptr', 'expected', 'timeout']);
kinds('AtomicNotify', ['ptr', 'notifyCount']);
kinds('AtomicFence', []);
kinds('SIMDExtract', ['vec']);
kinds('SIMDReplace', ['vec', 'value']);
kinds('SIMDShuffle', ['left', 'right']);
kinds('SIMDTernary', ['a', 'b', 'c']);
kinds('SIMDShift', ['vec', 'shift']);
kinds('SIMDLoad', ['ptr']);
kinds('SIMDLoadStoreLane', ['ptr', 'vec']);
kinds('MemoryInit', ['dest', 'offset', 'size']);
kinds('DataDrop', []);
kinds('MemoryCopy', ['dest', 'source', 'size']);
kinds('MemoryFill', ['dest', 'value', 'size']);
kinds('RefNull', []);
kinds('RefIsNull', ['value']);
kinds('RefFunc', []);
kinds('RefEq', ['left', 'right']);
kinds('RefAs', ['value']);
kinds('TableGet', ['index']);
kinds('TableSet', ['index', 'value']);
kinds('TableSize', []);
kinds('TableGrow', ['value', 'delta']);
kinds('Try', ['body'], ['catchBodies']);
kinds('Throw', [], ['operands']);
kinds('Rethrow', []);
kinds('TupleMake', [], ['operands']);
kinds('TupleExtract', ['tuple']);
kinds('Pop', []);

const LOOP = b.LoopId;
const GROW = b.MemoryGrowId;
const CALL = b.CallId;
const CALL_INDIRECT = b.CallIndirectId;
const CALL_REF = b.CallRefId;
const REF_FUNC = b.RefFuncId;
const TRY = b.TryId;
const THROW = b.ThrowId;
const RETHROW = b.RethrowId;
const STATE_OPS = new Set([b.DataDropId, b.TableSetId, b.TableGrowId]);

export const unknownKinds = new Map<number, number>();

export function walkFunction(body: number): WalkFacts {
  const facts: WalkFacts = { loops: [], loopDepth: [], loopCalls: false, grows: [], calls: new Set(), indirect: false, refFuncs: new Set(), tries: 0, throws: 0, tailCalls: 0, stateOps: 0 };
  if (!body) return facts;
  const stack: number[] = [body];
  const depths: number[] = [0];
  while (stack.length) {
    const expr = stack.pop()!;
    const depth = depths.pop()!;
    const id = binaryen.getExpressionId(expr);
    if (id === LOOP) {
      facts.loops.push(expr);
      facts.loopDepth.push(depth);
    } else if (id === GROW) facts.grows.push(expr);
    else if (id === CALL) {
      facts.calls.add(callTarget(expr));
      if (RAW_API._BinaryenCallIsReturn!(expr)) facts.tailCalls++;
      if (depth > 0) facts.loopCalls = true;
    } else if (id === CALL_INDIRECT || id === CALL_REF) {
      facts.indirect = true;
      if ((id === CALL_INDIRECT ? RAW_API._BinaryenCallIndirectIsReturn! : RAW_API._BinaryenCallRefIsReturn!)(expr)) facts.tailCalls++;
      if (depth > 0) facts.loopCalls = true;
    } else if (id === REF_FUNC) facts.refFuncs.add((binaryen as unknown as { RefFunc: { getFunc(e: number): string } }).RefFunc.getFunc(expr));
    else if (id === TRY) facts.tries++;
    else if (id === THROW || id === RETHROW) facts.throws++;
    else if (STATE_OPS.has(id)) facts.stateOps++;
    const childDepth = id === LOOP ? depth + 1 : depth;
    if (!children(expr, stack)) {
      // a kind without raw getters here (Try, Throw, tuples, GC): through getExpressionInfo's fields
      let info: Info;
      try {
        info = binaryen.getExpressionInfo(expr) as unknown as Info;
      } catch {
        // binaryen.js has no accessor class for this kind: it cannot be walked into
        unknownKinds.set(id, (unknownKinds.get(id) ?? 0) + 1);
        continue;
      }
      const single = SINGLE[id];
      if (single === undefined) {
        unknownKinds.set(id, (unknownKinds.get(id) ?? 0) + 1);
        for (const [k, v] of Object.entries(info)) {
          if (k === 'id' || k === 'type') continue;
          if (Array.isArray(v)) for (const c of v) if (typeof c === 'number' && c) stack.push(c);
        }
      } else {
        for (const f of single) {
          const c = info[f];
          if (typeof c === 'number' && c) stack.push(c);
        }
        for (const f of MULTI[id] ?? []) {
          const arr = info[f] as number[] | undefined;
          if (arr) for (let i = arr.length - 1; i >= 0; i--) if (arr[i]) stack.push(arr[i]!);
        }
      }
    }
    while (depths.length < stack.length) depths.push(childDepth);
  }
  return facts;
}

const RAW_API = binaryen as unknown as Record<string, ((e: number) => number) | undefined>;
/** decoded call targets, by interned-string pointer (one per distinct name) */
const targetNames = new Map<number, string>();
/** the function a direct call calls (names decoded once each) */
export function callTarget(call: number): string {
  const p = RAW_API._BinaryenCallGetTarget!(call);
  let name = targetNames.get(p);
  if (name === undefined) targetNames.set(p, (name = (binaryen as unknown as { Call: { getTarget(e: number): string } }).Call.getTarget(call)));
  return name;
}


/** One child position of an expression: the child, and how to put another expression there. */
export interface ChildSlot {
  child: number;
  set(replacement: number): void;
}

/** the per-element setter of an array field: `children` -> setChildAt, `operands` -> setOperandAt, ... */
const AT: Record<string, string> = { children: 'setChildAt', operands: 'setOperandAt', catchBodies: 'setCatchBodyAt' };

/**
 * The children of an expression with a setter for each, or undefined when the kind is one this walker does not know
 * (a transform must then leave the function alone).
 */
export function childSlots(expr: number): ChildSlot[] | undefined {
  const id = binaryen.getExpressionId(expr);
  const getters = GETTERS[id];
  if (getters && KIND[id]) {
    if (!getters.length) return []; // a leaf (binaryen.js has no class for some, e.g. Unreachable)
    // the raw getters (no getExpressionInfo), the class's setters
    const cls = (binaryen as unknown as Record<string, Record<string, (...a: number[]) => void>>)[KIND[id]!];
    if (!cls) return undefined;
    const out: ChildSlot[] = [];
    for (const g of getters) {
      if (g.one) {
        const c = g.one(expr);
        if (!c) continue;
        const setter = cls[`set${g.field}`];
        if (!setter) return undefined;
        out.push({ child: c, set: (r) => setter(expr, r) });
      } else {
        const setter = cls[`set${g.field}At`];
        if (!setter) return undefined;
        for (let i = 0, n = g.num!(expr); i < n; i++) {
          const c = g.at!(expr, i);
          if (c) out.push({ child: c, set: (r) => setter(expr, i, r) });
        }
      }
    }
    return out;
  }
  const single = SINGLE[id];
  const kind = KIND[id];
  if (single === undefined || kind === undefined) return undefined;
  const multi = MULTI[id]!;
  if (!single.length && !multi.length) return [];
  const cls = (binaryen as unknown as Record<string, Record<string, (...a: number[]) => void>>)[kind];
  if (!cls) return undefined;
  let info: Info;
  try {
    info = binaryen.getExpressionInfo(expr) as unknown as Info;
  } catch {
    return undefined; // binaryen.js has no accessor for this kind
  }
  const out: ChildSlot[] = [];
  for (const f of single) {
    const c = info[f];
    if (typeof c !== 'number' || !c) continue;
    const setter = cls[`set${f[0]!.toUpperCase()}${f.slice(1)}`];
    if (!setter) return undefined;
    out.push({ child: c, set: (r) => setter(expr, r) });
  }
  for (const f of multi) {
    const arr = info[f] as number[] | undefined;
    if (!arr) continue;
    const setter = cls[AT[f] ?? ''];
    if (!setter) return undefined;
    arr.forEach((c, i) => {
      if (c) out.push({ child: c, set: (r) => setter(expr, i, r) });
    });
  }
  return out;
}

/**
 * The raw C-API getter names of each kind's children, in childSlots' order: `[kind, field]` reads
 * `_Binaryen<kind>Get<field>(e)`, `[kind, field, 'n']` reads `_Binaryen<kind>GetNum<field>s(e)` children through
 * `_Binaryen<kind>Get<field>At(e, i)`. Walking with these costs one call into binaryen.js per child, where
 * getExpressionInfo builds an object with every field (strings decoded) per expression: ~10x faster on large modules.
 */
const RAW: Record<string, Array<[string, 'n'?]>> = {
  Block: [['Child', 'n']], If: [['Condition'], ['IfTrue'], ['IfFalse']], Loop: [['Body']], Break: [['Condition'], ['Value']],
  Switch: [['Condition'], ['Value']], Call: [['Operand', 'n']], CallIndirect: [['Target'], ['Operand', 'n']],
  LocalGet: [], LocalSet: [['Value']], GlobalGet: [], GlobalSet: [['Value']], Load: [['Ptr']], Store: [['Ptr'], ['Value']],
  Const: [], Unary: [['Value']], Binary: [['Left'], ['Right']], Select: [['IfTrue'], ['IfFalse'], ['Condition']],
  Drop: [['Value']], Return: [['Value']], MemorySize: [], MemoryGrow: [['Delta']], Nop: [], Unreachable: [],
  AtomicCmpxchg: [['Ptr'], ['Expected'], ['Replacement']], AtomicRMW: [['Ptr'], ['Value']],
  AtomicWait: [['Ptr'], ['Expected'], ['Timeout']], AtomicNotify: [['Ptr'], ['NotifyCount']], AtomicFence: [],
  SIMDExtract: [['Vec']], SIMDReplace: [['Vec'], ['Value']], SIMDShuffle: [['Left'], ['Right']],
  SIMDTernary: [['A'], ['B'], ['C']], SIMDShift: [['Vec'], ['Shift']], SIMDLoad: [['Ptr']],
  SIMDLoadStoreLane: [['Ptr'], ['Vec']], MemoryInit: [['Dest'], ['Offset'], ['Size']], DataDrop: [],
  MemoryCopy: [['Dest'], ['Source'], ['Size']], MemoryFill: [['Dest'], ['Value'], ['Size']], RefNull: [],
  RefIsNull: [['Value']], RefFunc: [], RefEq: [['Left'], ['Right']], RefAs: [['Value']], TableGet: [['Index']],
  TableSet: [['Index'], ['Value']], TableSize: [], TableGrow: [['Value'], ['Delta']], Pop: [],
  TupleMake: [['Operand', 'n']], TupleExtract: [['Tuple']], CallRef: [['Target'], ['Operand', 'n']],
};
type Getter = { field: string; one?: (e: number) => number; num?: (e: number) => number; at?: (e: number, i: number) => number };
/** per expression id: the getters of its children (undefined: a kind this walker does not know) */
const GETTERS: Array<Getter[] | undefined> = [];
{
  const raw = binaryen as unknown as Record<string, (e: number, i?: number) => number>;
  for (const [kind, fields] of Object.entries(RAW)) {
    const id = b[`${kind}Id`];
    if (typeof id !== 'number') continue;
    const getters: Getter[] = [];
    let ok = true;
    for (const [field, many] of fields) {
      const g: Getter = many ? { field, num: raw[`_Binaryen${kind}GetNum${field === 'Child' ? 'Children' : `${field}s`}`], at: raw[`_Binaryen${kind}Get${field}At`] } : { field, one: raw[`_Binaryen${kind}Get${field}`] };
      if (many ? !g.num || !g.at : !g.one) ok = false;
      getters.push(g);
    }
    if (ok) GETTERS[id] = getters;
  }
}

/**
 * Append the children of `e` to `out` (the same children, in the same order, as childSlots); false when the kind
 * is one this walker does not know (then nothing is appended).
 */
export function children(e: number, out: number[]): boolean {
  const getters = GETTERS[binaryen.getExpressionId(e)];
  if (!getters) return false;
  for (const g of getters) {
    if (g.one) {
      const c = g.one(e);
      if (c) out.push(c);
    } else {
      for (let i = 0, n = g.num!(e); i < n; i++) {
        const c = g.at!(e, i);
        if (c) out.push(c);
      }
    }
  }
  return true;
}

/**
 * Rename every label defined under `root` (blocks and loops, root included) to `name + suffix`, and the branches
 * to them: for a copy of code that will sit in the same function as the original.
 */
export function renameLabels(root: number, suffix: string): void {
  const N = binaryen as unknown as {
    Block: { getName(e: number): string | null; setName(e: number, n: string): void };
    Loop: { getName(e: number): string | null; setName(e: number, n: string): void };
    Break: { getName(e: number): string; setName(e: number, n: string): void };
    Switch: { getNumNames(e: number): number; getNameAt(e: number, i: number): string; setNameAt(e: number, i: number, n: string): void; getDefaultName(e: number): string; setDefaultName(e: number, n: string): void };
  };
  const all: number[] = [];
  const stack = [root];
  while (stack.length) {
    const e = stack.pop()!;
    all.push(e);
    if (!children(e, stack)) throw new Error(`renameLabels: an expression of unknown kind ${binaryen.getExpressionId(e)}`);
  }
  const defined = new Set<string>();
  for (const e of all) {
    const id = binaryen.getExpressionId(e);
    const n = id === b.BlockId ? N.Block.getName(e) : id === b.LoopId ? N.Loop.getName(e) : null;
    if (n) defined.add(n);
  }
  if (!defined.size) return;
  const re = (n: string) => (defined.has(n) ? n + suffix : n);
  for (const e of all) {
    const id = binaryen.getExpressionId(e);
    if (id === b.BlockId) {
      const n = N.Block.getName(e);
      if (n) N.Block.setName(e, re(n));
    } else if (id === b.LoopId) {
      const n = N.Loop.getName(e);
      if (n) N.Loop.setName(e, re(n));
    } else if (id === b.BreakId) N.Break.setName(e, re(N.Break.getName(e)));
    else if (id === b.SwitchId) {
      for (let i = 0, c = N.Switch.getNumNames(e); i < c; i++) N.Switch.setNameAt(e, i, re(N.Switch.getNameAt(e, i)));
      N.Switch.setDefaultName(e, re(N.Switch.getDefaultName(e)));
    }
  }
}
