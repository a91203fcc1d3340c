import { afterAll, describe, it, expect } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errno, type MountSpec } from '../../kernel/index.js';
import { createNodePlatform } from '../../runtime-node/platform.js';
import { Guest, OFLAGS, RIGHTS_RO, dec, tempDir } from './kernel-helpers.js';

interface Dirent { next: bigint; ino: bigint; namlen: number; type: number; name: string }

/** Parse a readdir buffer; returns the complete entries and whether the last one was cut off. */
function parse(g: Guest, buf: number, used: number): { entries: Dirent[]; truncated: boolean } {
  const entries: Dirent[] = [];
  let at = 0;
  while (at < used) {
    if (at + 24 > used) return { entries, truncated: true };
    const p = buf + at;
    const namlen = g.u32(p + 16);
    if (at + 24 + namlen > used) return { entries, truncated: true };
    entries.push({ next: g.u64(p), ino: g.u64(p + 8), namlen, type: g.u8[p + 20]!, name: dec.decode(g.read(p + 24, namlen)) });
    at += 24 + namlen;
  }
  return { entries, truncated: false };
}

function readdir(g: Guest, fd: number, cookie: bigint, len: number): { errno: number; used: number; entries: Dirent[]; truncated: boolean; buf: number } {
  const buf = g.alloc(len);
  const out = g.alloc(4);
  const errno = g.call('fd_readdir', fd, buf, len, cookie, out);
  const used = g.u32(out);
  return { errno, used, buf, ...parse(g, buf, errno === 0 ? used : 0) };
}

/** Read a whole directory the way wasi-libc does: refill from the last complete entry's d_next. */
function listAll(g: Guest, fd: number, len: number): Dirent[] {
  const all: Dirent[] = [];
  let cookie = 0n;
  for (let guard = 0; guard < 1000; guard++) {
    const r = readdir(g, fd, cookie, len);
    expect(r.errno).toBe(0);
    all.push(...r.entries);
    if (r.used < len) return all;
    if (r.entries.length === 0) throw new Error(`buffer of ${len} bytes too small for one entry`);
    cookie = r.entries[r.entries.length - 1]!.next;
  }
  throw new Error('readdir did not terminate');
}

const host = tempDir();
afterAll(() => host.cleanup());
let n = 0;
const kinds: Array<[string, () => MountSpec]> = [
  ['memory', () => ({ guest: '/w', kind: 'memory' })],
  ['host', () => {
    const dir = join(host.dir, `r${n++}`);
    mkdirSync(dir);
    return { guest: '/w', kind: 'host', host: dir };
  }],
];

describe.each(kinds)('fd_readdir on a %s mount', (_kind, spec) => {
  const setup = (): Guest => {
    const g = new Guest({ mounts: [spec()] });
    for (const name of ['alpha', 'beta', 'gamma-with-a-long-name']) {
      const fd = g.openOk(3, name, OFLAGS.CREAT);
      g.call('fd_close', fd);
    }
    g.pathCall('path_create_directory', 3, 'sub');
    return g;
  };

  it('lists ., .., files and dirs with d_next cookies, inodes and types', () => {
    const g = setup();
    const r = readdir(g, 3, 0n, 4096);
    expect(r.errno).toBe(0);
    expect(r.truncated).toBe(false);
    expect(r.used).toBeLessThan(4096);
    const names = r.entries.map((e) => e.name);
    expect(names.slice(0, 2)).toEqual(['.', '..']);
    expect(names.slice(2).sort()).toEqual(['alpha', 'beta', 'gamma-with-a-long-name', 'sub']);
    r.entries.forEach((e, i) => expect(e.next).toBe(BigInt(i + 1)));
    const byName = Object.fromEntries(r.entries.map((e) => [e.name, e]));
    expect(byName.alpha!.type).toBe(4);
    expect(byName.sub!.type).toBe(3);
    expect(byName['.']!.type).toBe(3);
    expect(byName.alpha!.namlen).toBe(5);
    expect(byName.alpha!.ino).toBeGreaterThan(0n);
    expect(r.used).toBe(r.entries.reduce((s, e) => s + 24 + e.namlen, 0));
  });

  it('resumes from a cookie', () => {
    const g = setup();
    const all = readdir(g, 3, 0n, 4096).entries;
    const rest = readdir(g, 3, 3n, 4096).entries;
    expect(rest.map((e) => e.name)).toEqual(all.slice(3).map((e) => e.name));
    expect(readdir(g, 3, 100n, 4096)).toMatchObject({ errno: 0, used: 0 });
  });

  it('truncates the last entry when the buffer is full (bufused == buf_len)', () => {
    const g = setup();
    const all = readdir(g, 3, 0n, 4096).entries;
    // room for '.' (25 bytes) and 10 bytes of the next entry's header
    const r = readdir(g, 3, 0n, 35);
    expect(r.used).toBe(35);
    expect(r.entries.map((e) => e.name)).toEqual(['.']);
    expect(r.truncated).toBe(true);
    // the partial header bytes are the real header's prefix
    expect(g.u64(r.buf + 25)).toBe(2n);
    // a cut inside the name
    const r2 = readdir(g, 3, 2n, 24 + 2);
    expect(r2.used).toBe(26);
    expect(g.u32(r2.buf + 16)).toBe(all[2]!.namlen);
    expect(dec.decode(g.read(r2.buf + 24, 2))).toBe(all[2]!.name.slice(0, 2));
  });

  it('small buffers still list every entry exactly once through cookies', () => {
    const g = setup();
    const all = readdir(g, 3, 0n, 4096).entries.map((e) => e.name);
    for (const len of [48, 64, 100]) expect(listAll(g, 3, len).map((e) => e.name)).toEqual(all);
  });

  it('readdir of a subdirectory fd lists its entries; of a file returns NOTDIR', () => {
    const g = setup();
    const f = g.openOk(g.openOk(3, 'sub', OFLAGS.DIRECTORY, RIGHTS_RO), 'inner', OFLAGS.CREAT);
    const sub = g.openOk(3, 'sub', OFLAGS.DIRECTORY, RIGHTS_RO);
    expect(readdir(g, sub, 0n, 4096).entries.map((e) => e.name)).toEqual(['.', '..', 'inner']);
    expect(readdir(g, f, 0n, 4096).errno).toBe(Errno.NOTDIR);
    expect(readdir(g, 99, 0n, 4096).errno).toBe(Errno.BADF);
  });
});

describe('poll_oneoff', () => {
  const SUB = 48;
  const EV = 32;
  function clockSub(g: Guest, at: number, userdata: bigint, clock: number, timeout: bigint, abs = false): void {
    g.dv.setBigUint64(at, userdata, true);
    g.u8[at + 8] = 0;
    g.dv.setUint32(at + 16, clock, true);
    g.dv.setBigUint64(at + 24, timeout, true);
    g.dv.setBigUint64(at + 32, 0n, true);
    g.dv.setUint16(at + 40, abs ? 1 : 0, true);
  }
  function fdSub(g: Guest, at: number, userdata: bigint, type: 1 | 2, fd: number): void {
    g.dv.setBigUint64(at, userdata, true);
    g.u8[at + 8] = type;
    g.dv.setUint32(at + 16, fd, true);
  }
  function events(g: Guest, out: number, count: number): Array<{ userdata: bigint; error: number; type: number; nbytes: bigint }> {
    return Array.from({ length: count }, (_, i) => {
      const p = out + i * EV;
      return { userdata: g.u64(p), error: g.dv.getUint16(p + 8, true), type: g.u8[p + 10]!, nbytes: g.u64(p + 16) };
    });
  }

  it('a relative monotonic clock subscription sleeps through platform.sleepMs', () => {
    const base = createNodePlatform();
    const slept: number[] = [];
    // with gathered output, what the job wrote before it sleeps reaches the sink before the sleep
    const heldWhenSleeping: number[] = [];
    const g: Guest = new Guest({ platform: { ...base, sleepMs: (ms) => { slept.push(ms); heldWhenSleeping.push(g.out.length); base.sleepMs(ms); } } });
    g.proc.bufferOutput(4096);
    g.write(1, 'waiting...\n');
    expect(g.out.length).toBe(0);
    const subs = g.alloc(SUB);
    const out = g.alloc(EV);
    const nev = g.alloc(4);
    clockSub(g, subs, 0xabcdn, 1, 30_000_000n);
    const t0 = performance.now();
    expect(g.call('poll_oneoff', subs, out, 1, nev)).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
    expect(slept.length).toBeGreaterThan(0);
    expect(heldWhenSleeping[0]).toBe(1);
    expect(g.stdoutText()).toBe('waiting...\n');
    expect(g.u32(nev)).toBe(1);
    expect(events(g, out, 1)).toEqual([{ userdata: 0xabcdn, error: 0, type: 0, nbytes: 0n }]);
  });

  it('an absolute clock subscription in the past returns at once; the earliest of two clocks fires', () => {
    const g = new Guest();
    const now = g.alloc(8);
    g.call('clock_time_get', 1, 0n, now);
    const subs = g.alloc(2 * SUB);
    const out = g.alloc(2 * EV);
    const nev = g.alloc(4);
    clockSub(g, subs, 1n, 1, g.u64(now) - 1000n, true);
    clockSub(g, subs + SUB, 2n, 1, 10_000_000_000n);
    const t0 = performance.now();
    expect(g.call('poll_oneoff', subs, out, 2, nev)).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(g.u32(nev)).toBe(1);
    expect(events(g, out, 1)[0]!.userdata).toBe(1n);
    // realtime absolute deadline 20 ms ahead
    const rt = g.alloc(8);
    g.call('clock_time_get', 0, 0n, rt);
    clockSub(g, subs, 3n, 0, g.u64(rt) + 20_000_000n, true);
    const t1 = performance.now();
    expect(g.call('poll_oneoff', subs, out, 1, nev)).toBe(0);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(15);
    expect(events(g, out, 1)[0]!.userdata).toBe(3n);
  });

  it('fd subscriptions on stdout, stdin and files are ready at once; bad fds get BADF events', () => {
    const g = new Guest();
    const f = g.openOk(3, 'f', OFLAGS.CREAT);
    g.write(f, '12345');
    g.seek(f, 2n, 0);
    const subs = g.alloc(5 * SUB);
    const out = g.alloc(5 * EV);
    const nev = g.alloc(4);
    fdSub(g, subs, 10n, 2, 1);
    fdSub(g, subs + SUB, 11n, 1, 0);
    fdSub(g, subs + 2 * SUB, 12n, 1, f);
    fdSub(g, subs + 3 * SUB, 13n, 1, 42);
    clockSub(g, subs + 4 * SUB, 14n, 1, 10_000_000_000n);
    const t0 = performance.now();
    expect(g.call('poll_oneoff', subs, out, 5, nev)).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(g.u32(nev)).toBe(4);
    expect(events(g, out, 4)).toEqual([
      { userdata: 10n, error: 0, type: 2, nbytes: 0n },
      { userdata: 11n, error: 0, type: 1, nbytes: 0n },
      { userdata: 12n, error: 0, type: 1, nbytes: 3n },
      { userdata: 13n, error: Errno.BADF, type: 1, nbytes: 0n },
    ]);
  });

  it('poll_oneoff with no subscriptions returns INVAL and FAULT for a bad pointer', () => {
    const g = new Guest();
    expect(g.call('poll_oneoff', 0, 0, 0, g.alloc(4))).toBe(Errno.INVAL);
    expect(g.call('poll_oneoff', 65500, 0, 1, g.alloc(4))).toBe(Errno.FAULT);
  });
});

describe('host directory contents', () => {
  it('readdir on a host mount sees files created on the host', () => {
    const dir = join(host.dir, 'seen');
    mkdirSync(dir);
    writeFileSync(join(dir, 'made-by-host'), 'x');
    const g = new Guest({ mounts: [{ guest: '/h', kind: 'host', host: dir }] });
    expect(listAll(g, 3, 4096).map((e) => e.name)).toEqual(['.', '..', 'made-by-host']);
  });
});
