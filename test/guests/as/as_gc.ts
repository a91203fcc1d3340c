// as_gc: AssemblyScript job that stresses AssemblyScript's own allocator (TLSF) and incremental GC (--runtime
// incremental): it allocates many managed objects, arrays and strings, keeps a changing subset alive in a Map and in
// an array (with cross references between objects, so marking has real graphs to trace), drops the rest, and runs
// long enough for many GC cycles. Prints a checksum of the live set every round and a final one via WASI fd_write.
// A checkpoint taken mid-run lands between/inside GC steps: resuming must reproduce the same output byte for byte.
// Built with --exportStart _start: this top-level code is the body of the exported `_start`.
import { println, eprintln, hex64, exit } from "./lib/wasi";

class Node {
  children: Node[] = [];
  constructor(public id: i32, public label: string, public data: Float64Array) {}
}

let seed: u64 = 0x2545F4914F6CDD1D;
function rand(): u32 {
  seed ^= seed << 13;
  seed ^= seed >> 7;
  seed ^= seed << 17;
  return <u32>(seed >> 32);
}

function fnv(h: u64, x: u64): u64 {
  return (h ^ x) * 1099511628211;
}

function hashString(h: u64, s: string): u64 {
  for (let i = 0; i < s.length; i++) h = fnv(h, <u64>s.charCodeAt(i));
  return h;
}

function makeNode(id: i32): Node {
  const n = <i32>(rand() % 48) + 1;
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = <f64>id * 0.5 + <f64>i;
  let label = "node-" + id.toString();
  if ((id & 3) == 0) label = label + "/" + label.length.toString() + "-" + (id * 7).toString();
  return new Node(id, label, data);
}

function nodeHash(h: u64, node: Node): u64 {
  h = fnv(h, <u64>node.id);
  h = hashString(h, node.label);
  const d = node.data;
  for (let i = 0; i < d.length; i++) h = fnv(h, reinterpret<u64>(d[i]));
  for (let i = 0; i < node.children.length; i++) h = fnv(h, <u64>node.children[i].id);
  return h;
}

const ROUNDS = 40;
const PER_ROUND = 15000;
const LIVE = 3000;

const live = new Map<i32, Node>();
const ring: Node[] = [];
const slots = new StaticArray<i32>(LIVE).fill(-1);
let keptCount = 0;
let nextId = 0;
let garbageChecksum: u64 = 14695981039346656037;

for (let round = 1; round <= ROUNDS; round++) {
  for (let k = 0; k < PER_ROUND; k++) {
    const node = makeNode(nextId++);
    const r = rand() % 100;
    if (r < 20) {
      // keep it: in the map (bounded by evicting an old id) and sometimes in the ring
      live.set(node.id, node);
      const slot = keptCount++ % LIVE;
      const oldest = unchecked(slots[slot]);
      if (oldest >= 0 && live.has(oldest)) live.delete(oldest);
      unchecked(slots[slot] = node.id);
      if (r < 2) {
        const victim = node.id - 1 - <i32>(rand() % 500);
        if (live.has(victim)) live.delete(victim);
      }
      if (r < 5) {
        ring.push(node);
        if (ring.length > 512) ring.shift();
      }
      // cross references from a random older live node
      const other = node.id - 1 - <i32>(rand() % 200);
      if (live.has(other)) {
        const o = live.get(other);
        o.children.push(node);
        if (o.children.length > 8) o.children.shift();
      }
    } else {
      // temporary garbage: strings, arrays and a short-lived array of strings
      const parts = new Array<string>();
      for (let j = 0; j < 4; j++) parts.push(node.label + ":" + j.toString());
      garbageChecksum = hashString(garbageChecksum, parts.join(","));
    }
  }
  // checksum of the live set in a deterministic order (ids ascending via the keys array, sorted)
  const keys = live.keys();
  keys.sort((a: i32, b: i32): i32 => a - b);
  let h: u64 = 14695981039346656037;
  for (let i = 0; i < keys.length; i++) h = nodeHash(h, live.get(keys[i]));
  for (let i = 0; i < ring.length; i++) h = fnv(h, <u64>ring[i].id);
  if (round % 2 == 0 || round == 1) {
    println("round " + round.toString() + ": live=" + live.size.toString() + " ring=" + ring.length.toString() +
      " checksum=" + hex64(h) + " garbage=" + hex64(garbageChecksum));
  }
}

eprintln("as_gc: done, " + nextId.toString() + " nodes allocated");
let final: u64 = garbageChecksum;
const keys = live.keys();
keys.sort((a: i32, b: i32): i32 => a - b);
for (let i = 0; i < keys.length; i++) final = nodeHash(final, live.get(keys[i]));
println("final checksum " + hex64(final));
exit(0);
