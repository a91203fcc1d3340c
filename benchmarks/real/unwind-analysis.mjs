// How much of a program Asyncify must instrument under gridvm's current scheme, and how much a type-aware call
// graph would save. Reads the module with binaryen.js and walks every function (no instrumentation).
//
//   node benchmarks/real/unwind-analysis.mjs MODULE.wasm
//
// yield sites  = functions whose checks call the suspending gridvm.yield: non-leaf functions with loops, and
//                functions on a call-graph cycle (entry checks)  [vm/instrument.ts at INSTRUMENT_VERSION 2]
// may unwind   = yield sites and every function that can call one, transitively (what Asyncify instruments)
//   untyped    = an indirect call may reach any address-taken function (vm/callgraph.ts, and Asyncify itself
//                without asyncify-ignore-indirect: every function with an indirect call is instrumented)
//   typed      = an indirect call reaches only address-taken functions of its own signature
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const binaryen = (await import(require.resolve('binaryen'))).default;

const file = process.argv[2];
const t0 = performance.now();
const m = binaryen.readBinary(new Uint8Array(readFileSync(file)));
const parseMs = performance.now() - t0;
const B = binaryen;
const ids = { loop: B.LoopId, call: B.CallId, ci: B.CallIndirectId, cr: B.CallRefId, rf: B.RefFuncId };

// generic child walk: every numeric field / numeric array field of getExpressionInfo except ids and types
const SKIP = new Set(['id', 'type', 'params', 'results', 'isReturn', 'offset', 'align', 'bytes', 'isSigned', 'isAtomic', 'op', 'value_i32', 'index', 'mask', 'lane', 'segment', 'tag', 'order']);
function walk(body) {
  const f = { loops: 0, calls: new Set(), indirectSigs: new Set(), callRef: false, refFuncs: new Set() };
  const stack = body ? [body] : [];
  while (stack.length) {
    const e = stack.pop();
    let info;
    try { info = B.getExpressionInfo(e); } catch { continue; }
    const id = info.id;
    if (id === ids.loop) f.loops++;
    else if (id === ids.call) f.calls.add(info.target);
    else if (id === ids.ci) f.indirectSigs.add(`${info.params}:${info.results}`);
    else if (id === ids.cr) f.callRef = true;
    else if (id === ids.rf) f.refFuncs.add(info.func);
    if (id === B.ConstId || id === B.LocalGetId || id === B.GlobalGetId) continue;
    for (const [k, v] of Object.entries(info)) {
      if (SKIP.has(k)) continue;
      if (k === 'name' || k === 'target' && id !== ids.ci && id !== ids.cr) continue;
      if (typeof v === 'number' && v > 4096 && (k !== 'target' || id === ids.ci || id === ids.cr)) stack.push(v);
      else if (Array.isArray(v)) for (const c of v) if (typeof c === 'number' && c > 4096) stack.push(c);
    }
  }
  return f;
}

const funcs = new Map();
const sigOf = new Map();
for (let i = 0; i < m.getNumFunctions(); i++) {
  const fi = B.getFunctionInfo(m.getFunctionByIndex(i));
  sigOf.set(fi.name, `${fi.params}:${fi.results}`);
  if (fi.module) continue;
  funcs.set(fi.name, walk(fi.body));
}
const taken = new Set();
for (const f of funcs.values()) for (const r of f.refFuncs) taken.add(r);
for (let i = 0; i < m.getNumElementSegments(); i++) for (const n of B.getElementSegmentInfo(m.getElementSegmentByIndex(i)).data) taken.add(n);
const takenBySig = new Map();
for (const n of taken) if (funcs.has(n)) { const s = sigOf.get(n); (takenBySig.get(s) ?? takenBySig.set(s, []).get(s)).push(n); }
const takenDefined = [...taken].filter((n) => funcs.has(n));
const walkMs = performance.now() - t0 - parseMs;

function callees(name, typed) {
  const f = funcs.get(name);
  const out = [...f.calls].filter((c) => funcs.has(c));
  if (f.callRef) out.push(...takenDefined);
  if (f.indirectSigs.size) {
    if (!typed) out.push(...takenDefined);
    else for (const s of f.indirectSigs) out.push(...(takenBySig.get(s) ?? []));
  }
  return out;
}

function analyse(typed) {
  const names = [...funcs.keys()];
  const succ = new Map(names.map((n) => [n, callees(n, typed)]));
  // recursion: SCCs (iterative Tarjan)
  const index = new Map(), low = new Map(), on = new Set(), st = [], rec = new Set();
  let c = 0;
  for (const s of names) {
    if (index.has(s)) continue;
    const work = [[s, 0]];
    while (work.length) {
      const top = work[work.length - 1];
      const v = top[0];
      if (top[1] === 0 && !index.has(v)) { index.set(v, c); low.set(v, c); c++; st.push(v); on.add(v); }
      const out = succ.get(v);
      if (top[1] < out.length) {
        const w = out[top[1]++];
        if (!index.has(w)) work.push([w, 0]);
        else if (on.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
        continue;
      }
      work.pop();
      if (work.length) { const u = work[work.length - 1][0]; low.set(u, Math.min(low.get(u), low.get(v))); }
      if (low.get(v) === index.get(v)) {
        const comp = [];
        let w;
        do { w = st.pop(); on.delete(w); comp.push(w); } while (w !== v);
        if (comp.length > 1 || out.includes(v)) for (const x of comp) rec.add(x);
      }
    }
  }
  const leaf = (n) => { const f = funcs.get(n); return !f.indirectSigs.size && !f.callRef && ![...f.calls].some((x) => funcs.has(x)); };
  const sites = names.filter((n) => (funcs.get(n).loops > 0 && !leaf(n)) || rec.has(n));
  // reverse reachability
  const pred = new Map(names.map((n) => [n, []]));
  for (const [n, out] of succ) for (const w of out) pred.get(w).push(n);
  const may = new Set(sites);
  const q = [...sites];
  while (q.length) for (const p of pred.get(q.pop())) if (!may.has(p)) { may.add(p); q.push(p); }
  // Asyncify without ignore-indirect also instruments every function with an indirect call
  const asyncifyUntyped = new Set(may);
  for (const n of names) if (funcs.get(n).indirectSigs.size || funcs.get(n).callRef) asyncifyUntyped.add(n);
  return { recursive: rec.size, sites: sites.length, mayUnwind: may.size, asyncifyInstruments: typed ? may.size : asyncifyUntyped.size, leaves: names.filter(leaf).length };
}

const res = {
  file: file.split('/').pop(),
  functions: funcs.size,
  withLoops: [...funcs.values()].filter((f) => f.loops).length,
  loops: [...funcs.values()].reduce((a, f) => a + f.loops, 0),
  indirectCallers: [...funcs.values()].filter((f) => f.indirectSigs.size || f.callRef).length,
  addressTaken: takenDefined.length,
  parseMs: Math.round(parseMs),
  walkMs: Math.round(walkMs),
  untyped: analyse(false),
  typed: analyse(true),
};
m.dispose();
console.log(JSON.stringify(res));
