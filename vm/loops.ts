import binaryen from 'binaryen';
import { children, renameLabels } from './walk.js';

/**
 * Loop unrolling by two, so that a budget check at the loop's head runs once per two iterations.
 *
 * A tight loop (a byte loop over a payload, an allocator's bin scan, n-body's pair loop) feels its check: measured in
 * separate processes, malloc_churn ran 1.19x its original with a check per iteration, 1.02x with none in its loops,
 * 1.07-1.09x unrolled by two. The fuel a check counts is the job's own definition of work, so it stays exact: the
 * same program (unrolled or not) counts the same checks at any slice size, checkpoint or suspension; unrolling
 * only makes a different (smaller) count than the module without it.
 *
 * Only loops of the form compilers emit for `do … while` (LLVM rotates loops into it) are unrolled:
 * `loop $l { S…; br_if $l C }` with the back edge last, no nested loop, no exception handling, and no branch to the
 * body block's own label (it would skip the back edge, and so leave the loop, where the copy would go on). It becomes
 * `loop $l { S…; if (C) { S'…; br_if $l C' } }` with S', C' a copy whose own labels are renamed. Any other branch
 * (out of the loop, or to `$l` from inside S: a `continue`) means the same in either half.
 */
export function unrollLoop(m: binaryen.Module, loop: number, suffix: string, maxExpressions: number): boolean {
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
  const copy = m.copyExpression(body);
  renameLabels(copy, suffix);
  const copied = info(copy).children as number[];
  (binaryen as unknown as { Loop: { setBody(e: number, b: number): void } }).Loop.setBody(loop, m.block(own, [
    ...stmts.slice(0, -1),
    m.if(li.condition as number, m.block(null, copied, binaryen.none)),
  ], binaryen.none));
  return true;
}

const B = binaryen as unknown as Record<string, number | undefined>;
/** nested loops (unrolled on their own), exception handling (a `pop` must stay first in its catch) */
const REFUSED = new Set([binaryen.LoopId, binaryen.TryId, binaryen.PopId, B.TryTableId, B.ThrowRefId].filter((x): x is number => typeof x === 'number'));
