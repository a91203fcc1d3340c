import binaryen from 'binaryen';
import { children, renameLabels } from './walk.js';

/**
 * Loop unrolling by two (tiny loops, of at most a quarter of the size limit, by four), so that a budget check at
 * the loop's head runs once per two (four) iterations. By four measured malloc_churn ~1.5-2.5% faster than by two
 * (its chain walks and byte loops; paired runs in one process), nbody the same.
 *
 * A tight loop (a byte loop over a payload, an allocator's bin scan, n-body's pair loop) feels its check: measured in
 * separate processes, malloc_churn ran 1.19x its original with a check per iteration, 1.02x with none in its loops,
 * 1.07-1.09x unrolled by two. The fuel a check counts is the job's own definition of work, so it stays exact: the
 * same program (unrolled or not) counts the same checks at any slice size, checkpoint or suspension; unrolling
 * only makes a different (smaller) count than the module without it.
 *
 * `tinyOnly`: only the loops unrolled by four (large modules: their tiny loops are where the checks weigh most,
 * and the copies of the bigger ones ran binaryen.js out of memory on yosys).
 *
 * Only loops of the form compilers emit for `do … while` (LLVM rotates loops into it) are unrolled:
 * `loop $l { S…; br_if $l C }` with the back edge last, no nested loop, no exception handling, and no branch to the
 * body block's own label (it would skip the back edge, and so leave the loop, where the copy would go on). It becomes
 * `loop $l { S…; if (C) { S'…; br_if $l C' } }` with S', C' a copy whose own labels are renamed (by four, the
 * copies nest: `S…; if (C) { S1…; if (C1) { S2…; if (C2) { S3…; br_if $l C3 } } }`). Any other branch
 * (out of the loop, or to `$l` from inside S: a `continue`) means the same in either half.
 */
export function unrollLoop(m: binaryen.Module, loop: number, suffix: string, maxExpressions: number, tinyOnly = false): boolean {
  const info = (e: number) => binaryen.getExpressionInfo(e) as unknown as Record<string, unknown>;
  const name = info(loop).name as string | null;
  const body = info(loop).body as number;
  if (!name || binaryen.getExpressionType(loop) !== binaryen.none || binaryen.getExpressionId(body) !== binaryen.BlockId) return false;
  const bi = info(body);
  const stmts = bi.children as number[];
  const latch = stmts[stmts.length - 1];
  if (stmts.length < 2 || latch === undefined || binaryen.getExpressionId(latch) !== binaryen.BreakId) return false;
  const li = info(latch);
  if (li.name !== name || !li.condition || li.value) return false;
  const own = bi.name as string | null;
  let count = 0;
  const stack = [body];
  while (stack.length) {
    const e = stack.pop()!;
    if (++count > maxExpressions) return false;
    const id = binaryen.getExpressionId(e);
    if (REFUSED.has(id)) return false;
    if (own && id === binaryen.BreakId && info(e).name === own) return false;
    if (own && id === binaryen.SwitchId && [...(info(e).names as string[]), info(e).defaultName].includes(own)) return false;
    if (!children(e, stack)) return false;
  }
  // tiny loops (a list walk, a byte compare) by four: their check weighs most against a body of a few instructions
  const factor = count * 4 <= maxExpressions ? 4 : 2;
  if (tinyOnly && factor !== 4) return false;
  // from the innermost copy out: S(k-1)...; br_if $l C(k-1), then S(j)...; if (C(j)) { <copy j+1> } for j = k-2 ... 1
  let inner: number | undefined;
  for (let j = factor - 1; j >= 1; j--) {
    const copy = m.copyExpression(body);
    renameLabels(copy, `${suffix}${j > 1 ? `_${j}` : ''}`);
    const copied = info(copy).children as number[];
    if (inner === undefined) inner = m.block(null, copied, binaryen.none);
    else {
      const cl = info(copied[copied.length - 1]!);
      inner = m.block(null, [...copied.slice(0, -1), m.if(cl.condition as number, inner)], binaryen.none);
    }
  }
  (binaryen as unknown as { Loop: { setBody(e: number, b: number): void } }).Loop.setBody(loop, m.block(own, [
    ...stmts.slice(0, -1),
    m.if(li.condition as number, inner!),
  ], binaryen.none));
  return true;
}

const B = binaryen as unknown as Record<string, number | undefined>;
/** nested loops (unrolled on their own), exception handling (a `pop` must stay first in its catch) */
const REFUSED = new Set([binaryen.LoopId, binaryen.TryId, binaryen.PopId, B.TryTableId, B.ThrowRefId].filter((x): x is number => typeof x === 'number'));
