import { link } from '../abi/link.js';
import { GuestMemory } from '../abi/memory.js';
import { SYSCALLS } from '../abi/table.js';
import { envImpls } from '../abi/wasi-env.js';
import { fdImpls } from '../abi/wasi-fd.js';
import { pathImpls } from '../abi/wasi-path.js';
import { pollImpls } from '../abi/wasi-poll.js';
import { gridImpls } from '../abi/gridvm.js';
import { RIGHTS_ALL, RIGHTS_DIR, RIGHTS_STDIN, RIGHTS_STDOUT } from '../abi/constants.js';
import { Errno, KernelError } from '../errors.js';
import type { MemFsState } from '../fs/memfs.js';
import type { FileHandle } from '../fs/types.js';
import { Vfs, type MountSpec } from '../fs/vfs.js';
import type { HostPlatform } from '../platform.js';
import { VirtualClock, type ClockState } from './clock.js';
import { DEFAULT_IDENTITY, type BlockHook, type GridIdentity, type ProcStatus } from './grid.js';
import { copyFdEntry, type FdEntry, type FdState } from './fd.js';
import { ResourceTable } from './resource-table.js';

export type { MountSpec } from '../fs/vfs.js';

export interface ProcessOptions {
  /** argv; argv[0] is the program name */
  args: string[];
  /** "K=V" strings */
  env: string[];
  /** each becomes a preopened directory fd (3, 4, ... in order) */
  mounts: MountSpec[];
  platform: HostPlatform;
  /**
   * Called synchronously with a copy of the bytes (the callee may keep it); with `borrowOutput`, with a view that
   * is valid only during the call (often of guest memory: the callee copies what it keeps).
   */
  stdout(bytes: Uint8Array): void;
  stderr(bytes: Uint8Array): void;
  /** stdout/stderr receive borrowed views, not copies (a sink that gathers output into its own buffer) */
  borrowOutput?: boolean;
  /** synchronous; null or empty means EOF */
  stdin?(max: number): Uint8Array | null;
  /** fd table capacity (default 1024): opening more fails with MFILE */
  maxFds?: number;
  /**
   * This process's grid identity. Not saved in ProcessState: pass it again at every restore (a forked child is
   * restored from its parent's state with its own). Without it, gpid()/parent()/rank()/size() answer 1/0/0/1 and
   * spawn/fork/wait fail with NOSYS.
   */
  grid?: GridIdentity;
  /** What /proc/<gpid>/status shows (a 'proc' mount); asked at every read. */
  procInfo?: (gpid: bigint) => ProcStatus | undefined;
}

/** What the VM passes to Process.imports(): its own gridvm handlers, and the hook that suspends a grid call. */
export interface VmHooks {
  yield(): void;
  tick(): void;
  memory_limit(pages: number): void;
  /** the job entered a function that never returns: do not unwind it any more (instrumentation version 9+) */
  nounwind?(): void;
  /** the unwind needs its window to reach `end` (instrumentation version 18+; see the syscall table) */
  unwind_window?(end: number): void;
  /** suspends spawn/fork/wait (see BlockHook); without it they fail with NOSYS */
  block?: BlockHook;
}

/** A mount in ProcessState: its spec, and the contents of a 'memory' mount. */
export interface MountState {
  guest: string;
  kind: 'host' | 'memory' | 'proc';
  host: string | null;
  readonly: boolean;
  memfs: MemFsState | null;
}

/**
 * The kernel's per-process state as plain data (msgpackr-encodable: numbers, strings, bigints, booleans, null,
 * Uint8Array, arrays, plain objects). Host file handles are not in it: files are re-opened by path after a restore.
 */
export interface ProcessState {
  version: 1;
  args: string[];
  env: string[];
  mounts: MountState[];
  /** preopened directories at the save (also marked in `fds`) */
  preopens: Array<{ fd: number; mount: number; name: string }>;
  fds: FdState[];
  clock: ClockState;
  stdoutBytes: number;
  stderrBytes: number;
  /** stdin bytes consumed; a restored process discards this many bytes of its new stdin before serving reads */
  stdinOffset: number;
  exitCode: number | null;
}

function stdioEntry(kind: 'stdin' | 'stdout' | 'stderr'): FdEntry {
  return {
    kind, mount: -1, path: '', offset: 0, fdflags: 0, rightsBase: kind === 'stdin' ? RIGHTS_STDIN : RIGHTS_STDOUT,
    rightsInheriting: 0n, isDir: false, read: kind === 'stdin', write: kind !== 'stdin', preopen: null, readdirCookie: 0n,
  };
}

/**
 * One WASI process: its fd table, mounts, clocks and stdio. The VM instantiates the job with `imports()`, then
 * calls `setMemory()`. `saveState()` / `new Process(opts, state)` checkpoint and restore it.
 */
export class Process {
  readonly args: string[];
  readonly env: string[];
  readonly platform: HostPlatform;
  readonly vfs: Vfs;
  readonly fds: ResourceTable<FdEntry>;
  readonly clock: VirtualClock;
  readonly memory = new GuestMemory();
  exitCode: number | undefined;
  /** @internal open file handles by fd: a cache, never saved */
  readonly handles = new Map<number, FileHandle>();
  private _stdoutBytes = 0;
  private _stderrBytes = 0;
  private stdinOffset = 0;
  private stdinSkip = 0;
  private stdinPending: Uint8Array | null = null;
  /** gathered output (bufferOutput): outLen bytes of fd outFd in outBuf; outMax 0 = write through */
  private outBuf: Uint8Array | null = null;
  private outLen = 0;
  private outFd = 1;
  private outMax = 0;

  constructor(readonly opts: ProcessOptions, state?: ProcessState) {
    this.platform = opts.platform;
    this.fds = new ResourceTable<FdEntry>(opts.maxFds ?? 1024);
    if (state) {
      if (state.mounts.length !== opts.mounts.length) {
        throw new Error(`cannot restore: the snapshot has ${state.mounts.length} mounts but ${opts.mounts.length} were given; pass the same mounts`);
      }
      this.args = state.args.map(String);
      this.env = state.env.map(String);
      state.mounts.forEach((m, i) => {
        if (String(m.kind) !== opts.mounts[i]!.kind) {
          throw new Error(`cannot restore: mount ${i} (${m.guest}) was '${m.kind}' in the snapshot but '${opts.mounts[i]!.kind}' now; pass the same mounts`);
        }
      });
      this.vfs = new Vfs(opts.mounts, opts.platform, state.mounts.map((m) => m.memfs ?? undefined), this.procSource());
      this.clock = new VirtualClock(opts.platform, state.clock);
      for (const f of state.fds) {
        const e = copyFdEntry(f);
        this.fds.insertAt(Number(f.fd), e);
        if (e.ino !== undefined) this.vfs.mount(e.mount).memfs?.retain(e.ino);
      }
      this._stdoutBytes = Number(state.stdoutBytes);
      this._stderrBytes = Number(state.stderrBytes);
      this.stdinOffset = Number(state.stdinOffset);
      this.stdinSkip = this.stdinOffset;
      this.exitCode = state.exitCode === null || state.exitCode === undefined ? undefined : Number(state.exitCode);
    } else {
      this.args = opts.args.slice();
      this.env = opts.env.slice();
      this.vfs = new Vfs(opts.mounts, opts.platform, undefined, this.procSource());
      this.clock = new VirtualClock(opts.platform);
      this.fds.insert(stdioEntry('stdin'));
      this.fds.insert(stdioEntry('stdout'));
      this.fds.insert(stdioEntry('stderr'));
      for (const m of this.vfs.mounts) {
        this.fds.insert({
          kind: 'dir', mount: m.index, path: '', offset: 0, fdflags: 0, rightsBase: RIGHTS_DIR, rightsInheriting: RIGHTS_ALL,
          isDir: true, read: true, write: false, preopen: m.guest, readdirCookie: 0n,
        });
      }
    }
  }

  get stdoutBytes(): number {
    return this._stdoutBytes;
  }
  get stderrBytes(): number {
    return this._stderrBytes;
  }

  setMemory(mem: WebAssembly.Memory): void {
    this.memory.set(mem);
  }

  /**
   * { wasi_snapshot_preview1: every preview1 function, gridvm: the VM's yield/tick/memory_limit unchanged plus the
   * grid calls }, linked from the table. (A plain record of handlers is accepted too, as before VmHooks existed.)
   * With `used` ("ns.name" keys of the module's imports), only those are linked.
   */
  imports(hooks: VmHooks | Readonly<Record<string, (...a: any[]) => any>>, used?: ReadonlySet<string>): WebAssembly.Imports {
    const h = hooks as VmHooks;
    // groups of functions that link() looks up in order, not merged into one object per namespace (an Object.assign
    // of the four WASI groups cost ~1.7 µs per process), in the order that lets the group a merge let win come first
    const gridvm = [gridImpls(this, h.block), { yield: h.yield, tick: h.tick, memory_limit: h.memory_limit, nounwind: h.nounwind ?? noUnwindHost, unwind_window: h.unwind_window ?? noUnwindHost }];
    const wasi = [pollImpls(this), pathImpls(this), fdImpls(this), envImpls(this)];
    return link(SYSCALLS, { wasi_snapshot_preview1: wasi, gridvm }, used);
  }

  /** The grid identity given by the host, if any. */
  get grid(): GridIdentity | undefined {
    return this.opts.grid;
  }

  /** The grid identity, or the lone-process default. */
  get identity(): GridIdentity {
    return this.opts.grid ?? DEFAULT_IDENTITY;
  }

  /**
   * /proc/<gpid>/status of `gpid`, from the host's procInfo. This process always has one: without procInfo (or if it
   * does not know us) a minimal status is made from the identity.
   */
  procStatus(gpid: bigint): ProcStatus | undefined {
    const s = this.opts.procInfo?.(gpid);
    if (s || gpid !== this.identity.gpid) return s;
    const name = (this.args[0] ?? '').split('/').pop() ?? '';
    return { gpid, name, state: this.exitCode === undefined ? 'running' : 'exited', node: this.identity.node,
      cpuTimeMs: 0, fuelUsed: 0, memoryPeakBytes: 0, checkpoints: 0, migrations: 0 };
  }

  private procSource(): { self: () => bigint; status: (gpid: bigint) => ProcStatus | undefined } {
    return { self: () => this.identity.gpid, status: (g) => this.procStatus(g) };
  }

  saveState(): ProcessState {
    const fds: FdState[] = this.fds.entries().map(([fd, e]) => ({ fd, ...copyFdEntry(e) }));
    return {
      version: 1,
      args: this.args.slice(),
      env: this.env.slice(),
      mounts: this.vfs.mounts.map((m, i) => ({
        guest: this.opts.mounts[i]!.guest, kind: m.kind, host: this.opts.mounts[i]!.host ?? null, readonly: m.readonly,
        memfs: m.memfs ? m.memfs.save() : null,
      })),
      preopens: fds.filter((f) => f.preopen !== null).map((f) => ({ fd: f.fd, mount: f.mount, name: f.preopen! })),
      fds,
      clock: this.clock.save(),
      stdoutBytes: this._stdoutBytes,
      stderrBytes: this._stderrBytes,
      stdinOffset: this.stdinOffset,
      exitCode: this.exitCode ?? null,
    };
  }

  // ---- kernel services used by the ops ----

  /** The open file handle of a regular-file fd, re-opened lazily after a restore. */
  handle(fd: number, e: FdEntry): FileHandle {
    let h = this.handles.get(fd);
    if (!h) {
      const ref = { path: e.path, read: e.read, write: e.write, ...(e.ino !== undefined ? { ino: e.ino } : {}) };
      h = this.vfs.mount(e.mount).fs.reopen(ref);
      this.handles.set(fd, h);
    }
    return h;
  }

  /** Close an fd: drop its handle and let an unlinked in-memory inode go. */
  closeFd(fd: number): void {
    const e = this.fds.remove(fd);
    const h = this.handles.get(fd);
    this.handles.delete(fd);
    if (e.kind === 'file') {
      h?.close();
      this.vfs.mount(e.mount).fs.release?.({ path: e.path, read: e.read, write: e.write, ...(e.ino !== undefined ? { ino: e.ino } : {}) });
    }
  }

  writeStdout(bytes: Uint8Array): void {
    this._stdoutBytes += bytes.length;
    if (this.outLen) this.flushOutput();
    this.opts.stdout(bytes);
  }

  writeStderr(bytes: Uint8Array): void {
    this._stderrBytes += bytes.length;
    if (this.outLen) this.flushOutput();
    this.opts.stderr(bytes);
  }

  /**
   * Coalesce the job's stdout/stderr writes: from now on, fd_write to either gathers its bytes (up to `bytes` of
   * them) and the sinks get them at flushOutput(), in the order written (a write to the other stream, a read of
   * stdin, a sleep in poll_oneoff or a full buffer flushes first). Whoever turns it on flushes: the Machine does at
   * every safe point (each yield and tick) and whenever run() returns, so a checkpoint's stdoutBytes/stderrBytes
   * always equal what the sinks have received. 0 turns it off (after a flush). wasi-libc line-buffers stdio that
   * reports CHARACTER_DEVICE, so a printf loop is one host write per line without this.
   */
  bufferOutput(bytes: number): void {
    this.flushOutput();
    this.outMax = Math.max(0, Math.floor(bytes));
    if (!this.outMax) this.outBuf = null;
  }

  /** Hand the gathered stdout/stderr bytes to their sink (see bufferOutput); nothing to do when none are held. */
  flushOutput(): void {
    const n = this.outLen;
    if (!n) return;
    this.outLen = 0;
    const b = this.opts.borrowOutput ? this.outBuf!.subarray(0, n) : this.outBuf!.slice(0, n);
    if (this.outFd === 1) this.opts.stdout(b);
    else this.opts.stderr(b);
  }

  /**
   * @internal fd_write to stdout (1) or stderr (2): `total` bytes in `iovs`. Returns false when the bytes are not
   * gathered (buffering off, or more than the buffer holds): the caller then writes them through.
   */
  gatherOutput(fd: 1 | 2, iovs: Uint8Array[], total: number): boolean {
    if (total > this.outMax) return false;
    if (this.outLen && (this.outFd !== fd || this.outLen + total > this.outMax)) this.flushOutput();
    let buf = this.outBuf;
    if (!buf || buf.length < this.outLen + total) {
      let size = buf ? buf.length : Math.min(this.outMax, 4096);
      while (size < this.outLen + total) size = Math.min(this.outMax, size * 2);
      const grown = new Uint8Array(size);
      if (buf && this.outLen) grown.set(buf.subarray(0, this.outLen));
      this.outBuf = buf = grown;
    }
    let o = this.outLen;
    for (const v of iovs) {
      buf.set(v, o);
      o += v.length;
    }
    this.outLen = o;
    this.outFd = fd;
    if (fd === 1) this._stdoutBytes += total;
    else this._stderrBytes += total;
    return true;
  }

  /** Up to `max` bytes of stdin (empty = EOF), after discarding what a restored process had already consumed. */
  readStdin(max: number): Uint8Array {
    // a prompt written before the read reaches the user first
    if (this.outLen) this.flushOutput();
    const src = this.opts.stdin;
    if (!src || max <= 0) return new Uint8Array(0);
    while (this.stdinSkip > 0) {
      const chunk = this.pullStdin(Math.min(this.stdinSkip, 65536));
      if (chunk.length === 0) {
        this.stdinSkip = 0;
        return chunk;
      }
      this.stdinSkip -= chunk.length;
    }
    const out = this.pullStdin(max);
    this.stdinOffset += out.length;
    return out;
  }

  private pullStdin(max: number): Uint8Array {
    let b: Uint8Array;
    if (this.stdinPending) {
      b = this.stdinPending;
      this.stdinPending = null;
    } else {
      b = this.opts.stdin!(max) ?? new Uint8Array(0);
    }
    if (b.length > max) {
      this.stdinPending = b.subarray(max);
      b = b.subarray(0, max);
    }
    return b;
  }

  /** Record proc_exit. */
  exit(code: number): void {
    this.exitCode = code;
  }

  /** The fd's entry, or BADF. */
  fd(fd: number): FdEntry {
    return this.fds.require(fd);
  }

  /** The fd's entry if it is a directory; BADF if closed, NOTDIR otherwise. */
  dirFd(fd: number): FdEntry {
    const e = this.fds.require(fd);
    if (!e.isDir) throw new KernelError(Errno.NOTDIR, `fd ${fd} is not a directory`);
    return e;
  }
}

/** gridvm.nounwind / unwind_window for hosts that pass plain handlers (an original, uninstrumented module never calls them). */
function noUnwindHost(): never {
  throw new Error('gridvm.nounwind / unwind_window: this host runs instrumented jobs without unwinding control; use the vm Machine');
}
