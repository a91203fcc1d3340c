import { describe, it, expect } from 'vitest';
import { Scheduler, SchedError, type Decision, type SchedState } from '../../kernel/sched/index.js';
import { prng } from '../harness/util.js';


const g = (n: number): bigint => BigInt(n);
const placed = (ds: Decision[]): bigint[] => ds.filter((d) => d.kind === 'place').map((d) => d.gpid);
const stateOf = (s: Scheduler, n: number): SchedState | undefined => s.process(g(n))?.state;
const nodeOf = (s: Scheduler, n: number): string | undefined => s.process(g(n))?.node;
const used = (s: Scheduler, id: string): number => s.nodes().find((n) => n.id === id)!.used;

describe('fork-delay queue', () => {
  it('queues 4× more processes than slots and runs them all after releases, by priority then FIFO', () => {
    const s = new Scheduler({ preempt: false });
    s.addNode({ id: 'a', slots: 2 });
    s.addNode({ id: 'b', slots: 2 });
    const prio = (i: number): number => (i % 3 === 0 ? 5 : i % 3 === 1 ? 0 : 2);
    for (let i = 1; i <= 16; i++) s.submit({ gpid: g(i), priority: prio(i) });
    const expectedOrder = Array.from({ length: 16 }, (_, k) => k + 1)
      .sort((x, y) => prio(y) - prio(x) || x - y).map(g);
    const order: bigint[] = [...placed(s.tick())];
    expect(order).toEqual(expectedOrder.slice(0, 4));
    expect(s.list().filter((e) => e.state === 'queued')).toHaveLength(12);
    expect(s.queue()).toEqual(expectedOrder.slice(4));
    // release one at a time, oldest running first: exactly one place per release
    while (order.length < 16) {
      const running = s.list().filter((e) => e.state === 'running').sort((x, y) => x.seq - y.seq);
      s.release(running[0]!.gpid);
      const p = placed(s.tick());
      expect(p).toHaveLength(1);
      order.push(...p);
      expect(s.nodes().every((n) => n.used <= n.slots)).toBe(true);
    }
    expect(order).toEqual(expectedOrder);
    for (const e of s.list()) s.release(e.gpid);
    expect(s.list()).toEqual([]);
    expect(s.tick()).toEqual([]);
  });

  it('does nothing on a tick with nothing waiting', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    expect(s.tick()).toEqual([]);
    s.submit({ gpid: 1n });
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 1n, node: 'a', resume: false }]);
    expect(s.tick()).toEqual([]);
  });

  it('keeps processes queued while no node exists and places them when one joins', () => {
    const s = new Scheduler();
    s.submit({ gpid: 1n });
    expect(s.tick()).toEqual([]);
    expect(stateOf(s, 1)).toBe('queued');
    s.addNode({ id: 'a', slots: 1 });
    expect(placed(s.tick())).toEqual([1n]);
  });
});

describe('placement', () => {
  it('prefers the node with the most free slots, ties by node id', () => {
    const s = new Scheduler();
    s.addNode({ id: 'b', slots: 4 });
    s.addNode({ id: 'a', slots: 4 });
    s.addNode({ id: 'c', slots: 8 });
    s.submit({ gpid: 1n });
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 1n, node: 'c', resume: false }]);
    // spreads: c has 7 free, a and b 4 each
    for (let i = 2; i <= 5; i++) s.submit({ gpid: g(i) });
    s.tick();
    expect([2, 3, 4, 5].map((i) => nodeOf(s, i))).toEqual(['c', 'c', 'c', 'a']);
    expect(s.nodes().map((n) => [n.id, n.used])).toEqual([['a', 1], ['b', 0], ['c', 4]]);
  });

  it('weighs free slots by speed and external load', () => {
    const s = new Scheduler();
    s.addNode({ id: 'slow', slots: 4, speed: 1 });
    s.addNode({ id: 'fast', slots: 2, speed: 3 });
    s.addNode({ id: 'busy', slots: 8, speed: 3, load: 0.9 });
    s.submit({ gpid: 1n });
    s.tick();
    expect(nodeOf(s, 1)).toBe('fast'); // 2 × 3 > 4 × 1; busy is too slow (0.3 < 3/2)
    s.updateNode('busy', { load: 0 });
    s.submit({ gpid: 2n });
    s.tick();
    expect(nodeOf(s, 2)).toBe('busy'); // 8 × 3 now
  });

  it('honours preferNode when it has a free slot and avoidNode always', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.addNode({ id: 'b', slots: 4 });
    s.submit({ gpid: 1n, preferNode: 'a' });
    s.submit({ gpid: 2n, preferNode: 'a' });
    s.submit({ gpid: 3n, avoidNode: 'b' });
    s.tick();
    expect([nodeOf(s, 1), nodeOf(s, 2), stateOf(s, 3)]).toEqual(['a', 'b', 'queued']);
    s.release(1n);
    s.tick();
    expect(nodeOf(s, 3)).toBe('a');
  });

  it('spreads a child away from its spreadFrom node when another has a free slot, and uses it otherwise', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 2 });
    s.addNode({ id: 'b', slots: 1 });
    // a has the most free capacity, but the child spreads from a
    s.submit({ gpid: 1n, spreadFrom: 'a' });
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 1n, node: 'b', resume: false }]);
    // b is full now: the next child of a goes to a
    s.submit({ gpid: 2n, spreadFrom: 'a' });
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 2n, node: 'a', resume: false }]);
  });

  it('relaxes avoidNode when the avoided node is the only one with slots', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.submit({ gpid: 1n, avoidNode: 'a' });
    expect(placed(s.tick())).toEqual([1n]);
    expect(nodeOf(s, 1)).toBe('a');
  });

  it('never places on a dead node and places there again once it is alive', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 2 });
    s.updateNode('a', { alive: false });
    s.submit({ gpid: 1n });
    expect(s.tick()).toEqual([]);
    s.updateNode('a', { alive: true });
    expect(placed(s.tick())).toEqual([1n]);
  });
});

describe('preemption', () => {
  it('suspends the lowest-priority running process for a strictly higher one and resumes it later', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 2 });
    s.submit({ gpid: 1n, priority: 1 });
    s.submit({ gpid: 2n, priority: 0 });
    s.tick();
    s.submit({ gpid: 3n, priority: 5 });
    expect(s.tick()).toEqual([{ kind: 'suspend', gpid: 2n, node: 'a', beneficiary: 3n }]);
    expect(stateOf(s, 2)).toBe('suspending');
    // the suspend is pending: no second victim for the same waiting process
    expect(s.tick()).toEqual([]);
    expect(s.suspended(2n)).toBe(true);
    expect(stateOf(s, 2)).toBe('suspended');
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 3n, node: 'a', resume: false }]);
    expect(s.queue()).toEqual([2n]);
    s.release(3n);
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 2n, node: 'a', resume: true }]);
    expect(s.process(2n)).toMatchObject({ state: 'running', priority: 0, seq: 2 });
  });

  it('does not suspend for an equal priority', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.submit({ gpid: 1n, priority: 3 });
    s.tick();
    s.submit({ gpid: 2n, priority: 3 });
    expect(s.tick()).toEqual([]);
    expect(stateOf(s, 2)).toBe('queued');
  });

  it('does not suspend when the policy turns preemption off', () => {
    const s = new Scheduler({ preempt: false });
    s.addNode({ id: 'a', slots: 1 });
    s.submit({ gpid: 1n, priority: 0 });
    s.tick();
    s.submit({ gpid: 2n, priority: 9 });
    expect(s.tick()).toEqual([]);
  });

  it('suspends one victim per waiting process, latest submitted first among equals', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 3 });
    for (let i = 1; i <= 3; i++) s.submit({ gpid: g(i), priority: 0 });
    s.tick();
    s.submit({ gpid: 10n, priority: 2 });
    s.submit({ gpid: 11n, priority: 1 });
    expect(s.tick()).toEqual([
      { kind: 'suspend', gpid: 3n, node: 'a', beneficiary: 10n },
      { kind: 'suspend', gpid: 2n, node: 'a', beneficiary: 11n },
    ]);
  });

  it('keeps the original submission order for a suspended process in the queue', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.submit({ gpid: 1n, priority: 0 });
    s.tick();
    s.submit({ gpid: 2n, priority: 0 });
    s.submit({ gpid: 3n, priority: 1 });
    s.tick();
    s.suspended(1n);
    s.tick(); // 3 runs
    expect(s.queue()).toEqual([1n, 2n]);
  });

  it('ignores suspended() for a process that blocked or exited meanwhile', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.submit({ gpid: 1n });
    s.tick();
    s.submit({ gpid: 2n, priority: 1 });
    s.tick();
    s.block(1n);
    expect(s.suspended(1n)).toBe(false);
    expect(stateOf(s, 1)).toBe('blocked');
    expect(placed(s.tick())).toEqual([2n]);
  });
});

describe('node loss', () => {
  it('removeNode returns its processes, which are placed elsewhere before others of their priority', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 2 });
    s.addNode({ id: 'b', slots: 2 });
    for (let i = 1; i <= 4; i++) s.submit({ gpid: g(i) });
    s.tick();
    s.block(4n);
    for (let i = 5; i <= 7; i++) s.submit({ gpid: g(i) });
    s.submit({ gpid: 8n, priority: 1 });
    s.tick(); // b's slot freed by the blocked 4 goes to 8
    const onA = s.nodes().find((n) => n.id === 'a')!.processes;
    const lost = s.removeNode('a');
    expect(lost).toEqual([...onA].sort((x, y) => Number(x - y)));
    for (const gp of lost) expect(s.process(gp)).toMatchObject({ state: 'queued', node: undefined, started: true });
    expect(s.queue()).toEqual([...lost, 5n, 6n, 7n]);
    s.addNode({ id: 'c', slots: 2 });
    const ds = s.tick();
    expect(ds).toEqual(lost.map((gpid) => ({ kind: 'place', gpid, node: 'c', resume: true })));
  });

  it('returns blocked processes of the lost node too', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.submit({ gpid: 1n });
    s.tick();
    s.block(1n);
    expect(s.removeNode('a')).toEqual([1n]);
    expect(stateOf(s, 1)).toBe('queued');
    expect(s.unblock(1n)).toBe(false);
  });
});

describe('rebalancing', () => {
  it('migrates from an over-subscribed node to an idle one and does not ping-pong on the next tick', () => {
    // the excess are the lowest-priority, latest-submitted processes; they move in queue order
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 4 });
    for (let i = 1; i <= 4; i++) s.submit({ gpid: g(i), priority: i === 2 ? 1 : 0 });
    s.tick();
    s.addNode({ id: 'b', slots: 4 });
    s.updateNode('a', { slots: 2 });
    expect(s.tick()).toEqual([
      { kind: 'migrate', gpid: 3n, from: 'a', to: 'b', reason: 'oversubscribed' },
      { kind: 'migrate', gpid: 4n, from: 'a', to: 'b', reason: 'oversubscribed' },
    ]);
    expect(s.nodes().find((n) => n.id === 'a')!.processes).toEqual([1n, 2n]);
    expect([used(s, 'a'), used(s, 'b')]).toEqual([2, 2]);
    for (let i = 0; i < 10; i++) expect(s.tick()).toEqual([]);
  });

  it('moves excess processes in priority order and, without preemption, leaves the rest running when free slots run out', () => {
    const s = new Scheduler({ preempt: false });
    s.addNode({ id: 'a', slots: 3 });
    for (let i = 1; i <= 3; i++) s.submit({ gpid: g(i) });
    s.tick();
    s.updateNode('a', { slots: 0 }); // draining
    s.addNode({ id: 'b', slots: 2 });
    const ds = s.tick();
    expect(ds.map((d) => d.kind === 'migrate' && d.gpid)).toEqual([1n, 2n]);
    expect(used(s, 'a')).toBe(1);
    expect(s.tick()).toEqual([]); // nowhere to go
    s.release(1n); // frees a slot on b: the last excess process follows
    expect(s.tick()).toEqual([{ kind: 'migrate', gpid: 3n, from: 'a', to: 'b', reason: 'oversubscribed' }]);
    expect(used(s, 'a')).toBe(0);
  });

  it('overload: with no slot free anywhere, the excess of a shrunk node is suspended (lowest priority, newest first) and resumes where a slot frees', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 3 });
    s.submit({ gpid: 1n, priority: 1 });
    s.submit({ gpid: 2n });
    s.submit({ gpid: 3n });
    s.tick();
    s.addNode({ id: 'b', slots: 1 });
    s.submit({ gpid: 4n });
    expect(placed(s.tick())).toEqual([4n]);
    s.updateNode('a', { slots: 1 });
    // 2 over on a, nothing free on b: 3 then 2 (priority 0, newest first); 1 (priority 1) keeps running
    expect(s.tick()).toEqual([
      { kind: 'suspend', gpid: 3n, node: 'a', reason: 'overload' },
      { kind: 'suspend', gpid: 2n, node: 'a', reason: 'overload' },
    ]);
    expect(s.tick()).toEqual([]); // their checkpoints are pending: nothing more is suspended
    expect(s.suspended(3n)).toBe(true);
    expect(s.suspended(2n)).toBe(true);
    expect(stateOf(s, 2)).toBe('suspended');
    expect(used(s, 'a')).toBe(1);
    expect(s.tick()).toEqual([]); // still no slot: they wait
    s.release(4n);
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 2n, node: 'b', resume: true }]);
    s.updateNode('a', { slots: 2 });
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 3n, node: 'a', resume: true }]);
  });

  it('overload: a node drained to 0 slots suspends what cannot move, and a free slot elsewhere is preferred to a suspension', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 2 });
    s.addNode({ id: 'b', slots: 1 });
    for (let i = 1; i <= 3; i++) s.submit({ gpid: g(i) });
    s.tick();
    const onA = s.list().filter((e) => e.node === 'a').map((e) => e.gpid);
    expect(onA).toHaveLength(2);
    s.release(s.list().find((e) => e.node === 'b')!.gpid); // b has a free slot
    s.updateNode('a', { slots: 0 });
    const ds = s.tick();
    // one moves to b's free slot; then nothing is free: the other is suspended
    expect(ds.filter((d) => d.kind === 'migrate')).toHaveLength(1);
    expect(ds.filter((d) => d.kind === 'suspend')).toEqual([{ kind: 'suspend', gpid: ds.find((d) => d.kind === 'suspend')!.gpid, node: 'a', reason: 'overload' }]);
    expect(ds).toHaveLength(2);
  });

  it('a shrunk lookahead takes the staged processes beyond it back', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1, lookahead: 3 });
    for (let i = 1; i <= 4; i++) s.submit({ gpid: g(i) });
    s.tick();
    expect(s.nodes()[0]!.staged).toEqual([2n, 3n, 4n]);
    s.updateNode('a', { lookahead: 1 });
    expect(s.tick()).toEqual([
      { kind: 'unstage', gpid: 4n, node: 'a', reason: 'shrunk' },
      { kind: 'unstage', gpid: 3n, node: 'a', reason: 'shrunk' },
    ]);
  });

  it('does not move a process again within the cool-down', () => {
    const s = new Scheduler({ migrateCooldownTicks: 3 });
    s.addNode({ id: 'a', slots: 1 });
    s.addNode({ id: 'b', slots: 1 });
    s.submit({ gpid: 1n });
    s.tick();
    const first = nodeOf(s, 1)!;
    const other = first === 'a' ? 'b' : 'a';
    s.updateNode(first, { slots: 0 });
    expect(s.tick()).toEqual([{ kind: 'migrate', gpid: 1n, from: first, to: other, reason: 'oversubscribed' }]);
    s.updateNode(first, { slots: 1 });
    s.updateNode(other, { slots: 0 });
    expect(s.tick()).toEqual([]);
    expect(s.tick()).toEqual([]);
    expect(s.tick()).toEqual([]);
    expect(s.tick()).toEqual([{ kind: 'migrate', gpid: 1n, from: other, to: first, reason: 'oversubscribed' }]);
  });

  it('moves a process off a node that became much slower, once', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 2 });
    s.addNode({ id: 'b', slots: 2 });
    s.submit({ gpid: 1n });
    s.submit({ gpid: 2n });
    s.tick();
    expect([nodeOf(s, 1), nodeOf(s, 2)]).toEqual(['a', 'b']);
    s.updateNode('a', { load: 0.8 }); // effective speed 0.2 vs 1: more than 2× slower
    expect(s.tick()).toEqual([{ kind: 'migrate', gpid: 1n, from: 'a', to: 'b', reason: 'speed' }]);
    s.updateNode('a', { load: 0 });
    for (let i = 0; i < 10; i++) expect(s.tick()).toEqual([]);
  });

  it('does not move for a speed difference within the ratio', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1, speed: 1 });
    s.addNode({ id: 'b', slots: 1, speed: 1 });
    s.submit({ gpid: 1n });
    s.tick();
    s.updateNode('b', { speed: 2 });
    expect(s.tick()).toEqual([]);
    s.updateNode('b', { speed: 2.5 });
    expect(s.tick()).toEqual([{ kind: 'migrate', gpid: 1n, from: 'a', to: 'b', reason: 'speed' }]);
  });

  it('never migrates to or from a dead node', () => {
    // (without preemption: it would suspend a's excess, which has nowhere to go, for overload)
    const s = new Scheduler({ preempt: false });
    s.addNode({ id: 'a', slots: 2 });
    s.submit({ gpid: 1n });
    s.submit({ gpid: 2n });
    s.tick();
    s.addNode({ id: 'b', slots: 2, speed: 10 });
    s.updateNode('b', { alive: false });
    s.updateNode('a', { slots: 1 });
    expect(s.tick()).toEqual([]);
    s.updateNode('a', { alive: false });
    s.updateNode('b', { alive: true });
    expect(s.tick()).toEqual([]);
  });

  it('caps migrations per tick', () => {
    const s = new Scheduler({ maxMigrationsPerTick: 1 });
    s.addNode({ id: 'a', slots: 3 });
    for (let i = 1; i <= 3; i++) s.submit({ gpid: g(i) });
    s.tick();
    s.updateNode('a', { slots: 1 });
    s.addNode({ id: 'b', slots: 3 });
    expect(s.tick()).toHaveLength(1);
    expect(s.tick()).toHaveLength(1);
    expect(s.tick()).toEqual([]);
  });
});

describe('blocking', () => {
  it('frees the slot of a blocked process and requeues it, on its node, when it unblocks', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.addNode({ id: 'b', slots: 1 });
    s.submit({ gpid: 1n });
    s.tick();
    const home = nodeOf(s, 1)!;
    s.block(1n);
    expect(s.process(1n)).toMatchObject({ state: 'blocked', node: home });
    expect(s.nodes().find((n) => n.id === home)).toMatchObject({ used: 0, free: 1, blocked: [1n] });
    s.submit({ gpid: 2n, preferNode: home });
    s.tick();
    expect(nodeOf(s, 2)).toBe(home);
    s.release(2n);
    expect(s.unblock(1n)).toBe(true);
    expect(stateOf(s, 1)).toBe('queued');
    expect(s.tick()).toEqual([{ kind: 'place', gpid: 1n, node: home, resume: true }]);
  });

  it('refuses to block a process that is not running', () => {
    const s = new Scheduler();
    s.submit({ gpid: 1n });
    expect(() => s.block(1n)).toThrow(/not running/);
  });
});

describe('API checks', () => {
  it('rejects duplicates, unknown ids and bad node specs with SchedError', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    expect(() => s.addNode({ id: 'a', slots: 1 })).toThrow(/already in the grid/);
    expect(() => s.addNode({ id: 'x', slots: -1 })).toThrow(/slots must be an integer/);
    expect(() => s.addNode({ id: 'x', slots: 1, speed: 0 })).toThrow(/speed/);
    expect(() => s.updateNode('a', { load: 2 })).toThrow(/load/);
    expect(() => s.updateNode('zz', {})).toThrow(SchedError);
    expect(() => s.removeNode('zz')).toThrow(/unknown node zz/);
    s.submit({ gpid: 1n });
    expect(() => s.submit({ gpid: 1n })).toThrow(/already submitted/);
    expect(() => s.migrated(1n, 'a')).toThrow(/on no node/);
    expect(() => s.block(9n)).toThrow(/unknown process 9/);
    expect(s.release(9n)).toBe(false);
    expect(() => new Scheduler({ speedRatio: 0.5 })).toThrow(/speedRatio/);
  });

  it('lets the runtime report where a process really is', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    s.addNode({ id: 'b', slots: 1 });
    s.submit({ gpid: 1n, preferNode: 'a' });
    s.tick();
    s.migrated(1n, 'b');
    expect(s.process(1n)).toMatchObject({ state: 'running', node: 'b' });
    expect([used(s, 'a'), used(s, 'b')]).toEqual([0, 1]);
  });
});

describe('staging (lookahead)', () => {
  const staged = (ds: Decision[]): Array<[bigint, string]> => ds.filter((d) => d.kind === 'stage').map((d) => [d.gpid, d.node]);
  it('stages fresh processes behind full nodes, up to the lookahead; a freed slot stays theirs until the node begins one', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1, lookahead: 2 });
    s.addNode({ id: 'b', slots: 1, lookahead: 2 });
    for (let i = 1; i <= 8; i++) s.submit({ gpid: g(i) });
    const d = s.tick();
    expect(placed(d)).toEqual([1n, 2n]);
    expect(staged(d)).toEqual([[3n, 'a'], [4n, 'b'], [5n, 'a'], [6n, 'b']]);
    expect(s.queue()).toEqual([7n, 8n]);
    expect(stateOf(s, 3)).toBe('staged');
    expect(s.nodes().find((n) => n.id === 'a')!.staged).toEqual([3n, 5n]);
    // a slot frees: it is reserved for the staged ones (the node starts one by itself), nothing is placed there
    s.release(1n);
    expect(stateOf(s, 3)).toBe('staged');
    expect(s.nodes().find((n) => n.id === 'a')!.free).toBe(0);
    expect(placed(s.tick())).toEqual([]);
    // the node reports which one it began
    expect(s.began(3n)).toBe(true);
    expect(stateOf(s, 3)).toBe('running');
    expect(nodeOf(s, 3)).toBe('a');
    expect(used(s, 'a')).toBe(1);
    expect(s.began(3n)).toBe(false);
    // and the next tick refills the lookahead
    const d2 = s.tick();
    expect(placed(d2)).toEqual([]);
    expect(staged(d2)).toEqual([[7n, 'a']]);
    // blocking frees the slot too
    s.block(2n);
    expect(s.began(4n)).toBe(true);
    expect(used(s, 'b')).toBe(1);
  });

  it('does not stage while a slot is free, nor without lookahead, nor a process that ran before', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1 });
    for (let i = 1; i <= 3; i++) s.submit({ gpid: g(i) });
    expect(s.tick().map((d) => d.kind)).toEqual(['place']);
    s.updateNode('a', { lookahead: 1 });
    const d = s.tick();
    expect(staged(d)).toEqual([[2n, 'a']]);
    // a process of higher priority than what runs is not staged: it waits, and preemption serves it
    const t = new Scheduler({ preempt: true });
    t.addNode({ id: 'a', slots: 1, lookahead: 3 });
    t.submit({ gpid: 1n, priority: 0 });
    t.tick();
    t.submit({ gpid: 2n, priority: 5 });
    const p = t.tick();
    expect(p.find((x) => x.kind === 'suspend')?.gpid).toBe(1n);
    expect(staged(p)).toEqual([]);
    expect(t.suspended(1n)).toBe(true);
    expect(placed(t.tick())).toEqual([2n]);
    // a suspended process (it ran before) is never staged, and nothing queued behind it is staged ahead of it
    t.submit({ gpid: 3n, priority: 0 });
    expect(t.tick()).toEqual([]);
    expect(t.queue()).toEqual([1n, 3n]);
    expect(stateOf(t, 1)).toBe('suspended');
  });

  it('takes staged processes back for a higher-priority arrival and puts them at the front of their class', () => {
    const s = new Scheduler({ preempt: false });
    s.addNode({ id: 'a', slots: 1, lookahead: 2 });
    for (let i = 1; i <= 4; i++) s.submit({ gpid: g(i) });
    expect(staged(s.tick())).toEqual([[2n, 'a'], [3n, 'a']]);
    s.submit({ gpid: 9n, priority: 3 });
    const d = s.tick();
    expect(d.filter((x) => x.kind === 'unstage').map((x) => [x.gpid, x.kind === 'unstage' && x.reason])).toEqual([[3n, 'priority'], [2n, 'priority']]);
    expect(stateOf(s, 2)).toBe('unstaging');
    // the node gave 3 back; it had begun 2 (its slot had freed)
    expect(s.unstaged(3n, true)).toBe(true);
    s.release(1n);
    expect(s.unstaged(2n, false)).toBe(true);
    expect(stateOf(s, 2)).toBe('staged');
    expect(s.began(2n)).toBe(true);
    expect(stateOf(s, 2)).toBe('running');
    expect(s.queue()).toEqual([9n, 3n, 4n]);
    expect(s.unstaged(2n, true)).toBe(false);
    s.release(2n);
    const d2 = s.tick();
    expect(placed(d2)).toEqual([9n]);
    expect(staged(d2)).toEqual([[3n, 'a'], [4n, 'a']]);
    expect(s.queue()).toEqual([]);
  });

  it('steals a staged process for a node whose slot nothing waiting can use', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1, lookahead: 2 });
    s.addNode({ id: 'b', slots: 1, lookahead: 2 });
    for (let i = 1; i <= 6; i++) s.submit({ gpid: g(i) });
    s.tick(); // 1 on a, 2 on b; 3, 5 staged on a; 4, 6 on b
    s.release(2n);
    s.began(4n); // 4 runs on b
    s.release(4n);
    s.began(6n); // 6 runs on b
    s.release(6n); // b is idle; a still holds 3 and 5
    const d = s.tick();
    expect(d).toEqual([{ kind: 'unstage', gpid: 5n, node: 'a', reason: 'idle-node' }]);
    expect(s.tick()).toEqual([]); // asked once
    s.unstaged(5n, true);
    expect(placed(s.tick())).toEqual([5n]);
    expect(nodeOf(s, 5)).toBe('b');
  });

  it('hands staged and unstaging processes back when their node is removed', () => {
    const s = new Scheduler();
    s.addNode({ id: 'a', slots: 1, lookahead: 2 });
    for (let i = 1; i <= 4; i++) s.submit({ gpid: g(i) });
    s.tick();
    s.submit({ gpid: 7n, priority: 1 });
    s.tick(); // 2 and 3 unstaging
    expect(s.removeNode('a')).toEqual([1n, 2n, 3n]);
    for (const i of [1, 2, 3]) expect(s.process(g(i))).toMatchObject({ state: 'queued', node: undefined });
    expect(s.unstaged(2n, true)).toBe(false);
    expect(() => s.migrated(4n, 'a')).toThrow(SchedError);
    expect(() => s.addNode({ id: 'x', slots: 1, lookahead: -1 })).toThrow(/lookahead must be an integer/);
  });
});

describe('randomized invariants', () => {
  for (const seed of [1, 2, 3, 42, 2024]) {
    it(`keeps every process in exactly one state and within slots over thousands of operations (seed ${seed})`, () => {
      const rnd = prng(seed);
      const pick = <T>(xs: readonly T[]): T | undefined => (xs.length ? xs[Math.floor(rnd() * xs.length)] : undefined);
      const s = new Scheduler({
        preempt: rnd() < 0.8, migrateCooldownTicks: Math.floor(rnd() * 4), speedRatio: 1 + rnd() * 3,
      });
      const live = new Set<bigint>();
      const released = new Set<bigint>();
      let nextGpid = 1n;
      let nextNode = 0;
      const nodeIds = (): string[] => s.nodes().map((n) => n.id);
      const addNode = (): void => {
        s.addNode({
          id: `n${nextNode++}`, slots: Math.floor(rnd() * 4), speed: 0.5 + rnd() * 4, load: rnd() < 0.5 ? 0 : rnd(),
          lookahead: seed % 2 === 0 ? Math.floor(rnd() * 3) : 0,
        });
      };
      for (let i = 0; i < 3; i++) addNode();
      /** nodes allowed to be over their slots: shrunk, or given a process by migrated() */
      let overOk = new Map<string, number>();

      /** Invariant checks; plain throws in the loops (expect per item is slow over thousands of steps). */
      const check = (decisions: Decision[]): void => {
        const fail = (msg: string): never => {
          throw new Error(`seed ${seed}: ${msg}`);
        };
        const entries = s.list();
        const views = s.nodes();
        const byId = new Map(views.map((n) => [n.id, n]));
        const byGpid = new Map(entries.map((e) => [e.gpid, e]));
        if (byGpid.size !== entries.length) fail('a process is listed twice');
        for (const e of entries) {
          if (!live.has(e.gpid)) fail(`process ${e.gpid} is listed but was never submitted or was released`);
          if (e.state === 'queued' || e.state === 'suspended') {
            if (e.node !== undefined) fail(`waiting process ${e.gpid} is on node ${e.node}`);
          } else if (!['running', 'suspending', 'blocked', 'staged', 'unstaging'].includes(e.state)) fail(`bad state ${e.state}`);
          else if (!byId.has(e.node!)) fail(`process ${e.gpid} is on unknown node ${e.node}`);
          if (e.state === 'staged' && !byId.get(e.node!)!.staged.includes(e.gpid)) fail(`staged ${e.gpid} is not staged on ${e.node}`);
          if (e.state === 'unstaging' && byId.get(e.node!)!.staged.includes(e.gpid)) fail(`unstaging ${e.gpid} is still staged on ${e.node}`);
          if ((e.state === 'staged' || e.state === 'unstaging') && e.started) fail(`staged ${e.gpid} ran before`);
        }
        for (const n of views) {
          for (const p of n.staged) if (byGpid.get(p)?.state !== 'staged' || byGpid.get(p)?.node !== n.id) fail(`${p} staged on ${n.id} is ${byGpid.get(p)?.state}`);
          if (n.staged.length > n.lookahead && decisions.some((d) => d.kind === 'stage' && d.node === n.id)) fail(`node ${n.id} staged beyond its lookahead`);
          // staged processes reserve the slots that free
          if (n.free !== Math.max(0, n.slots - n.used - n.staged.length)) fail(`node ${n.id} shows ${n.free} free slots`);
        }
        if (entries.length !== live.size) fail(`${entries.length} listed, ${live.size} live`);
        const holders = new Set<bigint>();
        for (const n of views) {
          for (const p of n.processes) {
            const e = byGpid.get(p);
            if (holders.has(p)) fail(`process ${p} holds slots on two nodes`);
            holders.add(p);
            if (!e || (e.state !== 'running' && e.state !== 'suspending') || e.node !== n.id) {
              fail(`slot holder ${p} on ${n.id} is ${e?.state} on ${e?.node}`);
            }
          }
          for (const p of n.blocked) {
            const e = byGpid.get(p);
            if (!e || e.state !== 'blocked' || e.node !== n.id) fail(`blocked ${p} on ${n.id} is ${e?.state}`);
          }
          if (n.used !== n.processes.length) fail(`node ${n.id} used ${n.used} ≠ ${n.processes.length}`);
          // only a shrink or the runtime's word over-subscribes a node, and nothing adds to it while over
          if (n.used > n.slots && !(overOk.has(n.id) && n.used <= overOk.get(n.id)!)) {
            fail(`node ${n.id} runs ${n.used} in ${n.slots} slots`);
          }
        }
        const slotStates = entries.filter((e) => e.state === 'running' || e.state === 'suspending').length;
        if (holders.size !== slotStates) fail(`${holders.size} slot holders, ${slotStates} running/suspending`);
        const perProc = new Set<bigint>();
        for (const d of decisions) {
          if (released.has(d.gpid)) fail(`decision for released process ${d.gpid}`);
          if (perProc.has(d.gpid)) fail(`two decisions for ${d.gpid} in one tick`);
          perProc.add(d.gpid);
          if (d.kind === 'stage') {
            const e = byGpid.get(d.gpid)!;
            const n = byId.get(d.node)!;
            if (!n.alive || e.state !== 'staged' || e.node !== d.node) fail(`stage of ${d.gpid} on ${d.node}: ${e.state} on ${e.node}`);
            if (views.some((m) => m.alive && m.free > 0 && m.id !== d.node && (m.processes.length < m.slots))) {
              // staged only when no slot was free for it (nodes it must avoid aside)
              const placedHere = decisions.filter((x) => x.kind === 'place').length;
              if (placedHere === 0 && !entries.some((x) => x.avoidNode !== undefined || x.preferNode !== undefined)) fail(`staged ${d.gpid} while a slot was free`);
            }
          }
          if (d.kind === 'unstage' && byGpid.get(d.gpid)?.state !== 'unstaging') fail(`unstage of ${d.gpid} left it ${byGpid.get(d.gpid)?.state}`);
          if (d.kind === 'migrate' || d.kind === 'place') {
            const to = byId.get(d.kind === 'place' ? d.node : d.to)!;
            if (!to.alive) fail(`${d.kind} to dead node ${to.id}`);
            if (to.used > to.slots) fail(`${d.kind} to full node ${to.id}`);
          }
        }
        overOk = new Map(views.filter((n) => n.used > n.slots).map((n) => [n.id, n.used]));
      };

      let placements = 0;
      let stagings = 0;
      for (let step = 0; step < 3000; step++) {
        const r = rnd();
        const entries = s.list();
        const of = (...st: SchedState[]): bigint[] => entries.filter((e) => st.includes(e.state)).map((e) => e.gpid);
        let decisions: Decision[] = [];
        if (r < 0.22) {
          const gpid = nextGpid++;
          const ids = nodeIds();
          s.submit({
            gpid, priority: Math.floor(rnd() * 4),
            preferNode: rnd() < 0.1 ? pick(ids) : undefined, avoidNode: rnd() < 0.1 ? pick(ids) : undefined,
          });
          live.add(gpid);
        } else if (r < 0.45) {
          decisions = s.tick();
          placements += decisions.filter((d) => d.kind === 'place').length;
          stagings += decisions.filter((d) => d.kind === 'stage').length;
        } else if (r < 0.6) {
          const gp = pick(rnd() < 0.9 ? of('running', 'suspending', 'blocked') : [...live]);
          if (gp !== undefined) {
            expect(s.release(gp)).toBe(true);
            live.delete(gp);
            released.add(gp);
          }
        } else if (r < 0.68) {
          const gp = pick(of('suspending'));
          if (gp !== undefined) expect(s.suspended(gp)).toBe(true);
          // the node answers an unstage: given back, or begun already (it begins one only where a slot freed)
          const us = pick(of('unstaging'));
          if (us !== undefined) expect(s.unstaged(us, rnd() < 0.7)).toBe(true);
          // a node begins a staged process where a slot is free
          const st = pick(s.list().filter((e) => e.state === 'staged' || e.state === 'unstaging').map((e) => e.gpid));
          if (st !== undefined) {
            const n = s.nodes().find((x) => x.id === s.process(st)!.node)!;
            if (n.used < n.slots) expect(s.began(st)).toBe(true);
          }
        } else if (r < 0.74) {
          const gp = pick(of('running', 'suspending'));
          if (gp !== undefined) s.block(gp);
        } else if (r < 0.8) {
          const gp = pick(of('blocked'));
          if (gp !== undefined) expect(s.unblock(gp)).toBe(true);
        } else if (r < 0.86) {
          const id = pick(nodeIds());
          if (id !== undefined) {
            const q = rnd();
            if (q < 0.4) {
              s.updateNode(id, { slots: Math.floor(rnd() * 5) });
              const n = s.nodes().find((x) => x.id === id)!;
              if (n.used > n.slots) overOk.set(id, n.used);
            } else if (q < 0.7) s.updateNode(id, { load: rnd() < 0.3 ? 1 : rnd(), speed: 0.5 + rnd() * 4 });
            else s.updateNode(id, { alive: rnd() < 0.6 });
          }
        } else if (r < 0.9) {
          const id = pick(nodeIds());
          if (id !== undefined && s.nodes().length > 1) {
            const before = s.nodes().find((n) => n.id === id)!;
            const unstaging = s.list().filter((e) => e.state === 'unstaging' && e.node === id).map((e) => e.gpid);
            const lost = s.removeNode(id);
            expect(new Set(lost)).toEqual(new Set([...before.processes, ...before.blocked, ...before.staged, ...unstaging]));
            for (const gp of lost) expect(s.process(gp)).toMatchObject({ state: 'queued', node: undefined });
          }
        } else if (r < 0.95) {
          if (s.nodes().length < 7) addNode();
        } else {
          // the runtime moved a process on its own (or a migration failed back)
          const gp = pick(of('running', 'blocked'));
          const to = pick(nodeIds());
          if (gp !== undefined && to !== undefined) {
            s.migrated(gp, to);
            const n = s.nodes().find((x) => x.id === to)!;
            if (n.used > n.slots) overOk.set(to, Math.max(n.used, overOk.get(to) ?? 0));
          }
        }
        check(decisions);
      }
      expect(placements).toBeGreaterThan(100);
      if (seed % 2 === 0) expect(stagings).toBeGreaterThan(20);

      // liveness: with healthy nodes, everything left runs to completion
      for (const n of s.nodes()) s.updateNode(n.id, { alive: true, slots: Math.max(1, n.slots) });
      for (let round = 0; round < 10_000 && live.size > 0; round++) {
        for (const gp of s.list().filter((e) => e.state === 'blocked').map((e) => e.gpid)) s.unblock(gp);
        for (const gp of s.list().filter((e) => e.state === 'suspending').map((e) => e.gpid)) s.suspended(gp);
        for (const e of s.list().filter((x) => x.state === 'unstaging')) s.unstaged(e.gpid, rnd() < 0.5);
        for (const e of s.list().filter((x) => x.state === 'staged')) {
          const n = s.nodes().find((x) => x.id === e.node)!;
          if (n.used < n.slots) s.began(e.gpid);
        }
        check(s.tick());
        const running = s.list().filter((e) => e.state === 'running');
        const done = pick(running);
        if (done) {
          s.release(done.gpid);
          live.delete(done.gpid);
          released.add(done.gpid);
        }
      }
      expect(live.size).toBe(0);
      expect(s.list()).toEqual([]);
      for (const r of released) expect(s.process(r)).toBeUndefined();
    });
  }
});
