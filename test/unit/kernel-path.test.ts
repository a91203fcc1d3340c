import { afterAll, describe, it, expect } from 'vitest';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errno, type MountSpec } from '../../kernel/index.js';
import { Guest, OFLAGS, RIGHTS_RO, RIGHTS_WO, dec, tempDir } from './kernel-helpers.js';

const host = tempDir();
afterAll(() => host.cleanup());
let n = 0;
const kinds: Array<[string, (readonly?: boolean) => MountSpec]> = [
  ['memory', (readonly) => ({ guest: '/work', kind: 'memory', readonly: !!readonly })],
  ['host', (readonly) => {
    const dir = join(host.dir, `p${n++}`);
    mkdirSync(dir);
    return { guest: '/work', kind: 'host', host: dir, readonly: !!readonly };
  }],
];

function pathFilestat(g: Guest, fd: number, path: string, follow = true): { errno: number; filetype: number; size: bigint; ino: bigint; nlink: bigint } {
  const [p, l] = g.bytes(path);
  const buf = g.alloc(64);
  const errno = g.call('path_filestat_get', fd, follow ? 1 : 0, p, l, buf);
  return { errno, filetype: g.u8[buf + 16]!, size: g.u64(buf + 32), ino: g.u64(buf + 8), nlink: g.u64(buf + 24) };
}

function two(g: Guest, name: string, fd: number, a: string, fd2: number, b: string): number {
  const [pa, la] = g.bytes(a);
  const [pb, lb] = g.bytes(b);
  return g.call(name, fd, pa, la, fd2, pb, lb);
}

function symlink(g: Guest, target: string, fd: number, path: string): number {
  const [pt, lt] = g.bytes(target);
  const [pp, lp] = g.bytes(path);
  return g.call('path_symlink', pt, lt, fd, pp, lp);
}

function readlink(g: Guest, fd: number, path: string, bufLen = 64): [number, string] {
  const [p, l] = g.bytes(path);
  const buf = g.alloc(bufLen);
  const out = g.alloc(4);
  const e = g.call('path_readlink', fd, p, l, buf, bufLen, out);
  return [e, e === 0 ? dec.decode(g.read(buf, g.u32(out))) : ''];
}

function writeFile(g: Guest, path: string, text: string): void {
  const fd = g.openOk(3, path, OFLAGS.CREAT | OFLAGS.TRUNC, RIGHTS_WO);
  g.write(fd, text);
  g.call('fd_close', fd);
}

function readFile(g: Guest, path: string): string {
  const fd = g.openOk(3, path, 0, RIGHTS_RO);
  const [, b] = g.readFd(fd, 4096);
  g.call('fd_close', fd);
  return dec.decode(b);
}

describe.each(kinds)('paths on a %s mount', (kind, spec) => {
  const guest = (readonly = false): Guest => new Guest({ mounts: [spec(readonly)] });

  it('path_open returns ENOENT for a missing file and EEXIST with CREAT|EXCL', () => {
    const g = guest();
    expect(g.open(3, 'missing')[0]).toBe(Errno.NOENT);
    expect(g.open(3, 'nodir/file', OFLAGS.CREAT)[0]).toBe(Errno.NOENT);
    g.openOk(3, 'f', OFLAGS.CREAT);
    expect(g.open(3, 'f', OFLAGS.CREAT | OFLAGS.EXCL)[0]).toBe(Errno.EXIST);
    expect(g.open(3, 'f', OFLAGS.CREAT)[0]).toBe(0);
  });

  it('path_open with TRUNC empties the file', () => {
    const g = guest();
    writeFile(g, 'f', 'content');
    g.openOk(3, 'f', OFLAGS.TRUNC, RIGHTS_WO);
    expect(readFile(g, 'f')).toBe('');
  });

  it('path_open returns NOTDIR for O_DIRECTORY on a file and for a file used as a directory', () => {
    const g = guest();
    writeFile(g, 'f', 'x');
    expect(g.open(3, 'f', OFLAGS.DIRECTORY)[0]).toBe(Errno.NOTDIR);
    expect(g.open(3, 'f/x')[0]).toBe(Errno.NOTDIR);
    expect(g.open(3, 'f/')[0]).toBe(Errno.NOTDIR);
    expect(g.open(4, 'x')[0]).toBe(Errno.BADF);
    const fd = g.openOk(3, 'f');
    expect(g.open(fd, 'x')[0]).toBe(Errno.NOTDIR);
  });

  it('path_open on a directory for writing returns ISDIR; O_DIRECTORY opens it', () => {
    const g = guest();
    expect(g.pathCall('path_create_directory', 3, 'd')).toBe(0);
    expect(g.open(3, 'd', 0, RIGHTS_WO)[0]).toBe(Errno.ISDIR);
    expect(g.open(3, 'd', OFLAGS.CREAT | OFLAGS.DIRECTORY)[0]).toBe(Errno.INVAL);
    const d = g.openOk(3, 'd', OFLAGS.DIRECTORY, RIGHTS_RO);
    writeFile(g, 'd/inner', 'hi');
    const f = g.openOk(d, 'inner', 0, RIGHTS_RO);
    expect(dec.decode(g.readFd(f, 10)[1])).toBe('hi');
    const p = g.alloc(24);
    g.call('fd_fdstat_get', d, p);
    expect(g.u8[p]).toBe(3);
    expect(g.call('fd_prestat_get', d, g.alloc(8))).toBe(Errno.BADF);
  });

  it('paths are normalised: "./a/../b" reaches b and "d/./f" reaches d/f', () => {
    const g = guest();
    g.pathCall('path_create_directory', 3, 'a');
    g.pathCall('path_create_directory', 3, 'd');
    writeFile(g, 'b', 'B');
    writeFile(g, 'd/f', 'F');
    expect(readFile(g, './a/../b')).toBe('B');
    expect(readFile(g, 'd/./f')).toBe('F');
    expect(readFile(g, 'd//f')).toBe('F');
    expect(g.open(3, '')[0]).toBe(Errno.NOENT);
  });

  it('path escapes are refused with PERM: "../", absolute, ".." past a subdirectory fd', () => {
    const g = guest();
    g.pathCall('path_create_directory', 3, 'sub');
    writeFile(g, 'top', 'T');
    expect(g.open(3, '..')[0]).toBe(Errno.PERM);
    expect(g.open(3, '../etc/passwd')[0]).toBe(Errno.PERM);
    expect(g.open(3, 'sub/../../x', OFLAGS.CREAT)[0]).toBe(Errno.PERM);
    expect(g.open(3, '/etc/passwd')[0]).toBe(Errno.PERM);
    expect(g.open(3, '/top')[0]).toBe(Errno.PERM);
    expect(g.pathCall('path_create_directory', 3, '../evil')).toBe(Errno.PERM);
    expect(g.pathCall('path_unlink_file', 3, '../x')).toBe(Errno.PERM);
    expect(pathFilestat(g, 3, '..').errno).toBe(Errno.PERM);
    // a directory fd is its own root: '..' from it may not reach its parent
    const sub = g.openOk(3, 'sub', OFLAGS.DIRECTORY, RIGHTS_RO);
    expect(g.open(sub, '../top')[0]).toBe(Errno.PERM);
    expect(g.open(sub, '.', OFLAGS.DIRECTORY, RIGHTS_RO)[0]).toBe(0);
  });

  it('symlinks pointing outside the mount are refused when followed', () => {
    const g = guest();
    g.pathCall('path_create_directory', 3, 'sub');
    expect(symlink(g, '/etc/passwd', 3, 'abs')).toBe(Errno.PERM);
    expect(symlink(g, '../../outside', 3, 'up')).toBe(0);
    expect(g.open(3, 'up')[0]).toBe(Errno.PERM);
    expect(g.open(3, 'up/x', OFLAGS.CREAT)[0]).toBe(Errno.PERM);
    expect(symlink(g, '..', 3, 'sub/parent')).toBe(0);
    expect(g.open(3, 'sub/parent', OFLAGS.DIRECTORY, RIGHTS_RO)[0]).toBe(0); // still inside
    expect(g.open(3, 'sub/parent/..', OFLAGS.DIRECTORY, RIGHTS_RO)[0]).toBe(Errno.PERM);
    // readlink of the link itself is fine
    expect(readlink(g, 3, 'up')).toEqual([0, '../../outside']);
  });

  if (kind === 'host') {
    it('a host symlink to an absolute path outside the mount is refused', () => {
      const m = spec();
      symlinkSync('/etc', join(m.host!, 'etc'));
      symlinkSync('/etc/hostname', join(m.host!, 'hn'));
      const g = new Guest({ mounts: [m] });
      expect(g.open(3, 'etc/passwd')[0]).toBe(Errno.PERM);
      expect(g.open(3, 'hn')[0]).toBe(Errno.PERM);
      expect(pathFilestat(g, 3, 'etc').errno).toBe(Errno.PERM);
      expect(pathFilestat(g, 3, 'etc', false).filetype).toBe(7);
    });
  }

  it('symlinks inside the mount are followed; nofollow open returns LOOP; readlink truncates', () => {
    const g = guest();
    g.pathCall('path_create_directory', 3, 'd');
    writeFile(g, 'd/target', 'T!');
    expect(symlink(g, 'd/target', 3, 'ln')).toBe(0);
    expect(symlink(g, 'd', 3, 'dl')).toBe(0);
    expect(symlink(g, 'x', 3, 'ln')).toBe(Errno.EXIST);
    expect(readFile(g, 'ln')).toBe('T!');
    expect(readFile(g, 'dl/target')).toBe('T!');
    expect(g.open(3, 'ln', 0, RIGHTS_RO, 0, 0)[0]).toBe(Errno.LOOP);
    expect(readlink(g, 3, 'ln')).toEqual([0, 'd/target']);
    expect(readlink(g, 3, 'ln', 3)).toEqual([0, 'd/t']);
    expect(readlink(g, 3, 'd/target')[0]).toBe(Errno.INVAL);
    expect(readlink(g, 3, 'nope')[0]).toBe(Errno.NOENT);
    expect(pathFilestat(g, 3, 'ln', false).filetype).toBe(7);
    expect(pathFilestat(g, 3, 'ln', true).filetype).toBe(4);
    expect(pathFilestat(g, 3, 'ln', true).size).toBe(2n);
    // a symlink loop
    symlink(g, 'loop2', 3, 'loop1');
    symlink(g, 'loop1', 3, 'loop2');
    expect(g.open(3, 'loop1')[0]).toBe(Errno.LOOP);
    // unlinking a symlink removes the link, not the target
    expect(g.pathCall('path_unlink_file', 3, 'ln')).toBe(0);
    expect(readFile(g, 'd/target')).toBe('T!');
  });

  it('mkdir, rmdir and unlink with EEXIST, ENOENT, NOTDIR, ISDIR and NOTEMPTY', () => {
    const g = guest();
    expect(g.pathCall('path_create_directory', 3, 'd')).toBe(0);
    expect(g.pathCall('path_create_directory', 3, 'd')).toBe(Errno.EXIST);
    expect(g.pathCall('path_create_directory', 3, 'x/y')).toBe(Errno.NOENT);
    writeFile(g, 'd/f', '1');
    expect(g.pathCall('path_create_directory', 3, 'd/f')).toBe(Errno.EXIST);
    expect(g.pathCall('path_remove_directory', 3, 'd')).toBe(Errno.NOTEMPTY);
    expect(g.pathCall('path_remove_directory', 3, 'd/f')).toBe(Errno.NOTDIR);
    expect(g.pathCall('path_remove_directory', 3, 'nope')).toBe(Errno.NOENT);
    expect(g.pathCall('path_remove_directory', 3, '.')).toBe(Errno.INVAL);
    expect(g.pathCall('path_unlink_file', 3, 'd')).toBe(Errno.ISDIR);
    expect(g.pathCall('path_unlink_file', 3, 'd/nope')).toBe(Errno.NOENT);
    expect(g.pathCall('path_unlink_file', 3, 'd/f/')).toBe(Errno.NOTDIR);
    expect(g.pathCall('path_unlink_file', 3, 'd/f')).toBe(0);
    expect(g.open(3, 'd/f')[0]).toBe(Errno.NOENT);
    expect(g.pathCall('path_remove_directory', 3, 'd')).toBe(0);
    expect(pathFilestat(g, 3, 'd').errno).toBe(Errno.NOENT);
  });

  it('path_rename moves files and directories and replaces a file', () => {
    const g = guest();
    writeFile(g, 'a', 'A');
    writeFile(g, 'b', 'B');
    g.pathCall('path_create_directory', 3, 'd');
    g.pathCall('path_create_directory', 3, 'e');
    writeFile(g, 'e/x', 'X');
    expect(two(g, 'path_rename', 3, 'a', 3, 'd/a2')).toBe(0);
    expect(readFile(g, 'd/a2')).toBe('A');
    expect(g.open(3, 'a')[0]).toBe(Errno.NOENT);
    expect(two(g, 'path_rename', 3, 'b', 3, 'd/a2')).toBe(0);
    expect(readFile(g, 'd/a2')).toBe('B');
    expect(two(g, 'path_rename', 3, 'd', 3, 'd2')).toBe(0);
    expect(readFile(g, 'd2/a2')).toBe('B');
    expect(two(g, 'path_rename', 3, 'nope', 3, 'z')).toBe(Errno.NOENT);
    expect(two(g, 'path_rename', 3, 'd2/a2', 3, 'e')).toBe(Errno.ISDIR);
    expect(two(g, 'path_rename', 3, 'e', 3, 'd2/a2')).toBe(Errno.NOTDIR);
    g.pathCall('path_create_directory', 3, 'empty');
    expect(two(g, 'path_rename', 3, 'd2', 3, 'e')).toBe(Errno.NOTEMPTY);
    expect(two(g, 'path_rename', 3, 'd2', 3, 'empty')).toBe(0);
    expect(readFile(g, 'empty/a2')).toBe('B');
    expect(two(g, 'path_rename', 3, 'e', 3, 'e/sub')).toBe(Errno.INVAL);
    expect(two(g, 'path_rename', 3, 'e/x', 3, '../x')).toBe(Errno.PERM);
  });

  it('path_link creates a hard link sharing contents', () => {
    const g = guest();
    writeFile(g, 'orig', 'shared');
    const [po, lo] = g.bytes('orig');
    const [pl, ll] = g.bytes('hard');
    expect(g.call('path_link', 3, 0, po, lo, 3, pl, ll)).toBe(0);
    expect(readFile(g, 'hard')).toBe('shared');
    expect(pathFilestat(g, 3, 'orig').nlink).toBe(2n);
    expect(pathFilestat(g, 3, 'orig').ino).toBe(pathFilestat(g, 3, 'hard').ino);
    expect(g.call('path_link', 3, 0, po, lo, 3, pl, ll)).toBe(Errno.EXIST);
    g.pathCall('path_create_directory', 3, 'dd');
    const [pd, ld] = g.bytes('dd');
    expect(g.call('path_link', 3, 0, pd, ld, 3, pl, ll)).toBe(Errno.PERM);
  });

  it('path_filestat_get and path_filestat_set_times', () => {
    const g = guest();
    writeFile(g, 'f', 'abc');
    const st = pathFilestat(g, 3, 'f');
    expect(st).toMatchObject({ errno: 0, filetype: 4, size: 3n });
    expect(pathFilestat(g, 3, '.').filetype).toBe(3);
    const [p, l] = g.bytes('f');
    expect(g.call('path_filestat_set_times', 3, 1, p, l, 5_000_000_000n, 7_000_000_000n, 1 | 4)).toBe(0);
    const buf = g.alloc(64);
    g.call('path_filestat_get', 3, 1, p, l, buf);
    expect(g.u64(buf + 40)).toBe(5_000_000_000n);
    expect(g.u64(buf + 48)).toBe(7_000_000_000n);
    expect(g.call('path_filestat_set_times', 3, 1, p, l, 0n, 0n, 4 | 8)).toBe(Errno.INVAL);
    expect(g.call('path_filestat_get', 3, 1, p, l, 65530)).toBe(Errno.FAULT);
  });

  it('an unlinked file stays readable through its open fd', () => {
    const g = guest();
    writeFile(g, 'tmp', 'still here');
    const fd = g.openOk(3, 'tmp', 0, RIGHTS_RO);
    expect(g.pathCall('path_unlink_file', 3, 'tmp')).toBe(0);
    expect(dec.decode(g.readFd(fd, 100)[1])).toBe('still here');
  });

  it('a read-only mount refuses writes with PERM and allows reads', () => {
    const m = spec(true);
    if (m.host) writeFileSync(join(m.host, 'ro.txt'), 'read me');
    const g = new Guest({ mounts: [m] });
    if (kind === 'memory') expect(g.open(3, 'ro.txt', OFLAGS.CREAT)[0]).toBe(Errno.PERM);
    expect(g.open(3, 'new', OFLAGS.CREAT, RIGHTS_RO)[0]).toBe(Errno.PERM);
    expect(g.pathCall('path_create_directory', 3, 'd')).toBe(Errno.PERM);
    expect(symlink(g, 'x', 3, 'l')).toBe(Errno.PERM);
    if (kind === 'host') {
      expect(g.open(3, 'ro.txt', 0, RIGHTS_WO)[0]).toBe(Errno.PERM);
      expect(g.open(3, 'ro.txt', OFLAGS.TRUNC, RIGHTS_RO)[0]).toBe(Errno.PERM);
      expect(g.pathCall('path_unlink_file', 3, 'ro.txt')).toBe(Errno.PERM);
      const [p, l] = g.bytes('ro.txt');
      expect(g.call('path_filestat_set_times', 3, 1, p, l, 0n, 0n, 2)).toBe(Errno.PERM);
      expect(readFile(g, 'ro.txt')).toBe('read me');
      expect(readFileSync(join(m.host!, 'ro.txt'), 'utf8')).toBe('read me');
      expect(existsSync(join(m.host!, 'new'))).toBe(false);
    }
  });
});

describe('mounts', () => {
  it('rename and link across mounts return XDEV', () => {
    const g = new Guest({ mounts: [{ guest: '/a', kind: 'memory' }, { guest: '/b', kind: 'memory' }] });
    writeFile(g, 'f', 'x');
    expect(two(g, 'path_rename', 3, 'f', 4, 'f')).toBe(Errno.XDEV);
    const [p, l] = g.bytes('f');
    expect(g.call('path_link', 3, 0, p, l, 4, p, l)).toBe(Errno.XDEV);
  });

  it('a host mount whose directory does not exist fails at construction', () => {
    expect(() => new Guest({ mounts: [{ guest: '/x', kind: 'host', host: join(host.dir, 'does-not-exist') }] })).toThrow(/cannot use host directory/);
  });
});
