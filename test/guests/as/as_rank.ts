// as_rank: an AssemblyScript job that prints its grid identity through sdk/assemblyscript/gridvm.ts (rank, size,
// and whether it has a GPID/parent). Without a grid host: rank 0 of 1.
import { println, exit } from "./lib/wasi";
import { gpid, parent, rank, size } from "../../../sdk/assemblyscript/gridvm";

println("as_rank: rank " + rank().toString() + " of " + size().toString());
println("as_rank: gpid " + gpid().toString() + ", parent " + parent().toString());
exit(0);
