// Grid system calls (gridvm.spawn/fork/wait/gpid/parent/rank/size): the ABI, and blocking calls that suspend the
// job to a snapshot which is answered and continued in the same or a fresh Machine, after encoding too.
import { beforeAll, describe, expect, it } from 'vitest';
import { Errno, SYSCALLS, type GridCall, type GridIdentity, type GridResult } from '../../kernel/index.js';
import { SUSPENDING_IMPORTS, type CompiledJob, type Snapshot } from '../../vm/index.js';
import { hasClang } from '../harness/guests.js';
import { drive, GridGuest, loadGuest, ownSnapshot, roundTrip, TestVm } from '../harness/grid.js';

const clang = hasClang();
const id = (gpid: bigint, parent = 0n, node = 'node-a', rank = 0, size = 1): GridIdentity => ({ gpid, parent, rank, size, node });

describe('grid calls in the syscall table and the ABI', () => {
  it('are in the table with stable ids, docs, and spawn/fork/wait marked blocking and suspending', () => {
    const grid = SYSCALLS.filter((s) => s.cap === 'grid');
    expect(grid.map((s) => [s.name, s.id])).toEqual([['spawn', 1003], ['fork', 1004], ['wait', 1005], ['gpid', 1006], ['parent', 1007], ['rank', 1008], ['size', 1009]]);
    expect(grid.filter((s) => s.blocking).map((s) => s.name)).toEqual(['spawn', 'fork', 'wait']);
    for (const s of grid) expect(s.doc).toMatch(/Returns:.*Errors:.*Traps:/s);
    expect([...SUSPENDING_IMPORTS]).toEqual(['gridvm.yield', 'gridvm.spawn', 'gridvm.fork', 'gridvm.wait']);
  });

  it('gpid/parent/rank/size read the identity, with lone-process defaults', () => {
    const g = new GridGuest({ grid: id(42n, 7n, 'n', 3, 8) });
    expect([g.gridvm.gpid!(), g.gridvm.parent!(), g.gridvm.rank!(), g.gridvm.size!()]).toEqual([42n, 7n, 3, 8]);
    const lone = new GridGuest({});
    expect([lone.gridvm.gpid!(), lone.gridvm.parent!(), lone.gridvm.rank!(), lone.gridvm.size!()]).toEqual([1n, 0n, 0, 1]);
  });

  it('spawn decodes the path and NUL-separated argv and passes them to the block hook', () => {
    const seen: GridCall[] = [];
    const g = new GridGuest({ grid: id(1n), block: (c) => (seen.push(c), { value: 5n }) });
    const [pp, pl] = g.bytes('/jobs/x.wasm');
    const [ap, al] = g.bytes('x\0a b\0\0last\0');
    expect(g.gridvm.spawn!(pp, pl, ap, al)).toBe(5n);
    expect(seen).toEqual([{ op: 'spawn', path: '/jobs/x.wasm', argv: ['x', 'a b', '', 'last'] }]);
  });

  it('wait writes the exit status only for a child, and returns a negative errno as given', () => {
    const answers: GridResult[] = [{ value: 9n, status: 42 }, { value: -BigInt(Errno.CHILD) }];
    const g = new GridGuest({ grid: id(1n), block: () => answers.shift() });
    const st = g.alloc(4);
    g.dv.setInt32(st, -1, true);
    expect(g.gridvm.wait!(9n, st)).toBe(9n);
    expect(g.dv.getInt32(st, true)).toBe(42);
    g.dv.setInt32(st, -1, true);
    expect(g.gridvm.wait!(-1n, st)).toBe(-BigInt(Errno.CHILD));
    expect(g.dv.getInt32(st, true)).toBe(-1);
  });

  it('bad arguments fail with a negative errno without calling the hook (no unwind)', () => {
    let calls = 0;
    const g = new GridGuest({ grid: id(1n), block: () => (calls++, { value: 1n }) });
    const [ap, al] = g.bytes('a\0');
    expect(g.gridvm.spawn!(0x7fff_0000, 4, ap, al)).toBe(-BigInt(Errno.FAULT));
    const [bp, bl] = g.bytes(new Uint8Array([0xff, 0xfe]));
    expect(g.gridvm.spawn!(bp, bl, ap, al)).toBe(-BigInt(Errno.ILSEQ));
    expect(g.gridvm.spawn!(bp, 0, ap, al)).toBe(-BigInt(Errno.NOENT));
    expect(g.gridvm.wait!(0n, g.alloc(4))).toBe(-BigInt(Errno.INVAL));
    expect(g.gridvm.wait!(-2n, g.alloc(4))).toBe(-BigInt(Errno.INVAL));
    expect(g.gridvm.wait!(3n, 0x7fff_fff0)).toBe(-BigInt(Errno.FAULT));
    expect(calls).toBe(0);
  });

  it('without a grid identity (or VM hook) spawn, fork and wait fail with NOSYS', () => {
    const g = new GridGuest({ block: () => ({ value: 1n }) });
    const [pp, pl] = g.bytes('/x');
    expect(g.gridvm.spawn!(pp, pl, pp, 0)).toBe(-BigInt(Errno.NOSYS));
    expect(g.gridvm.fork!()).toBe(-BigInt(Errno.NOSYS));
    expect(g.gridvm.wait!(-1n, g.alloc(4))).toBe(-BigInt(Errno.NOSYS));
    const noHook = new GridGuest({ grid: id(1n) });
    expect(noHook.gridvm.fork!()).toBe(-BigInt(Errno.NOSYS));
  });
});

describe.skipIf(!clang)('blocking grid calls suspend the job and continue from the snapshot', () => {
  let spawnWait: CompiledJob;
  let forker: CompiledJob;
  const PATH = '/jobs/spawn_wait.wasm';
  const UNITS = '300';
  beforeAll(async () => {
    [spawnWait, forker] = await Promise.all([loadGuest('spawn_wait'), loadGuest('forker')]);
  }, 120_000);

  const expected = ['spawned child 1', 'spawned child 2', 'spawned child 3', 'child 1: exit 1', 'child 2: exit 2', 'child 3: exit 3', 'wait for more: ECHILD', 'total 6', ''].join('\n');

  /** The coordinator's part for spawn_wait: run each spawned child as its own Machine, answer wait with its code. */
  function children(): { answer: (c: GridCall) => GridResult; outputs: string[] } {
    let next = 1000n;
    const exits = new Map<bigint, number>();
    const outputs: string[] = [];
    const answer = (c: GridCall): GridResult => {
      if (c.op === 'spawn') {
        const gpid = next++;
        const child = new TestVm(spawnWait, { args: c.argv, grid: id(gpid, 1n) });
        const out = child.machine.run();
        expect(out.kind).toBe('exit');
        exits.set(gpid, out.kind === 'exit' ? out.code : -1);
        outputs.push(child.stdout);
        return { value: gpid };
      }
      if (c.op === 'wait') {
        const g = c.gpid === -1n ? [...exits.keys()][0] : c.gpid;
        if (g === undefined || !exits.has(g)) return { value: -BigInt(Errno.CHILD) };
        const status = exits.get(g)!;
        exits.delete(g);
        return { value: g, status };
      }
      return { value: -BigInt(Errno.NOSYS) };
    };
    return { answer, outputs };
  }

  it('spawn_wait blocks at each call; answered in the same Machine it prints the children exit codes', () => {
    const vm = new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n) });
    const first = vm.machine.run();
    expect(first.kind).toBe('blocked');
    if (first.kind !== 'blocked') return;
    expect(first.call).toEqual({ op: 'spawn', path: PATH, argv: [PATH, 'child', '1', UNITS] });
    expect(first.snapshot.blocked).toEqual(first.call);
    expect(vm.machine.blockedCall).toEqual(first.call);
    const kids = children();
    vm.machine.resolveBlocked(kids.answer(first.call));
    const r = drive(vm, kids.answer);
    expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
    expect(r.calls.map((c) => c.op)).toEqual(['spawn', 'spawn', 'wait', 'wait', 'wait', 'wait']);
    expect(r.calls.slice(2)).toEqual([{ op: 'wait', gpid: 1000n }, { op: 'wait', gpid: 1001n }, { op: 'wait', gpid: 1002n }, { op: 'wait', gpid: -1n }]);
    expect(vm.stdout).toBe(expected);
    expect(kids.outputs).toHaveLength(3);
    kids.outputs.forEach((o, i) => expect(o).toMatch(new RegExp(`^child ${i + 1}: result \\d+\\n$`)));
  });

  it('spawn_wait continued in a fresh Machine at every call, after encoding and decoding, prints the same', () => {
    const kids = children();
    const r = drive(new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n) }), kids.answer, {
      migrate: (from) => new TestVm(spawnWait, { grid: id(1n, 0n, 'elsewhere') }, from),
    });
    expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
    expect(r.vms).toHaveLength(8); // 7 blocking calls
    expect(r.stdout).toBe(expected);
    // the children print the same whoever runs them
    const again = children();
    drive(new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n) }), again.answer);
    expect(again.outputs).toEqual(kids.outputs);
  });

  it('a blocked snapshot restored in a fresh Machine (decoded or not) continues with the answer given there', () => {
    const vm = new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n) });
    const b = vm.machine.run();
    if (b.kind !== 'blocked') throw new Error(`expected blocked, got ${b.kind}`);
    const snap = ownSnapshot(b.snapshot);
    const decoded = roundTrip(snap);
    expect(decoded.snap.blocked).toEqual({ op: 'spawn', path: PATH, argv: [PATH, 'child', '1', UNITS] });
    for (const from of [{ snap }, decoded]) {
      const fresh = new TestVm(spawnWait, { grid: id(1n) }, from);
      const kids = children();
      fresh.machine.resolveBlocked(kids.answer(from.snap.blocked!));
      const r = drive(fresh, kids.answer);
      expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
      expect(vm.stdout + r.stdout).toBe(expected);
    }
  });

  it('run() after restoring a blocked snapshot without resolveBlocked throws; resolveBlocked when not blocked throws', () => {
    const vm = new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n) });
    const b = vm.machine.run();
    if (b.kind !== 'blocked') throw new Error('expected blocked');
    expect(() => vm.machine.run()).toThrow(/blocked in a grid spawn call: call resolveBlocked/);
    const fresh = new TestVm(spawnWait, { grid: id(1n) }, { snap: ownSnapshot(b.snapshot) });
    expect(() => fresh.machine.run()).toThrow(/resolveBlocked/);
    const idle = new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n) });
    expect(() => idle.machine.resolveBlocked({ value: 1n })).toThrow(/not blocked/);
  });

  it('without a grid identity spawn returns -NOSYS to the job and nothing blocks', () => {
    const vm = new TestVm(spawnWait, { args: [PATH, UNITS] });
    expect(vm.machine.run()).toEqual({ kind: 'exit', code: 1 });
    expect(vm.stdout).toBe(`spawn 1 failed: -${Errno.NOSYS}\n`);
  });

  it('checkpoints at every yield around blocking calls do not change the run', () => {
    let ck = 0;
    const kids = children();
    const vm = new TestVm(spawnWait, { args: [PATH, UNITS], grid: id(1n), machine: { slice: 5000, policy: () => 'checkpoint', onCheckpoint: () => ck++ } });
    const r = drive(vm, kids.answer);
    expect(r.outcome).toEqual({ kind: 'exit', code: 0 });
    expect(vm.stdout).toBe(expected);
    expect(ck).toBeGreaterThan(0);
  });

  it('fork: the child continues from the parent snapshot with 0 and its own identity, the parent with its GPID', () => {
    const mounts = [{ guest: '/data', kind: 'memory' as const }];
    const parent = new TestVm(forker, { args: ['forker', '/data'], mounts, grid: id(10n) });
    const b = parent.machine.run();
    if (b.kind !== 'blocked') throw new Error(`expected blocked, got ${b.kind}`);
    expect(b.call).toEqual({ op: 'fork' });
    expect(parent.stdout).toMatch(/^before fork: sum [0-9a-f]{16}\n$/);
    const snap: Snapshot = ownSnapshot(b.snapshot);
    const moved = roundTrip(snap);

    const runChild = (from: { snap: Snapshot; apply?: (dst: Uint8Array) => void }) => {
      const child = new TestVm(forker, { mounts, grid: id(11n, 10n, 'node-b') }, from);
      child.machine.resolveBlocked({ value: 0n });
      const out = child.machine.run();
      return { out, child };
    };
    const c1 = runChild(moved);
    expect(c1.out.kind).toBe('exit');
    const code = c1.out.kind === 'exit' ? c1.out.code : -1;
    expect(code).toBeGreaterThanOrEqual(1);
    expect(code).toBeLessThanOrEqual(100);
    expect(c1.child.stdout).toBe(`child: parent is set, sum ${/sum ([0-9a-f]{16}), exiting/.exec(c1.child.stdout)?.[1]}, exiting with ${code}\n`);
    // the same snapshot again (not decoded) gives the same child
    const c2 = runChild({ snap });
    expect(c2.child.stdout).toBe(c1.child.stdout);

    const p = new TestVm(forker, { mounts, grid: id(10n) }, moved);
    p.machine.resolveBlocked({ value: 11n });
    const w = p.machine.run();
    if (w.kind !== 'blocked') throw new Error(`expected the parent to block in wait, got ${w.kind}`);
    expect(w.call).toEqual({ op: 'wait', gpid: 11n });
    p.machine.resolveBlocked({ value: 11n, status: code });
    expect(p.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(p.stdout).toMatch(new RegExp(`^parent: child exited with ${code}, own sum [0-9a-f]{16}\\n$`));
    // each got its own copy of the in-memory file system from the snapshot
    const file = (vm: TestVm): string => {
      const fs = vm.proc.vfs.mounts[0]!.memfs!.save();
      const node = fs.nodes.find((n) => n.kind === 'file');
      return new TextDecoder().decode(node?.data ?? new Uint8Array(0));
    };
    expect(file(c1.child)).toMatch(/^before fork [0-9a-f]{16}\nchild [0-9a-f]{16}\n$/);
    expect(file(p)).toMatch(/^before fork [0-9a-f]{16}\nparent [0-9a-f]{16}\n$/);
  });
});

describe('AssemblyScript SDK', () => {
  it('as_rank prints the rank, size, gpid and parent it is given, and the defaults without a grid host', async () => {
    const job = await loadGuest('as_rank');
    const withGrid = new TestVm(job, { args: ['as_rank'], grid: id(42n, 7n, 'n', 3, 8) });
    expect(withGrid.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(withGrid.stdout).toBe('as_rank: rank 3 of 8\nas_rank: gpid 42, parent 7\n');
    const lone = new TestVm(job, { args: ['as_rank'] });
    expect(lone.machine.run()).toEqual({ kind: 'exit', code: 0 });
    expect(lone.stdout).toBe('as_rank: rank 0 of 1\nas_rank: gpid 1, parent 0\n');
  }, 60_000);
});
