/** WASI preview1 constants (from the preview1 witx). */

export const Filetype = {
  UNKNOWN: 0, BLOCK_DEVICE: 1, CHARACTER_DEVICE: 2, DIRECTORY: 3, REGULAR_FILE: 4, SOCKET_DGRAM: 5,
  SOCKET_STREAM: 6, SYMBOLIC_LINK: 7,
} as const;

export const ClockId = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME_ID: 2, THREAD_CPUTIME_ID: 3 } as const;

export const Whence = { SET: 0, CUR: 1, END: 2 } as const;

export const Oflags = { CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 } as const;

export const Fdflags = { APPEND: 1, DSYNC: 2, NONBLOCK: 4, RSYNC: 8, SYNC: 16 } as const;

export const Lookupflags = { SYMLINK_FOLLOW: 1 } as const;

export const Fstflags = { ATIM: 1, ATIM_NOW: 2, MTIM: 4, MTIM_NOW: 8 } as const;

export const EventType = { CLOCK: 0, FD_READ: 1, FD_WRITE: 2 } as const;

export const Subclockflags = { ABSTIME: 1 } as const;

export const Eventrwflags = { HANGUP: 1 } as const;

export const Rights = {
  FD_DATASYNC: 1n << 0n, FD_READ: 1n << 1n, FD_SEEK: 1n << 2n, FD_FDSTAT_SET_FLAGS: 1n << 3n, FD_SYNC: 1n << 4n,
  FD_TELL: 1n << 5n, FD_WRITE: 1n << 6n, FD_ADVISE: 1n << 7n, FD_ALLOCATE: 1n << 8n,
  PATH_CREATE_DIRECTORY: 1n << 9n, PATH_CREATE_FILE: 1n << 10n, PATH_LINK_SOURCE: 1n << 11n,
  PATH_LINK_TARGET: 1n << 12n, PATH_OPEN: 1n << 13n, FD_READDIR: 1n << 14n, PATH_READLINK: 1n << 15n,
  PATH_RENAME_SOURCE: 1n << 16n, PATH_RENAME_TARGET: 1n << 17n, PATH_FILESTAT_GET: 1n << 18n,
  PATH_FILESTAT_SET_SIZE: 1n << 19n, PATH_FILESTAT_SET_TIMES: 1n << 20n, FD_FILESTAT_GET: 1n << 21n,
  FD_FILESTAT_SET_SIZE: 1n << 22n, FD_FILESTAT_SET_TIMES: 1n << 23n, PATH_SYMLINK: 1n << 24n,
  PATH_REMOVE_DIRECTORY: 1n << 25n, PATH_UNLINK_FILE: 1n << 26n, POLL_FD_READWRITE: 1n << 27n,
  SOCK_SHUTDOWN: 1n << 28n, SOCK_ACCEPT: 1n << 29n,
} as const;

export const RIGHTS_ALL = (1n << 30n) - 1n;

/** Rights a regular file can have. */
export const RIGHTS_FILE =
  Rights.FD_DATASYNC | Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_SYNC | Rights.FD_TELL |
  Rights.FD_WRITE | Rights.FD_ADVISE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_GET | Rights.FD_FILESTAT_SET_SIZE |
  Rights.FD_FILESTAT_SET_TIMES | Rights.POLL_FD_READWRITE;

/** Rights a directory can have (itself; its inheriting rights are RIGHTS_ALL). */
export const RIGHTS_DIR =
  Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_SYNC | Rights.FD_ADVISE | Rights.PATH_CREATE_DIRECTORY |
  Rights.PATH_CREATE_FILE | Rights.PATH_LINK_SOURCE | Rights.PATH_LINK_TARGET | Rights.PATH_OPEN | Rights.FD_READDIR |
  Rights.PATH_READLINK | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_GET |
  Rights.PATH_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_TIMES | Rights.FD_FILESTAT_GET |
  Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY | Rights.PATH_UNLINK_FILE;

/** stdin/stdout/stderr: no FD_SEEK / FD_TELL, so wasi-libc's isatty() sees a terminal. */
export const RIGHTS_STDIN = Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE;
export const RIGHTS_STDOUT = Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE;

/** Byte sizes of preview1 structs. */
export const SIZE = { IOVEC: 8, FILESTAT: 64, FDSTAT: 24, PRESTAT: 8, DIRENT: 24, SUBSCRIPTION: 48, EVENT: 32 } as const;
