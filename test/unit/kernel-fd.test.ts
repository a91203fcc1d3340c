import { afterAll, describe, it, expect } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errno, type MountSpec } from '../../kernel/index.js';
import { Guest, OFLAGS, RIGHTS_RO, RIGHTS_WO, dec, enc, tempDir } from './kernel-helpers.js';

describe('stdio', () => {
  it('fd_write to 1 and 2 calls stdout/stderr with a copy of the bytes', () => {
    const g = new Guest();
    const [e, n] = g.write(1, 'hello ', '', 'world\n');
    expect(e).toBe(0);
    expect(n).toBe(12);
    expect(g.stdoutText()).toBe('hello world\n');
    // one call with one copy of all the iovecs
    expect(g.out.length).toBe(1);
    expect(g.write(2, 'oops')).toEqual([0, 4]);
    expect(dec.decode(g.err[0])).toBe('oops');
    // nothing to write: no call
    expect(g.write(1, '', '')).toEqual([0, 0]);
    expect(g.out.length).toBe(1);
    // the callee owns its copy: later guest writes do not change it
    const first = g.out[0]!;
    g.u8.fill(0);
    expect(dec.decode(first)).toBe('hello world\n');
    expect(first.buffer).not.toBe(g.mem.buffer);
    expect(g.proc.stdoutBytes).toBe(12);
    expect(g.proc.stderrBytes).toBe(4);
  });

  it('with borrowOutput, one iovec reaches the sink as a view of guest memory, several as one gathered copy', () => {
    const g = new Guest({ borrowOutput: true });
    const seen: Array<{ text: string; guest: boolean }> = [];
    g.proc.opts.stdout = (b) => seen.push({ text: dec.decode(b), guest: b.buffer === g.mem.buffer });
    expect(g.write(1, 'one line\n')).toEqual([0, 9]);
    expect(g.write(1, 'two ', 'parts\n')).toEqual([0, 10]);
    expect(seen).toEqual([{ text: 'one line\n', guest: true }, { text: 'two parts\n', guest: false }]);
    expect(g.proc.stdoutBytes).toBe(19);
  });

  it('with bufferOutput, writes are gathered and reach the sinks at a flush, in the order written', () => {
    const input = [enc.encode('typed\n')];
    const g = new Guest({ stdin: () => input.shift() ?? null });
    const calls: string[] = [];
    g.proc.opts.stdout = (b) => calls.push(`out:${dec.decode(b)}`);
    g.proc.opts.stderr = (b) => calls.push(`err:${dec.decode(b)}`);
    g.proc.bufferOutput(16);
    // line by line, as wasi-libc's line-buffered stdout writes: nothing reaches the sink yet, but the count is kept
    expect(g.write(1, 'a\n')).toEqual([0, 2]);
    expect(g.write(1, 'b', 'c\n')).toEqual([0, 3]);
    expect(calls).toEqual([]);
    expect(g.proc.stdoutBytes).toBe(5);
    // a write to the other stream flushes first: the order across stdout and stderr is kept
    expect(g.write(2, 'E1\n')).toEqual([0, 3]);
    expect(calls).toEqual(['out:a\nbc\n']);
    // so does a read of stdin (a prompt reaches the user before the job waits for the answer)
    expect(g.write(1, 'name? ')).toEqual([0, 6]);
    expect(calls).toEqual(['out:a\nbc\n', 'err:E1\n']);
    expect(g.readFd(0, 16)).toEqual([0, enc.encode('typed\n')]);
    expect(calls).toEqual(['out:a\nbc\n', 'err:E1\n', 'out:name? ']);
    // more than the buffer holds: what is held goes first, then the big write through as it is
    expect(g.write(1, 'x')).toEqual([0, 1]);
    expect(g.write(1, '0123456789abcdefXYZ')).toEqual([0, 19]);
    expect(calls.slice(3)).toEqual(['out:x', 'out:0123456789abcdefXYZ']);
    // filling the buffer exactly, then one byte more: a flush of 16 bytes, one byte held
    expect(g.write(1, '0123456789', 'abcdef')).toEqual([0, 16]);
    expect(g.write(1, '!')).toEqual([0, 1]);
    expect(calls.slice(5)).toEqual(['out:0123456789abcdef']);
    g.proc.flushOutput();
    g.proc.flushOutput();
    expect(calls.slice(6)).toEqual(['out:!']);
    // the sink owns its copy: it is not the buffer reused by the next writes
    const kept: Uint8Array[] = [];
    g.proc.opts.stdout = (b) => kept.push(b);
    g.write(1, 'first');
    g.proc.flushOutput();
    g.write(1, 'later');
    g.proc.flushOutput();
    expect(kept.map((b) => dec.decode(b))).toEqual(['first', 'later']);
    expect(g.proc.stdoutBytes).toBe(5 + 6 + 1 + 19 + 17 + 10);
    expect(g.proc.stderrBytes).toBe(3);
    // turned off: what is held is flushed, and writes go through at once again
    g.write(2, 'held');
    g.proc.bufferOutput(0);
    g.write(2, 'now');
    expect(calls.slice(7)).toEqual(['err:held', 'err:now']);
  });

  it('fd_fdstat_get reports stdio as a character device without seek rights', () => {
    const g = new Guest();
    const p = g.alloc(24);
    for (const fd of [0, 1, 2]) {
      expect(g.call('fd_fdstat_get', fd, p)).toBe(0);
      expect(g.u8[p]).toBe(2);
      const rights = g.u64(p + 8);
      expect(rights & (1n << 2n)).toBe(0n); // FD_SEEK
      expect(rights & (1n << 5n)).toBe(0n); // FD_TELL
    }
    expect(g.u64(p + 8) & (1n << 6n)).not.toBe(0n); // fd 2 may write
  });

  it('fd_read on stdin reads from the host source, then EOF', () => {
    const chunks = [enc.encode('abcdef')];
    const g = new Guest({ stdin: (max) => { const c = chunks.shift(); return c ? c.subarray(0, max) : null; } });
    expect(g.readFd(0, 4)).toEqual([0, enc.encode('abcd')]);
    // the source returned at most max: 'ef' was never taken, the next call returns EOF
    expect(g.readFd(0, 4)).toEqual([0, new Uint8Array(0)]);
  });

  it('fd_read on stdin keeps bytes the source returned beyond max for the next read', () => {
    const chunks = [enc.encode('abcdef')];
    const g = new Guest({ stdin: () => chunks.shift() ?? null });
    expect(dec.decode(g.readFd(0, 4)[1])).toBe('abcd');
    expect(dec.decode(g.readFd(0, 4)[1])).toBe('ef');
    expect(g.readFd(0, 4)[1].length).toBe(0);
  });

  it('fd_seek and fd_tell on stdout return SPIPE; fd_read on stdout returns BADF', () => {
    const g = new Guest();
    expect(g.seek(1, 0n, 0)[0]).toBe(Errno.SPIPE);
    expect(g.call('fd_tell', 1, g.alloc(8))).toBe(Errno.SPIPE);
    expect(g.readFd(1, 4)[0]).toBe(Errno.BADF);
    expect(g.write(0, 'x')[0]).toBe(Errno.BADF);
  });

  it('fd_write returns FAULT when an iovec points outside memory and writes nothing', () => {
    const g = new Guest();
    const iov = g.alloc(8);
    g.dv.setUint32(iov, 65530, true);
    g.dv.setUint32(iov + 4, 100, true);
    expect(g.call('fd_write', 1, iov, 1, g.alloc(4))).toBe(Errno.FAULT);
    expect(g.out).toHaveLength(0);
  });
});

describe('preopens', () => {
  it('fd_prestat_get and fd_prestat_dir_name describe mounts at fds 3, 4 and BADF after', () => {
    const g = new Guest({ mounts: [{ guest: '/data', kind: 'memory' }, { guest: '.', kind: 'memory' }] });
    const p = g.alloc(8);
    expect(g.call('fd_prestat_get', 3, p)).toBe(0);
    expect(g.u8[p]).toBe(0);
    expect(g.u32(p + 4)).toBe(5);
    const name = g.alloc(5);
    expect(g.call('fd_prestat_dir_name', 3, name, 5)).toBe(0);
    expect(dec.decode(g.read(name, 5))).toBe('/data');
    expect(g.call('fd_prestat_dir_name', 3, name, 4)).toBe(Errno.NAMETOOLONG);
    expect(g.call('fd_prestat_get', 4, p)).toBe(0);
    expect(g.u32(p + 4)).toBe(1);
    expect(g.call('fd_prestat_get', 5, p)).toBe(Errno.BADF);
    expect(g.call('fd_prestat_get', 1, p)).toBe(Errno.BADF);
    expect(g.call('fd_fdstat_get', 3, p)).toBe(0);
    expect(g.u8[p]).toBe(3); // directory
  });
});

const host = tempDir();
afterAll(() => host.cleanup());
let n = 0;
const kinds: Array<[string, () => MountSpec]> = [
  ['memory', () => ({ guest: '/work', kind: 'memory' })],
  ['host', () => ({ guest: '/work', kind: 'host', host: join(host.dir, `m${n++}`) })],
];

describe.each(kinds)('file I/O on a %s mount', (kind, spec) => {
  const guest = (): Guest => {
    const m = spec();
    if (m.host) mkdirSync(m.host);
    return new Guest({ mounts: [m] });
  };

  it('fd_write then fd_read after fd_seek returns the same bytes', () => {
    const g = guest();
    const fd = g.openOk(3, 'a.txt', OFLAGS.CREAT);
    expect(fd).toBe(4);
    expect(g.write(fd, 'hello ', 'world')).toEqual([0, 11]);
    expect(g.seek(fd, 0n, 0)).toEqual([0, 0n]);
    expect(dec.decode(g.readFd(fd, 5)[1])).toBe('hello');
    expect(dec.decode(g.readFd(fd, 100)[1])).toBe(' world');
    expect(g.readFd(fd, 100)).toEqual([0, new Uint8Array(0)]);
    const t = g.alloc(8);
    expect(g.call('fd_tell', fd, t)).toBe(0);
    expect(g.u64(t)).toBe(11n);
  });

  it('fd_seek supports SET, CUR and END and refuses a negative result', () => {
    const g = guest();
    const fd = g.openOk(3, 'f', OFLAGS.CREAT);
    g.write(fd, '0123456789');
    expect(g.seek(fd, 2n, 0)).toEqual([0, 2n]);
    expect(g.seek(fd, 3n, 1)).toEqual([0, 5n]);
    expect(g.seek(fd, -1n, 1)).toEqual([0, 4n]);
    expect(g.seek(fd, -2n, 2)).toEqual([0, 8n]);
    expect(dec.decode(g.readFd(fd, 10)[1])).toBe('89');
    expect(g.seek(fd, -11n, 2)[0]).toBe(Errno.INVAL);
    expect(g.seek(fd, 0n, 3)[0]).toBe(Errno.INVAL);
    // seeking past the end then writing leaves a zero-filled hole
    expect(g.seek(fd, 12n, 0)).toEqual([0, 12n]);
    g.write(fd, 'X');
    g.seek(fd, 8n, 0);
    expect(g.readFd(fd, 10)[1]).toEqual(new Uint8Array([56, 57, 0, 0, 88]));
  });

  it('fd_pread and fd_pwrite use the given offset and leave the fd offset alone', () => {
    const g = guest();
    const fd = g.openOk(3, 'p', OFLAGS.CREAT);
    g.write(fd, 'abcdef');
    const [iov, cnt] = g.iovs('XY');
    const out = g.alloc(4);
    expect(g.call('fd_pwrite', fd, iov, cnt, 2n, out)).toBe(0);
    expect(g.u32(out)).toBe(2);
    const buf = g.alloc(4);
    const riov = g.alloc(8);
    g.dv.setUint32(riov, buf, true);
    g.dv.setUint32(riov + 4, 4, true);
    expect(g.call('fd_pread', fd, riov, 1, 1n, out)).toBe(0);
    expect(dec.decode(g.read(buf, g.u32(out)))).toBe('bXYe');
    expect(g.call('fd_pread', fd, riov, 1, 100n, out)).toBe(0);
    expect(g.u32(out)).toBe(0);
    const t = g.alloc(8);
    g.call('fd_tell', fd, t);
    expect(g.u64(t)).toBe(6n);
    expect(g.call('fd_pread', 1, riov, 1, 0n, out)).toBe(Errno.SPIPE);
  });

  it('fd_read fills several iovecs in order', () => {
    const g = guest();
    const fd = g.openOk(3, 'v', OFLAGS.CREAT);
    g.write(fd, 'abcdefg');
    g.seek(fd, 0n, 0);
    const iov = g.alloc(16);
    const a = g.alloc(3);
    const b = g.alloc(10);
    g.dv.setUint32(iov, a, true);
    g.dv.setUint32(iov + 4, 3, true);
    g.dv.setUint32(iov + 8, b, true);
    g.dv.setUint32(iov + 12, 10, true);
    const out = g.alloc(4);
    expect(g.call('fd_read', fd, iov, 2, out)).toBe(0);
    expect(g.u32(out)).toBe(7);
    expect(dec.decode(g.read(a, 3))).toBe('abc');
    expect(dec.decode(g.read(b, 4))).toBe('defg');
  });

  it('APPEND writes at the end whatever the offset', () => {
    const g = guest();
    const fd = g.openOk(3, 'log', OFLAGS.CREAT);
    g.write(fd, 'one');
    g.call('fd_close', fd);
    const fa = g.openOk(3, 'log', 0, RIGHTS_WO, 1);
    g.seek(fa, 0n, 0);
    g.write(fa, 'two');
    const r = g.openOk(3, 'log', 0, RIGHTS_RO);
    expect(dec.decode(g.readFd(r, 100)[1])).toBe('onetwo');
    const p = g.alloc(24);
    g.call('fd_fdstat_get', fa, p);
    expect(g.u16(p + 2)).toBe(1);
  });

  it('fd_read returns EBADF on a closed handle and on a write-only one', () => {
    const g = guest();
    const fd = g.openOk(3, 'c', OFLAGS.CREAT);
    expect(g.call('fd_close', fd)).toBe(0);
    expect(g.readFd(fd, 1)[0]).toBe(Errno.BADF);
    expect(g.write(fd, 'x')[0]).toBe(Errno.BADF);
    expect(g.call('fd_close', fd)).toBe(Errno.BADF);
    const wo = g.openOk(3, 'c', 0, RIGHTS_WO);
    expect(g.readFd(wo, 1)[0]).toBe(Errno.BADF);
    const ro = g.openOk(3, 'c', 0, RIGHTS_RO);
    expect(g.write(ro, 'x')[0]).toBe(Errno.BADF);
    expect(g.call('fd_filestat_set_size', ro, 0n)).toBe(Errno.BADF);
  });

  it('fd_read on a directory fd returns ISDIR', () => {
    const g = guest();
    expect(g.readFd(3, 4)[0]).toBe(Errno.ISDIR);
  });

  it('fd_filestat_get reports a regular file with its size; fd_filestat_set_size truncates and extends', () => {
    const g = guest();
    const fd = g.openOk(3, 's', OFLAGS.CREAT);
    g.write(fd, '123456');
    let st = g.filestat(fd);
    expect(st.errno).toBe(0);
    expect(st.filetype).toBe(4);
    expect(st.size).toBe(6n);
    expect(st.nlink).toBe(1n);
    expect(st.mtim).toBeGreaterThan(0n);
    expect(g.call('fd_filestat_set_size', fd, 3n)).toBe(0);
    expect(g.filestat(fd).size).toBe(3n);
    expect(g.call('fd_filestat_set_size', fd, 5n)).toBe(0);
    g.seek(fd, 0n, 0);
    expect(g.readFd(fd, 10)[1]).toEqual(new Uint8Array([49, 50, 51, 0, 0]));
    st = g.filestat(3);
    expect(st.filetype).toBe(3);
    expect(g.filestat(1).filetype).toBe(2);
  });

  it('fd_filestat_set_times sets atim and mtim', () => {
    const g = guest();
    const fd = g.openOk(3, 't', OFLAGS.CREAT);
    expect(g.call('fd_filestat_set_times', fd, 1_000_000_000n, 2_000_000_000n, 1 | 4)).toBe(0);
    const st = g.filestat(fd);
    expect(st.atim).toBe(1_000_000_000n);
    expect(st.mtim).toBe(2_000_000_000n);
    expect(g.call('fd_filestat_set_times', fd, 0n, 0n, 1 | 2)).toBe(Errno.INVAL);
  });

  it('fd_allocate grows a file, fd_sync and fd_datasync succeed, fd_advise validates advice', () => {
    const g = guest();
    const fd = g.openOk(3, 'al', OFLAGS.CREAT);
    expect(g.call('fd_allocate', fd, 10n, 6n)).toBe(0);
    expect(g.filestat(fd).size).toBe(16n);
    expect(g.call('fd_sync', fd)).toBe(0);
    expect(g.call('fd_datasync', fd)).toBe(0);
    expect(g.call('fd_advise', fd, 0n, 0n, 1)).toBe(0);
    expect(g.call('fd_advise', fd, 0n, 0n, 9)).toBe(Errno.INVAL);
  });

  it('fd_renumber onto a closed fd moves it there, like dup2 (real programs rely on it)', () => {
    const g = guest();
    const a = g.openOk(3, 'rc', OFLAGS.CREAT);
    g.write(a, 'xyz');
    expect(g.call('fd_renumber', 1, 40)).toBe(0);
    expect(g.call('fd_renumber', a, 1)).toBe(0);
    g.seek(1, 0n, 0);
    expect(dec.decode(g.readFd(1, 10)[1])).toBe('xyz');
    expect(g.readFd(a, 1)[0]).toBe(Errno.BADF);
  });

  it('fd_renumber moves an fd onto another open fd and keeps its offset', () => {
    const g = guest();
    const a = g.openOk(3, 'ra', OFLAGS.CREAT);
    const b = g.openOk(3, 'rb', OFLAGS.CREAT);
    g.write(a, 'aaaa');
    expect(g.call('fd_renumber', a, b)).toBe(0);
    expect(g.readFd(a, 1)[0]).toBe(Errno.BADF);
    g.write(b, 'Z');
    g.seek(b, 0n, 0);
    expect(dec.decode(g.readFd(b, 10)[1])).toBe('aaaaZ');
    expect(g.call('fd_renumber', 77, b)).toBe(Errno.BADF);
    expect(g.call('fd_renumber', b, 1 << 20)).toBe(Errno.BADF);
    // the freed number is reused first
    expect(g.openOk(3, 'ra')).toBe(a);
  });

  it('fd_fdstat_set_rights only drops rights; fd_fdstat_set_flags sets flags', () => {
    const g = guest();
    const fd = g.openOk(3, 'r', OFLAGS.CREAT);
    expect(g.call('fd_fdstat_set_rights', fd, 1n << 1n, 0n)).toBe(0);
    expect(g.call('fd_fdstat_set_rights', fd, (1n << 1n) | (1n << 6n), 0n)).toBe(Errno.NOTCAPABLE);
    expect(g.call('fd_fdstat_set_flags', fd, 1)).toBe(0);
    const p = g.alloc(24);
    g.call('fd_fdstat_get', fd, p);
    expect(g.u8[p]).toBe(4);
    expect(g.dv.getUint16(p + 2, true)).toBe(1);
    expect(g.u64(p + 8)).toBe(1n << 1n);
  });

  if (kind === 'host') {
    it('writes reach the host file and host changes are visible', () => {
      const m = spec();
      mkdirSync(m.host!);
      writeFileSync(join(m.host!, 'in.txt'), 'from host');
      const g = new Guest({ mounts: [m] });
      const r = g.openOk(3, 'in.txt', 0, RIGHTS_RO);
      expect(dec.decode(g.readFd(r, 100)[1])).toBe('from host');
      const w = g.openOk(3, 'out.txt', OFLAGS.CREAT | OFLAGS.TRUNC, RIGHTS_WO);
      g.write(w, 'to host');
      expect(readFileSync(join(m.host!, 'out.txt'), 'utf8')).toBe('to host');
    });
  }
});

describe('fd table', () => {
  it('path_open returns MFILE when the fd table is full', () => {
    const g = new Guest({ maxFds: 6 });
    expect(g.openOk(3, 'a', OFLAGS.CREAT)).toBe(4);
    expect(g.openOk(3, 'b', OFLAGS.CREAT)).toBe(5);
    expect(g.open(3, 'c', OFLAGS.CREAT)[0]).toBe(Errno.MFILE);
    expect(g.open(3, 'a')[0]).toBe(Errno.MFILE);
  });

  it('closing stdin makes 0 the lowest free fd', () => {
    const g = new Guest();
    expect(g.call('fd_close', 0)).toBe(0);
    expect(g.openOk(3, 'x', OFLAGS.CREAT)).toBe(0);
  });
});
