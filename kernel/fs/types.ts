/** Types shared by the file-system backends (in-memory and host-directory mounts). */

export type FileKind = 'file' | 'dir' | 'symlink' | 'other';

/** A file's metadata. Times in ns since the epoch. */
export interface Stat {
  dev: bigint;
  ino: bigint;
  kind: FileKind;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

export interface DirEntry {
  name: string;
  kind: FileKind;
  ino: bigint;
}

export interface OpenFlags {
  read: boolean;
  write: boolean;
  create: boolean;
  excl: boolean;
  trunc: boolean;
}

/** An open regular file. Positions are explicit: the fd keeps the offset. Not serialisable (a cache). */
export interface FileHandle {
  read(buf: Uint8Array, pos: number): number;
  write(buf: Uint8Array, pos: number): number;
  stat(): Stat;
  truncate(size: number): void;
  sync(): void;
  close(): void;
}

/** Identity of an open file that survives a checkpoint: its path, and for in-memory files its inode. */
export interface FileRef {
  path: string;
  ino?: number;
  read: boolean;
  write: boolean;
}

/**
 * One mounted file system. Every `path` is relative to the mount root, already normalised by the VFS, with '/'
 * separators and no '.', '..' or symlink in any parent component ('' = the mount root). Operations never follow a
 * symlink in the final component unless they say so. Errors are thrown as KernelError.
 */
export interface FsBackend {
  readonly readonly: boolean;
  /** lstat; null if the path does not exist. */
  lstat(path: string): Stat | null;
  readlink(path: string): string;
  readdir(path: string): DirEntry[];
  /** Open (and maybe create / truncate) a regular file. */
  open(path: string, flags: OpenFlags): { handle: FileHandle; ino?: number };
  /** Re-open a file after a restore, by its saved reference (never creates or truncates). */
  reopen(ref: FileRef): FileHandle;
  /** Called when the last fd on an in-memory file closes (lets an unlinked inode go). */
  release?(ref: FileRef): void;
  mkdir(path: string): void;
  rmdir(path: string): void;
  unlink(path: string): void;
  rename(from: string, to: string): void;
  symlink(target: string, path: string): void;
  link(from: string, to: string): void;
  /** Set times; null leaves a time unchanged. */
  setTimes(path: string, atim: bigint | null, mtim: bigint | null): void;
}
