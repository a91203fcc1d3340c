// as_family: an AssemblyScript job that uses the grid calls of sdk/assemblyscript/gridvm.ts: a remote fork (the child
// continues from a copy of the parent's state and gets 0), a spawn of its own module (argv[0]) as `child K`, and wait
// for each (exit codes), then wait for more (ECHILD). Runs only under gridvm with a grid host.
import { args, exit, hex64, println } from "./lib/wasi";
import { fork, parent, spawn, wait } from "../../../sdk/assemblyscript/gridvm";

const argv = args();
if (argv.length >= 3 && argv[1] == "child") {
  const k = I32.parseInt(argv[2]);
  println("as_family: spawned child " + k.toString() + ", parent set " + (parent() > 0 ? "yes" : "no"));
  exit(<u32>k);
}

// state built before the fork, on the managed heap: the child must see the same
const data = new Array<u64>(4096);
let h: u64 = 0xcbf29ce484222325;
for (let i = 0; i < data.length; i++) {
  h = (h ^ <u64>i) * 0x100000001b3;
  data[i] = h;
}
const sumOf = (a: Array<u64>): u64 => {
  let s: u64 = 0;
  for (let i = 0; i < a.length; i++) s += a[i] ^ (<u64>i << 7);
  return s;
};
const sum = sumOf(data);
println("as_family: before fork, sum " + hex64(sum));

const c = fork();
if (c == 0) {
  const again = sumOf(data);
  println("as_family: fork child, sum " + hex64(again) + ", parent set " + (parent() > 0 ? "yes" : "no"));
  exit(again == sum ? 42 : 1);
}
if (c < 0) {
  println("as_family: fork failed " + c.toString());
  exit(1);
}
const w = wait(c);
println("as_family: fork child " + (w.gpid == c ? "waited" : "not waited") + ", exit " + w.status.toString());

const s = spawn(argv[0], [argv[0], "child", "5"]);
if (s <= 0) {
  println("as_family: spawn failed " + s.toString());
  exit(1);
}
const w2 = wait(s);
println("as_family: spawned child " + (w2.gpid == s ? "waited" : "not waited") + ", exit " + w2.status.toString());
const none = wait(-1);
println("as_family: wait for more: " + (none.gpid == -12 ? "ECHILD" : none.gpid.toString()));
exit(0);
