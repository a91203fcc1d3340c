// A minimal WASI preview1 binding for the AssemblyScript guests (AssemblyScript 0.28 has no built-in WASI).
// Only what the guests use: fd_write, proc_exit and the arguments, imported directly from wasi_snapshot_preview1, plus an abort
// handler (wired with `--use abort=lib/wasi/wasiAbort`) so the module imports nothing from "env".

@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: u32, nwritten: usize): u16;

@external("wasi_snapshot_preview1", "proc_exit")
declare function proc_exit(code: u32): void;

@external("wasi_snapshot_preview1", "args_sizes_get")
declare function args_sizes_get(argc: usize, bufSize: usize): u16;

@external("wasi_snapshot_preview1", "args_get")
declare function args_get(argv: usize, buf: usize): u16;

export const STDOUT: u32 = 1;
export const STDERR: u32 = 2;

// One iovec + one nwritten word, in static memory (not managed by the GC).
const iov: usize = memory.data(16);

/** Writes all `len` bytes at `ptr` to `fd`; exits with 70 if the write fails. */
export function writeBytes(fd: u32, ptr: usize, len: usize): void {
  while (len > 0) {
    store<u32>(iov, <u32>ptr);
    store<u32>(iov, <u32>len, 4);
    const err = fd_write(fd, iov, 1, iov + 8);
    if (err != 0) proc_exit(70);
    const n = <usize>load<u32>(iov, 8);
    ptr += n;
    len -= n;
  }
}

/** Writes `s` as UTF-8 to `fd`. */
export function write(fd: u32, s: string): void {
  const buf = String.UTF8.encode(s);
  writeBytes(fd, changetype<usize>(buf), <usize>buf.byteLength);
}

export function println(s: string): void {
  write(STDOUT, s + "\n");
}

export function eprintln(s: string): void {
  write(STDERR, s + "\n");
}

export function exit(code: u32): void {
  proc_exit(code);
}

/** Hex of a u64, zero-padded to 16 digits. */
export function hex64(x: u64): string {
  let s = "";
  for (let i = 15; i >= 0; i--) {
    const d = <i32>((x >> (<u64>i * 4)) & 0xf);
    s += String.fromCharCode(d < 10 ? 48 + d : 87 + d);
  }
  return s;
}

/** Replaces AssemblyScript's default abort (an "env.abort" import): prints the message to stderr, exits 134. */
export function wasiAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let s = "abort: " + (message !== null ? message : "(no message)");
  if (fileName !== null) s += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  eprintln(s);
  proc_exit(134);
}

/** The job's arguments (argv[0] first), decoded as UTF-8; exits with 71 if the host refuses them. */
export function args(): string[] {
  const sizes = memory.data(8);
  if (args_sizes_get(sizes, sizes + 4) != 0) proc_exit(71);
  const argc = <i32>load<u32>(sizes);
  const ptrs = new ArrayBuffer(argc * 4);
  const buf = new ArrayBuffer(<i32>load<u32>(sizes, 4));
  if (args_get(changetype<usize>(ptrs), changetype<usize>(buf)) != 0) proc_exit(71);
  const out = new Array<string>(argc);
  for (let i = 0; i < argc; i++) {
    const p = <usize>load<u32>(changetype<usize>(ptrs) + <usize>i * 4);
    let n: usize = 0;
    while (load<u8>(p + n) != 0) n++;
    out[i] = String.UTF8.decodeUnsafe(p, n);
  }
  return out;
}
