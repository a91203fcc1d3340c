import { Errno, KernelError } from '../errors.js';
import type { HostPlatform } from '../platform.js';
import { HostDirFs } from './hostfs.js';
import { MemFs, type MemFsState } from './memfs.js';
import { ProcFs, type ProcSource } from './procfs.js';
import { ESCAPE_ERRNO, joinPath, normaliseGuestName, splitGuestPath, splitPath } from './path.js';
import type { FsBackend, Stat } from './types.js';

/**
 * How a directory is mounted into the guest. `--dir HOST::GUEST` gives kind 'host'; 'proc' is the read-only
 * process view (`{ guest: '/proc', kind: 'proc' }`, served from ProcessOptions.procInfo).
 */
export interface MountSpec {
  guest: string;
  kind: 'host' | 'memory' | 'proc';
  host?: string;
  readonly?: boolean;
}

export interface Mount {
  index: number;
  /** the preopen name the guest sees (fd_prestat_dir_name) */
  guest: string;
  kind: 'host' | 'memory' | 'proc';
  readonly: boolean;
  fs: FsBackend;
  /** set for 'memory' mounts */
  memfs?: MemFs;
}

/** The result of resolving a guest path: the mount, the mount-relative path, and its lstat (null: absent). */
export interface Resolved {
  mount: Mount;
  path: string;
  stat: Stat | null;
  /** true when `path` is the base directory itself (the path was '.', 'a/..', ...) */
  isBase: boolean;
}

const MAX_SYMLINKS = 40;

/** The mounts of one process, and path resolution confined to a base directory. */
export class Vfs {
  readonly mounts: Mount[] = [];

  constructor(
    specs: readonly MountSpec[],
    platform: HostPlatform,
    memStates?: ReadonlyArray<MemFsState | undefined>,
    proc?: ProcSource,
  ) {
    specs.forEach((spec, index) => {
      const readonly = spec.readonly === true;
      const guest = normaliseGuestName(spec.guest);
      if (spec.kind === 'proc') {
        const src = proc ?? { self: () => 1n, status: () => undefined };
        this.mounts.push({ index, guest, kind: 'proc', readonly: true, fs: new ProcFs(src, BigInt(index + 1)) });
      } else if (spec.kind === 'memory') {
        const memfs = new MemFs(() => platform.realtimeNs(), readonly, BigInt(index + 1), memStates?.[index]);
        this.mounts.push({ index, guest, kind: 'memory', readonly, fs: memfs, memfs });
      } else {
        if (!platform.hostFs) throw new Error(`mount ${spec.guest}: this platform has no host file system; use a 'memory' mount`);
        if (!spec.host) throw new Error(`mount ${spec.guest}: kind 'host' needs a host directory (--dir HOST::GUEST)`);
        let st;
        try {
          st = platform.hostFs.stat(spec.host, true);
        } catch (e) {
          throw new Error(`mount ${spec.guest}: cannot use host directory ${spec.host} (${(e as Error).message}); create it or fix --dir`, { cause: e });
        }
        if (st.kind !== 'dir') throw new Error(`mount ${spec.guest}: host path ${spec.host} is not a directory`);
        this.mounts.push({ index, guest, kind: 'host', readonly, fs: new HostDirFs(platform.hostFs, spec.host, readonly) });
      }
    });
  }

  mount(index: number): Mount {
    const m = this.mounts[index];
    if (!m) throw new KernelError(Errno.BADF, `no mount ${index}`);
    return m;
  }

  /**
   * Resolve `guestPath` relative to directory `base` of mount `mountIndex`. The path is normalised component by
   * component; '..' may not leave `base`, absolute paths and absolute symlink targets are refused (ESCAPE_ERRNO),
   * symlinks in parent components are always followed, the final one only if `follow` (or a trailing slash).
   */
  resolve(mountIndex: number, base: string, guestPath: string, follow: boolean): Resolved {
    const mount = this.mount(mountIndex);
    const fs = mount.fs;
    const { comps, trailingSlash } = splitGuestPath(guestPath);
    const stack = splitPath(base);
    const rootLen = stack.length;
    const pending = comps.slice();
    let links = 0;
    let stat: Stat | null = null;
    let needStat = true;
    while (pending.length > 0) {
      const c = pending.shift()!;
      if (c === '..') {
        if (stack.length <= rootLen) throw new KernelError(ESCAPE_ERRNO, `path "${guestPath}" leaves its directory`);
        stack.pop();
        needStat = true;
        continue;
      }
      stack.push(c);
      const last = pending.length === 0;
      const st = fs.lstat(joinPath(stack));
      if (st === null) {
        if (!last) throw new KernelError(Errno.NOENT, `no such directory: ${joinPath(stack)}`);
        stat = null;
        needStat = false;
        break;
      }
      if (st.kind === 'symlink' && (!last || follow || trailingSlash)) {
        if (++links > MAX_SYMLINKS) throw new KernelError(Errno.LOOP, `too many symbolic links in "${guestPath}"`);
        const target = fs.readlink(joinPath(stack));
        if (target.startsWith('/')) throw new KernelError(ESCAPE_ERRNO, `symlink ${joinPath(stack)} -> ${target} points outside its mount`);
        if (target === '') throw new KernelError(Errno.NOENT);
        stack.pop();
        pending.unshift(...target.split('/').filter((t) => t !== '' && t !== '.'));
        needStat = true;
        continue;
      }
      if (!last && st.kind !== 'dir') throw new KernelError(Errno.NOTDIR, `not a directory: ${joinPath(stack)}`);
      stat = st;
      needStat = false;
    }
    const path = joinPath(stack);
    if (needStat) stat = fs.lstat(path);
    if (trailingSlash && stat && stat.kind !== 'dir') throw new KernelError(Errno.NOTDIR, `not a directory: ${path}`);
    return { mount, path, stat, isBase: stack.length === rootLen };
  }
}
