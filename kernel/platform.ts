/**
 * What a runtime (Node, browser) gives the platform-free kernel and VM. Passed in through constructors as one
 * value; never set through a module-level global.
 */
export interface HostPlatform {
  /** Wall-clock time, ns since the Unix epoch. */
  realtimeNs(): bigint;
  /** Monotonic time in ns, arbitrary origin. */
  monotonicNs(): bigint;
  /** Fill with cryptographically strong random bytes. */
  randomFill(buf: Uint8Array): void;
  /** Block the calling thread for up to `ms` milliseconds (Atomics.wait on a private SharedArrayBuffer). */
  sleepMs(ms: number): void;
  /** Host file-system access for `--dir HOST::GUEST` mounts; absent in browsers. */
  hostFs?: HostFs;
}

/** Stat of a host file, as the kernel needs it. Times in ns. */
export interface HostStat {
  dev: bigint;
  ino: bigint;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  nlink: bigint;
  size: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/**
 * Synchronous host file operations on absolute host paths. The kernel has already normalised and confined every
 * path to its mount before calling these (see kernel/fs). Errors are thrown as KernelError with an errno; the
 * runtime maps host error codes through its one table.
 */
export interface HostFs {
  stat(path: string, followSymlinks: boolean): HostStat;
  /** Opens and returns an opaque host handle. flags: read/write/create/excl/trunc/append. */
  open(path: string, flags: { read: boolean; write: boolean; create: boolean; excl: boolean; trunc: boolean; append: boolean; directory: boolean }): number;
  close(handle: number): void;
  /** Read up to buf.length bytes at `position` into buf; returns bytes read (0 = EOF). */
  read(handle: number, buf: Uint8Array, position: bigint): number;
  /** Write buf at `position`; returns bytes written. */
  write(handle: number, buf: Uint8Array, position: bigint): number;
  fstat(handle: number): HostStat;
  ftruncate(handle: number, size: bigint): void;
  fsync(handle: number): void;
  readdir(path: string): Array<{ name: string; kind: HostStat['kind']; ino: bigint }>;
  mkdir(path: string): void;
  rmdir(path: string): void;
  unlink(path: string): void;
  rename(from: string, to: string): void;
  readlink(path: string): string;
  symlink(target: string, path: string): void;
  /** Hard link (optional: without it path_link returns NOTSUP). */
  link?(existing: string, newPath: string): void;
  utimes(path: string, atimeNs: bigint, mtimeNs: bigint): void;
  /** realpath of an existing path, for symlink-escape checks. */
  realpath(path: string): string;
}
