/** One entry of a process's fd table: plain data, saved as-is in ProcessState. */
export interface FdEntry {
  kind: 'stdin' | 'stdout' | 'stderr' | 'file' | 'dir';
  /** mount index, -1 for stdio */
  mount: number;
  /** normalised mount-relative path ('' = the mount root) */
  path: string;
  /** inode of an in-memory file (keeps an unlinked-but-open file alive) */
  ino?: number;
  /** file offset (regular files) */
  offset: number;
  fdflags: number;
  rightsBase: bigint;
  rightsInheriting: bigint;
  isDir: boolean;
  /** opened for reading / writing */
  read: boolean;
  write: boolean;
  /** preopen name for fd_prestat_dir_name, or null */
  preopen: string | null;
  /** last readdir cookie handed out (informational: readdir is stateless, the cookie is an index) */
  readdirCookie: bigint;
}

/** An fd in ProcessState. */
export interface FdState extends FdEntry {
  fd: number;
}

export function copyFdEntry(e: FdEntry): FdEntry {
  const c: FdEntry = {
    kind: e.kind, mount: Number(e.mount), path: String(e.path), offset: Number(e.offset), fdflags: Number(e.fdflags),
    rightsBase: BigInt(e.rightsBase), rightsInheriting: BigInt(e.rightsInheriting), isDir: Boolean(e.isDir),
    read: Boolean(e.read), write: Boolean(e.write), preopen: e.preopen ?? null, readdirCookie: BigInt(e.readdirCookie ?? 0n),
  };
  if (e.ino !== undefined && e.ino !== null) c.ino = Number(e.ino);
  return c;
}
