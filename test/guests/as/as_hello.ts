// as_hello: the smallest AssemblyScript job. Prints one line through WASI fd_write and exits 0 via proc_exit.
// Built with --exportStart _start: this top-level code is the body of the exported `_start`.
import { println, exit } from "./lib/wasi";

println("hello from gridvm (AssemblyScript)");
exit(0);
