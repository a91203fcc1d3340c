import { afterAll, describe, it, expect } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { Errno, ProcExit, ResourceTable, type HostPlatform, type MountSpec, type ProcessState } from '../../kernel/index.js';
import { createNodePlatform } from '../../runtime-node/platform.js';
import { Guest, OFLAGS, RIGHTS_RO, dec, enc, tempDir } from './kernel-helpers.js';

const host = tempDir();
afterAll(() => host.cleanup());

/** msgpack round trip: what a checkpoint file does. */
function roundTrip(s: ProcessState): ProcessState {
  return unpack(pack(s)) as ProcessState;
}

/** Assert a value is plain data: numbers, strings, bigints, booleans, null, Uint8Array, arrays, plain objects. */
function assertPlain(v: unknown, path = 'state'): void {
  if (v === null || ['number', 'string', 'bigint', 'boolean'].includes(typeof v)) return;
  if (v instanceof Uint8Array) return;
  if (Array.isArray(v)) return v.forEach((x, i) => assertPlain(x, `${path}[${i}]`));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v as object)) {
      if (x === undefined) throw new Error(`${path}.${k} is undefined`);
      assertPlain(x, `${path}.${k}`);
    }
    return;
  }
  throw new Error(`${path} is not plain data: ${Object.prototype.toString.call(v)}`);
}

describe('saveState and restore', () => {
  it('saveState is plain msgpack-safe data that restores fds at the same offsets and memfs contents intact', () => {
    const hostDir = join(host.dir, 'h1');
    mkdirSync(hostDir);
    const mounts: MountSpec[] = [{ guest: '/mem', kind: 'memory' }, { guest: '/host', kind: 'host', host: hostDir }];
    const g = new Guest({ args: ['prog', 'a'], env: ['X=1'], mounts });
    g.pathCall('path_create_directory', 3, 'dir');
    const mf = g.openOk(3, 'dir/file.bin', OFLAGS.CREAT);
    g.write(mf, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    g.seek(mf, 3n, 0);
    const [pt, lt] = g.bytes('dir/file.bin');
    const [pl, ll] = g.bytes('link');
    expect(g.call('path_symlink', pt, lt, 3, pl, ll)).toBe(0);
    expect(g.call('fd_filestat_set_times', mf, 111n, 222n, 1 | 4)).toBe(0);
    const hf = g.openOk(4, 'h.txt', OFLAGS.CREAT);
    g.write(hf, 'host-data');
    g.seek(hf, 5n, 0);
    const af = g.openOk(3, 'app', OFLAGS.CREAT, undefined, 1);
    g.write(af, 'one');
    g.write(1, 'out!');
    g.write(2, 'er');

    const saved = g.proc.saveState();
    assertPlain(saved);
    expect(saved.preopens).toEqual([{ fd: 3, mount: 0, name: '/mem' }, { fd: 4, mount: 1, name: '/host' }]);
    expect(saved.fds.find((f) => f.fd === mf)).toMatchObject({ kind: 'file', mount: 0, path: 'dir/file.bin', offset: 3 });
    expect(saved.fds.find((f) => f.fd === hf)).toMatchObject({ kind: 'file', mount: 1, path: 'h.txt', offset: 5 });
    expect(saved.mounts[1]!.memfs).toBeNull();
    const state = roundTrip(saved);

    const r = new Guest({ args: ['ignored'], mounts, state });
    expect(r.proc.args).toEqual(['prog', 'a']);
    expect(r.proc.env).toEqual(['X=1']);
    expect(r.proc.stdoutBytes).toBe(4);
    expect(r.proc.stderrBytes).toBe(2);
    expect(Array.from(r.readFd(mf, 10)[1])).toEqual([4, 5, 6, 7, 8]);
    expect(dec.decode(r.readFd(hf, 10)[1])).toBe('data');
    r.write(af, 'two');
    const ra = r.openOk(3, 'app', 0, RIGHTS_RO);
    expect(dec.decode(r.readFd(ra, 10)[1])).toBe('onetwo');
    expect(ra).toBe(8);
    const lk = r.openOk(3, 'link', 0, RIGHTS_RO);
    expect(Array.from(r.readFd(lk, 3)[1])).toEqual([1, 2, 3]);
    const st = r.filestat(mf);
    expect([st.atim, st.mtim, st.size]).toEqual([111n, 222n, 8n]);
    const p = r.alloc(8);
    expect(r.call('fd_prestat_get', 4, p)).toBe(0);
    expect(r.u32(p + 4)).toBe(5);
    // writes after the restore still reach the host file
    r.seek(hf, 0n, 2);
    r.write(hf, '+more');
    expect(readFileSync(join(hostDir, 'h.txt'), 'utf8')).toBe('host-data+more');
  });

  it('saveState is a deep copy: later writes do not change it', () => {
    const g = new Guest();
    const fd = g.openOk(3, 'f', OFLAGS.CREAT);
    g.write(fd, 'abc');
    const s = g.proc.saveState();
    g.seek(fd, 0n, 0);
    g.write(fd, 'XYZW');
    g.pathCall('path_create_directory', 3, 'later');
    const node = s.mounts[0]!.memfs!.nodes.find((x) => x.kind === 'file')!;
    expect(dec.decode(node.data)).toBe('abc');
    expect(s.fds.find((f) => f.fd === fd)!.offset).toBe(3);
    expect(s.mounts[0]!.memfs!.nodes.filter((x) => x.kind === 'dir')).toHaveLength(1);
  });

  it('the monotonic clock does not go backwards after a restore on a host whose clock is behind', () => {
    const base = createNodePlatform();
    let a = 5_000_000_000_000n;
    const pa: HostPlatform = { ...base, monotonicNs: () => a };
    const g = new Guest({ platform: pa });
    const out = g.alloc(8);
    a += 1_000_000n;
    g.call('clock_time_get', 1, 0n, out);
    const before = g.u64(out);
    const state = roundTrip(g.proc.saveState());
    let b = 10n;
    const pb: HostPlatform = { ...base, monotonicNs: () => b };
    const r = new Guest({ platform: pb, state });
    const o2 = r.alloc(8);
    r.call('clock_time_get', 1, 0n, o2);
    expect(r.u64(o2)).toBeGreaterThanOrEqual(before);
    b += 500n;
    r.call('clock_time_get', 1, 0n, o2);
    expect(r.u64(o2)).toBe(before + 500n);
    // cputime keeps counting from the original start
    r.call('clock_time_get', 2, 0n, o2);
    expect(r.u64(o2)).toBe(1_000_000n + 500n);
  });

  it('a restored process discards the stdin bytes already consumed', () => {
    const src = (text: string) => {
      let data = enc.encode(text);
      return (max: number): Uint8Array | null => {
        const c = data.subarray(0, Math.min(max, 2)); // a source that returns small chunks
        data = data.subarray(c.length);
        return c;
      };
    };
    const g = new Guest({ stdin: src('abcdefgh') });
    expect(dec.decode(g.readFd(0, 2)[1])).toBe('ab');
    expect(dec.decode(g.readFd(0, 1)[1])).toBe('c');
    const state = roundTrip(g.proc.saveState());
    expect(state.stdinOffset).toBe(3);
    const r = new Guest({ stdin: src('abcdefgh'), state });
    expect(dec.decode(r.readFd(0, 8)[1])).toBe('de');
    expect(dec.decode(r.readFd(0, 8)[1])).toBe('fg');
    expect(r.proc.saveState().stdinOffset).toBe(7);
  });

  it('an unlinked but open in-memory file survives a restore', () => {
    const g = new Guest();
    const fd = g.openOk(3, 'tmp', OFLAGS.CREAT);
    g.write(fd, 'ghost');
    expect(g.pathCall('path_unlink_file', 3, 'tmp')).toBe(0);
    g.seek(fd, 1n, 0);
    const r = new Guest({ state: roundTrip(g.proc.saveState()) });
    expect(dec.decode(r.readFd(fd, 10)[1])).toBe('host'); // 'ghost' from offset 1
    expect(r.open(3, 'tmp')[0]).toBe(Errno.NOENT);
    // closing the last fd drops the inode
    r.call('fd_close', fd);
    expect(r.proc.saveState().mounts[0]!.memfs!.nodes.filter((x) => x.kind === 'file')).toHaveLength(0);
  });

  it('closed, renumbered and reopened fds restore with the same numbers and free list', () => {
    const g = new Guest();
    const a = g.openOk(3, 'a', OFLAGS.CREAT); // 4
    const b = g.openOk(3, 'b', OFLAGS.CREAT); // 5
    g.openOk(3, 'c', OFLAGS.CREAT); // 6
    g.call('fd_close', a);
    g.write(b, 'bee');
    g.call('fd_renumber', b, 6);
    const r = new Guest({ state: roundTrip(g.proc.saveState()) });
    expect(r.readFd(b, 1)[0]).toBe(Errno.BADF);
    r.seek(6, 0n, 0);
    expect(dec.decode(r.readFd(6, 10)[1])).toBe('bee');
    expect(r.openOk(3, 'a')).toBe(4);
    expect(r.openOk(3, 'a')).toBe(5);
    expect(r.openOk(3, 'a')).toBe(7);
  });

  it('exitCode is saved; restoring with different mounts fails with a clear error', () => {
    const g = new Guest();
    expect(() => g.call('proc_exit', 9)).toThrow(ProcExit);
    const s = roundTrip(g.proc.saveState());
    expect(s.exitCode).toBe(9);
    expect(new Guest({ state: s }).proc.exitCode).toBe(9);
    expect(() => new Guest({ state: s, mounts: [] })).toThrow(/same mounts/);
  });

  it('a restored process keeps its readdir position through the cookie', () => {
    const g = new Guest();
    for (const nm of ['x', 'y', 'z']) g.call('fd_close', g.openOk(3, nm, OFLAGS.CREAT));
    const buf = g.alloc(4096);
    const out = g.alloc(4);
    g.call('fd_readdir', 3, buf, 4096, 3n, out);
    const first = g.read(buf, g.u32(out));
    const r = new Guest({ state: roundTrip(g.proc.saveState()) });
    const b2 = r.alloc(4096);
    const o2 = r.alloc(4);
    r.call('fd_readdir', 3, b2, 4096, 3n, o2);
    expect(r.read(b2, r.u32(o2))).toEqual(first);
    expect(r.proc.saveState().fds.find((f) => f.fd === 3)!.readdirCookie).toBe(3n);
  });
});

describe('ResourceTable', () => {
  it('hands out the lowest free handle and refuses past capacity with MFILE', () => {
    const t = new ResourceTable<string>(4);
    expect([t.insert('a'), t.insert('b'), t.insert('c')]).toEqual([0, 1, 2]);
    t.remove(1);
    t.remove(0);
    expect(t.insert('d')).toBe(0);
    expect(t.insert('e')).toBe(1);
    expect(t.insert('f')).toBe(3);
    expect(() => t.insert('g')).toThrow(expect.objectContaining({ errno: Errno.MFILE }));
    expect(() => t.require(9)).toThrow(expect.objectContaining({ errno: Errno.BADF }));
    expect(t.size).toBe(4);
  });

  it('insertAt fills gaps into the free list and remove trims the tail', () => {
    const t = new ResourceTable<number>();
    t.insertAt(5, 50, 7);
    expect(t.owner(5)).toBe(7);
    expect(t.insert(0)).toBe(0);
    t.insertAt(2, 20);
    expect(t.insert(1)).toBe(1);
    expect(t.insert(3)).toBe(3);
    t.remove(5);
    expect(t.insert(4)).toBe(4);
    expect(t.insert(5)).toBe(5);
    expect(t.entries().map(([h]) => h)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
