// /proc: a read-only 'proc' mount serving /proc/self/status and /proc/<gpid>/status from the host's procInfo, read
// at read time, confined like every mount, and plain data in a checkpoint (a restored fd reads from the new host).
import { beforeAll, describe, expect, it } from 'vitest';
import { Errno, formatProcStatus, type GridIdentity, type ProcStatus } from '../../kernel/index.js';
import type { CompiledJob } from '../../vm/index.js';
import { hasClang } from '../harness/guests.js';
import { GridGuest, loadGuest, ownSnapshot, roundTrip, TestVm } from '../harness/grid.js';
import { dec, OFLAGS, RIGHTS_RO, RIGHTS_RW } from './kernel-helpers.js';

const PROC = 3; // the first preopen
const id = (gpid: bigint, node: string): GridIdentity => ({ gpid, parent: 0n, rank: 0, size: 1, node });

function status(gpid: bigint, node: string, extra: Partial<ProcStatus> = {}): ProcStatus {
  return { gpid, name: `job${gpid}`, state: 'running', node, cpuTimeMs: 12.4, fuelUsed: 3456, memoryPeakBytes: 2 * 65536, checkpoints: 2, migrations: 1, ...extra };
}

/** A host that knows processes 5 (us) and 9, on `node`. */
function host(node: { v: string }) {
  return (g: bigint): ProcStatus | undefined => (g === 5n || g === 9n ? status(g, node.v) : undefined);
}

function readAll(g: GridGuest, fd: number): string {
  let s = '';
  for (;;) {
    const [e, b] = g.readFd(fd, 7); // small reads: the text must stay consistent across chunks
    expect(e).toBe(0);
    if (b.length === 0) return s;
    s += dec.decode(b);
  }
}

function readdirNames(g: GridGuest, fd: number): string[] {
  const buf = g.alloc(4096);
  const used = g.alloc(4);
  expect(g.call('fd_readdir', fd, buf, 4096, 0n, used)).toBe(0);
  const names: string[] = [];
  for (let at = buf; at < buf + g.u32(used);) {
    const len = g.u32(at + 16);
    names.push(dec.decode(g.read(at + 24, len)));
    at += 24 + len;
  }
  return names.filter((n) => n !== '.' && n !== '..').sort();
}

describe('/proc mount (kernel)', () => {
  it('formats status as Linux-like Key:\\tvalue lines', () => {
    expect(formatProcStatus(status(5n, 'n1'))).toBe(
      'Name:\tjob5\nGpid:\t5\nState:\trunning\nNode:\tn1\nCpuTimeMs:\t12\nFuelUsed:\t3456\nMemoryPeakBytes:\t131072\nCheckpoints:\t2\nMigrations:\t1\n',
    );
  });

  it('/proc/self/status and /proc/<gpid>/status read the host status at read time', () => {
    const node = { v: 'alpha' };
    const g = new GridGuest({ grid: id(5n, 'alpha'), procInfo: host(node) });
    const self = g.openOk(PROC, 'self/status', 0, RIGHTS_RO);
    expect(readAll(g, self)).toBe(formatProcStatus(status(5n, 'alpha')));
    const other = g.openOk(PROC, '9/status', 0, RIGHTS_RO);
    expect(readAll(g, other)).toContain('Gpid:\t9\n');
    node.v = 'beta';
    expect(g.seek(self, 0n, 0)[0]).toBe(0);
    expect(readAll(g, self)).toContain('Node:\tbeta\n');
    expect(g.filestat(self).size).toBe(BigInt(formatProcStatus(status(5n, 'beta')).length));
  });

  it('readdir lists self and our gpid; a process directory lists status', () => {
    const g = new GridGuest({ grid: id(5n, 'a'), procInfo: host({ v: 'a' }) });
    expect(readdirNames(g, PROC)).toEqual(['5', 'self']);
    const d = g.openOk(PROC, 'self', OFLAGS.DIRECTORY, RIGHTS_RO);
    expect(readdirNames(g, d)).toEqual(['status']);
  });

  it('an unknown gpid, a bad name or a missing file is NOENT', () => {
    const g = new GridGuest({ grid: id(5n, 'a'), procInfo: host({ v: 'a' }) });
    expect(g.open(PROC, '77/status', 0, RIGHTS_RO)[0]).toBe(Errno.NOENT);
    expect(g.open(PROC, 'abc/status', 0, RIGHTS_RO)[0]).toBe(Errno.NOENT);
    expect(g.open(PROC, '05/status', 0, RIGHTS_RO)[0]).toBe(Errno.NOENT);
    expect(g.open(PROC, 'self/maps', 0, RIGHTS_RO)[0]).toBe(Errno.NOENT);
  });

  it('refuses writes, creation and escapes', () => {
    const g = new GridGuest({ grid: id(5n, 'a'), procInfo: host({ v: 'a' }) });
    expect(g.open(PROC, 'self/status', 0, RIGHTS_RW)[0]).toBe(Errno.PERM);
    expect(g.open(PROC, 'self/new', OFLAGS.CREAT, RIGHTS_RW)[0]).toBe(Errno.PERM);
    expect(g.pathCall('path_create_directory', PROC, 'x')).toBe(Errno.PERM);
    expect(g.pathCall('path_unlink_file', PROC, 'self/status')).toBe(Errno.PERM);
    expect(g.open(PROC, '../etc', 0, RIGHTS_RO)[0]).toBe(Errno.PERM);
    expect(g.open(PROC, 'self/../../etc/passwd', 0, RIGHTS_RO)[0]).toBe(Errno.PERM);
    expect(g.open(PROC, '/etc/passwd', 0, RIGHTS_RO)[0]).toBe(Errno.PERM);
  });

  it('without procInfo, /proc/self/status still shows this process from its identity', () => {
    const g = new GridGuest({ args: ['/jobs/tool.wasm'], grid: id(8n, 'solo') });
    const t = readAll(g, g.openOk(PROC, 'self/status', 0, RIGHTS_RO));
    expect(t).toMatch(/^Name:\ttool.wasm\nGpid:\t8\nState:\trunning\nNode:\tsolo\n/);
    expect(g.open(PROC, '9/status', 0, RIGHTS_RO)[0]).toBe(Errno.NOENT);
  });

  it('an open /proc fd is plain data in ProcessState: restored, it reads from the new host', () => {
    const g = new GridGuest({ grid: id(5n, 'alpha'), procInfo: host({ v: 'alpha' }) });
    const fd = g.openOk(PROC, 'self/status', 0, RIGHTS_RO);
    expect(g.readFd(fd, 6)[1]).toEqual(new TextEncoder().encode('Name:\t'));
    const state = g.proc.saveState();
    expect(state.mounts).toEqual([{ guest: '/proc', kind: 'proc', host: null, readonly: true, memfs: null }]);
    const copy = structuredClone(state);
    const r = new GridGuest({ grid: id(5n, 'beta'), procInfo: host({ v: 'beta' }), state: copy });
    expect(g.seek(fd, 0n, 1)[1]).toBe(6n);
    expect(r.seek(fd, 0n, 0)[0]).toBe(0);
    expect(readAll(r, fd)).toContain('Node:\tbeta\n');
  });
});

describe.skipIf(!hasClang())('/proc from a guest (procstatus)', () => {
  let job: CompiledJob;
  beforeAll(async () => {
    job = await loadGuest('procstatus');
  }, 120_000);
  const mounts = [{ guest: '/proc', kind: 'proc' as const }];

  it('sees the gpid and node given, and after a checkpoint restored on another node prints the new node', () => {
    const nodeA = { v: 'node-a' };
    const full = new TestVm(job, { args: ['procstatus', '200'], mounts, grid: id(5n, 'node-a'), procInfo: host(nodeA) });
    expect(full.machine.run()).toEqual({ kind: 'exit', code: 0 });
    const lines = full.stdout.split('\n');
    expect(lines.slice(0, 2)).toEqual(['start Gpid:\t5', 'start Node:\tnode-a']);
    expect(lines.filter((l) => l.includes('Node:'))).toHaveLength(6);
    // /proc/<gpid>/status, opened by number, is the same process
    expect(lines.slice(-3)).toEqual(['byid Gpid:\t5', 'byid Node:\tnode-a', '']);

    // suspend half-way (by fuel), move the snapshot, continue on node-b
    const fuel = full.machine.fuelUsed;
    const first = new TestVm(job, {
      args: ['procstatus', '200'], mounts, grid: id(5n, 'node-a'), procInfo: host(nodeA),
      machine: { slice: 10_000, policy: (m) => (m.fuelUsed >= fuel / 2 ? 'suspend' : 'continue') },
    });
    const s = first.machine.run();
    if (s.kind !== 'suspended') throw new Error(`expected a suspension, got ${s.kind}`);
    const moved = roundTrip(ownSnapshot(s.snapshot));
    const second = new TestVm(job, { mounts, grid: id(5n, 'node-b'), procInfo: host({ v: 'node-b' }) }, moved);
    expect(second.machine.run()).toEqual({ kind: 'exit', code: 0 });
    const out = first.stdout + second.stdout;
    expect(out.replace(/node-[ab]/g, 'N')).toBe(full.stdout.replace(/node-a/g, 'N'));
    expect(first.stdout).toContain('start Node:\tnode-a');
    expect(second.stdout).toMatch(/part 4 Node:\tnode-b\nbyid Gpid:\t5\nbyid Node:\tnode-b\n$/);
    expect(second.stdout).not.toContain('node-a');
  });

  it('without a /proc mount the guest reports the open failure', () => {
    const vm = new TestVm(job, { args: ['procstatus', '10'] });
    expect(vm.machine.run()).toEqual({ kind: 'exit', code: 1 });
    expect(vm.stderr).toMatch(/open \/proc\/self\/status/);
  });
});
