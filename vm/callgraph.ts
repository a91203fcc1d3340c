/**
 * Functions that can recurse: members of a strongly connected component of the call graph with more than one
 * member, or with a self edge. An indirect call may reach any address-taken function. Iterative Tarjan, so that
 * modules with hundreds of thousands of functions do not overflow the JS stack.
 */
export function recursiveFunctions(
  edges: Map<string, Set<string>>,
  indirectCallers: Set<string>,
  addressTaken: Set<string>,
): Set<string> {
  const names = [...edges.keys()];
  const idx = new Map<string, number>();
  names.forEach((n, i) => idx.set(n, i));
  const taken = [...addressTaken].filter((n) => idx.has(n)).map((n) => idx.get(n)!);
  const succ: number[][] = names.map((n) => {
    const out: number[] = [];
    for (const t of edges.get(n)!) {
      const j = idx.get(t);
      if (j !== undefined) out.push(j);
    }
    if (indirectCallers.has(n)) out.push(...taken);
    return out;
  });
  const N = names.length;
  const index = new Int32Array(N).fill(-1);
  const low = new Int32Array(N);
  const onStack = new Uint8Array(N);
  const stack: number[] = [];
  const result = new Set<string>();
  let counter = 0;
  const work: Array<[number, number]> = [];
  for (let s = 0; s < N; s++) {
    if (index[s] !== -1) continue;
    work.push([s, 0]);
    while (work.length) {
      const top = work[work.length - 1]!;
      const v = top[0];
      if (top[1] === 0 && index[v] === -1) {
        index[v] = low[v] = counter++;
        stack.push(v);
        onStack[v] = 1;
      }
      const out = succ[v]!;
      if (top[1] < out.length) {
        const w = out[top[1]++]!;
        if (index[w] === -1) work.push([w, 0]);
        else if (onStack[w]) low[v] = Math.min(low[v]!, index[w]!);
        continue;
      }
      work.pop();
      if (work.length) {
        const u = work[work.length - 1]![0];
        low[u] = Math.min(low[u]!, low[v]!);
      }
      if (low[v] === index[v]) {
        const comp: number[] = [];
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = 0;
          comp.push(w);
        } while (w !== v);
        if (comp.length > 1 || succ[v]!.includes(v)) for (const c of comp) result.add(names[c]!);
      }
    }
  }
  return result;
}
