/**
 * The global scheduler of one grid (DESIGN.md, seed item 6: fork-delay, suspension under load, migration).
 *
 * Pure decisions over plain state: nodes with `slots` (processes they run at once), a `speed` weight and an external
 * `load` in [0, 1]; processes identified by GPID. The runtime tells the scheduler what happened (submit, block,
 * release, suspended, migrated, node changes) and calls `tick()`, which returns decisions and applies them to its
 * own state at once; the runtime carries them out and reports back where reality differs (`migrated(gpid, from)`
 * after a failed migration, `release` for a process that died).
 *
 * Process states and transitions (every transition is one of these):
 *
 *   submit()                  → queued       waits for a slot (fork-delay)
 *   queued|suspended  --tick: place-->       running     holds a slot on `node`
 *   queued (never ran) --tick: stage-->      staged      waits on `node` behind its running processes (lookahead)
 *   staged|unstaging --began()-->            running     the node began it (a slot of it freed)
 *   staged    --tick: unstage-->             unstaging   the runtime tries to take it back from the node
 *   unstaging --unstaged(true)-->            queued      (at the front of its priority class)
 *   unstaging --unstaged(false)-->           staged      the node had begun it already: began() follows
 *   running   --tick: migrate-->             running     on the new node at once (the runtime moves it)
 *   running   --tick: suspend-->             suspending  still holds its slot until the checkpoint is taken
 *   suspending --suspended()-->              suspended   back in the queue, same priority and submission order
 *   running|suspending --block()-->          blocked     in a wait syscall: keeps its node, holds no slot
 *   blocked   --unblock()-->                 queued      (placement prefers the node it waited on)
 *   running|suspending|blocked --removeNode(its node)--> queued, at the front of its priority class
 *   any       --release()-->                 (gone)      exited or killed
 *   running|suspending|blocked --migrated(to)-->          same state, on `to` (the runtime's word wins)
 *
 * The wait queue holds 'queued' and 'suspended' processes, ordered by priority (higher first), then processes
 * requeued after their node was lost, then submission order (FIFO).
 *
 * One tick, in order:
 *  1. Demands, in queue order: every waiting process, plus the excess running processes of over-subscribed nodes
 *     (running more than `slots`: after `slots` shrank or a node is draining with slots 0), which rank as if at the
 *     front of their priority class. A waiting process is placed, an excess one migrated, on the best eligible node
 *     with a free slot; a demand that fits nowhere is skipped (later ones may still fit: backfilling).
 *  2. Preemption (`preempt`, default on): for each process still waiting, in queue order, that no pending suspend
 *     already serves: suspend the lowest-priority running process (latest submitted among equals) whose priority is
 *     strictly lower and whose node, once it is checkpointed, gives the waiting one a slot it may use.
 *  2b. Overload (with `preempt`): when no slot is free anywhere, an over-subscribed node's excess running processes
 *     are suspended to a checkpoint (lowest priority, latest submitted first) and wait in the queue.
 *  3. Speed rebalancing: a running process moves to a free slot on a node whose effective speed
 *     (speed × (1 − load)) is more than `speedRatio` times its own node's (slowest nodes first).
 *
 * Staging (`NodeSpec.lookahead`, default 0): a node may hold up to `lookahead` fresh processes queued behind its running
 * ones, so it starts the next one the moment a slot frees instead of waiting for the runtime's next round trip
 * (tiny jobs: the node never idles between them). Only processes that never ran are staged, and only once no
 * slot is free anywhere for them (after step 1). A staged process holds no slot but reserves one: a slot of its node
 * that frees is not free for placement while processes are staged there; the runtime reports which one the node
 * began (`began`, when the node says it started), which then holds the slot. A
 * tick takes staged processes back (`unstage`, before step 1) when a waiting process of strictly higher priority
 * would otherwise queue behind them, beyond a node's lookahead when that shrank, and when a node has a free slot that nothing waiting can use while another
 * node holds staged processes (work stealing: the newest staged process of the node holding the most).
 *
 * Placement: the `preferNode` if it has a free slot; otherwise, among eligible nodes with a free slot whose
 * effective speed is at least 1/speedRatio of the fastest such node (so step 3 never moves a process right after
 * placing it): the node it last ran on, if it ran before and that node is among them (its state is there: an
 * unblocked or suspended process); else, away from its `spreadFrom` node if another qualifies, the one with the most free capacity (free slots × effective speed), then
 * most free slots, then the lowest node id. Step 3 does not move a process off its `preferNode`. Eligible: alive,
 * and not the process's `avoidNode` — unless no other alive node has slots (the constraint is relaxed rather than
 * starving the process).
 *
 * Hysteresis: at most one decision per process per tick; a process is not migrated again within
 * `migrateCooldownTicks` ticks of its last migration; speed moves need a ratio > speedRatio ≥ 1, so the reverse
 * move is never due; over-subscription moves go only into free slots, so they do not create the imbalance that
 * would move them back. Dead nodes (alive: false) receive nothing and their processes are not moved (their state
 * cannot be checkpointed); `removeNode` hands them back to the runtime.
 */
import { SchedError } from './interval.js';

export type SchedState = 'queued' | 'suspended' | 'running' | 'suspending' | 'blocked' | 'staged' | 'unstaging';

export interface NodeSpec {
  id: string;
  /** Processes it runs at once (integer ≥ 0; 0 = draining). */
  slots: number;
  /** Relative speed of one slot (> 0). Default 1. */
  speed?: number;
  /** External load in [0, 1] (the owner's own work). Default 0. */
  load?: number;
  /** Fresh processes it may hold queued behind its running ones (integer ≥ 0; see Staging). Default 0. */
  lookahead?: number;
}

export interface NodePatch {
  slots?: number;
  speed?: number;
  load?: number;
  lookahead?: number;
  /** false: suspected dead (missed heartbeats); nothing is placed there until it is alive again or removed. */
  alive?: boolean;
}

export interface ProcessSpec {
  gpid: bigint;
  /** Higher runs first. Default 0. */
  priority?: number;
  /** Soft: used when it has a free slot. */
  preferNode?: string;
  /** It has state already (resubmitted after it ran): placing it resumes it, and it is never staged. */
  started?: boolean;
  /** Hard: never placed there, unless it is the only alive node with slots. */
  avoidNode?: string;
  /**
   * Soft: placed on another node when one with a free slot is fast enough (a spawned or forked child spreads away
   * from its parent's node).
   */
  spreadFrom?: string;
}

/** A process as `gridvm ps` shows it. */
export interface SchedEntry {
  readonly gpid: bigint;
  readonly state: SchedState;
  readonly priority: number;
  /**
   * running/suspending: the node whose slot it holds; blocked: the node it waits on; staged/unstaging: the node
   * that holds it; otherwise undefined.
   */
  readonly node: string | undefined;
  /** The node it last ran on (undefined if it never ran). */
  readonly lastNode: string | undefined;
  readonly preferNode: string | undefined;
  readonly avoidNode: string | undefined;
  /** Submission order, 1, 2, 3, … */
  readonly seq: number;
  /** It ran before: placing it resumes it (from a checkpoint or its live state) rather than starting it. */
  readonly started: boolean;
  /** suspending: the waiting process this suspend makes room for. */
  readonly suspendFor: bigint | undefined;
}

export interface NodeView {
  readonly id: string;
  readonly slots: number;
  readonly speed: number;
  readonly load: number;
  readonly alive: boolean;
  /** speed × (1 − load) */
  readonly effectiveSpeed: number;
  /** Slot holders (running + suspending). May exceed slots after slots shrank. */
  readonly used: number;
  /** max(0, slots − used) */
  readonly free: number;
  /** Slot holders, by GPID. */
  readonly processes: readonly bigint[];
  /** Blocked processes waiting on this node (no slot), by GPID. */
  readonly blocked: readonly bigint[];
  readonly lookahead: number;
  /** Staged processes, in the order they will run. */
  readonly staged: readonly bigint[];
}

export type Decision =
  /** Start (resume: false) or resume (resume: true) the process on `node`. */
  | { kind: 'place'; gpid: bigint; node: string; resume: boolean }
  /** Hand the (fresh) process to `node` to start when one of its slots frees. */
  | { kind: 'stage'; gpid: bigint; node: string }
  /** Take the staged process back from `node`; call `unstaged(gpid, ok)` with the outcome. */
  | { kind: 'unstage'; gpid: bigint; node: string; reason: 'priority' | 'idle-node' | 'shrunk' }
  /**
   * Checkpoint the process and stop it; call `suspended(gpid)` when done. `beneficiary`: the higher-priority waiting
   * process it makes room for; `overload`: its node runs more than its slots and no slot is free elsewhere.
   */
  | { kind: 'suspend'; gpid: bigint; node: string; beneficiary: bigint }
  | { kind: 'suspend'; gpid: bigint; node: string; reason: 'overload' }
  /** Move the running process; call `migrated(gpid, from)` if it failed. */
  | { kind: 'migrate'; gpid: bigint; from: string; to: string; reason: 'oversubscribed' | 'speed' };

export interface SchedulerOptions {
  /**
   * Suspend lower-priority running processes for strictly higher waiting ones, and the excess of over-subscribed
   * nodes when no slot is free elsewhere. Default true.
   */
  preempt?: boolean;
  /** Speed moves need target/source effective speed > speedRatio (≥ 1; Infinity disables them). Default 2. */
  speedRatio?: number;
  /** Ticks before a migrated process may be migrated again (integer ≥ 0). Default 5. */
  migrateCooldownTicks?: number;
  /** Cap on migrations per tick (≥ 0). Default Infinity. */
  maxMigrationsPerTick?: number;
}

interface Entry {
  gpid: bigint;
  state: SchedState;
  priority: number;
  node: string | undefined;
  lastNode: string | undefined;
  preferNode: string | undefined;
  avoidNode: string | undefined;
  spreadFrom: string | undefined;
  seq: number;
  /** requeued after its node was lost: ranks first within its priority */
  front: boolean;
  started: boolean;
  suspendFor: bigint | undefined;
  lastMigrationTick: number;
}

interface GridNode {
  id: string;
  slots: number;
  speed: number;
  load: number;
  alive: boolean;
  holders: Set<bigint>;
  blocked: Set<bigint>;
  lookahead: number;
  /** staged processes, oldest first */
  staged: bigint[];
}

const cmpBig = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);
const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const eff = (n: GridNode): number => n.speed * (1 - n.load);
/** Slots that are free and not reserved for the node's staged processes. */
const freeOf = (n: GridNode): number => Math.max(0, n.slots - n.holders.size - n.staged.length);

/** Queue order: priority desc, front first, submission order, GPID. */
function queueOrder(a: Entry, b: Entry): number {
  return b.priority - a.priority || Number(b.front) - Number(a.front) || a.seq - b.seq || cmpBig(a.gpid, b.gpid);
}

function view(e: Entry): SchedEntry {
  return {
    gpid: e.gpid, state: e.state, priority: e.priority, node: e.node, lastNode: e.lastNode,
    preferNode: e.preferNode, avoidNode: e.avoidNode, seq: e.seq, started: e.started, suspendFor: e.suspendFor,
  };
}

export class Scheduler {
  readonly options: Readonly<Required<SchedulerOptions>>;
  #nodes = new Map<string, GridNode>();
  /** #nodes in id order, made again when a node is added or removed (a tick reads it; ticks far outnumber those) */
  #sorted: GridNode[] | undefined;
  #procs = new Map<bigint, Entry>();
  /** waiting processes (and stale entries, dropped lazily), sorted by queueOrder */
  #queue: Entry[] = [];
  #sinceCompaction = 0;
  #seq = 0;
  #ticks = 0;
  /** processes in state 'unstaging' */
  #unstaging = 0;

  constructor(opts: SchedulerOptions = {}) {
    const o = {
      preempt: opts.preempt ?? true,
      speedRatio: opts.speedRatio ?? 2,
      migrateCooldownTicks: opts.migrateCooldownTicks ?? 5,
      maxMigrationsPerTick: opts.maxMigrationsPerTick ?? Infinity,
    };
    if (!(o.speedRatio >= 1)) throw new SchedError(`speedRatio must be ≥ 1 (Infinity disables speed moves), got ${o.speedRatio}`);
    if (!Number.isInteger(o.migrateCooldownTicks) || o.migrateCooldownTicks < 0) {
      throw new SchedError(`migrateCooldownTicks must be an integer ≥ 0, got ${o.migrateCooldownTicks}`);
    }
    if (!(o.maxMigrationsPerTick >= 0)) throw new SchedError(`maxMigrationsPerTick must be ≥ 0, got ${o.maxMigrationsPerTick}`);
    this.options = Object.freeze(o);
  }

  /** Ticks taken so far. */
  get ticks(): number {
    return this.#ticks;
  }

  // ---- nodes ----

  addNode(spec: NodeSpec): void {
    if (typeof spec.id !== 'string' || spec.id === '') throw new SchedError('a node needs a non-empty string id');
    if (this.#nodes.has(spec.id)) throw new SchedError(`node ${spec.id} is already in the grid; use updateNode to change it`);
    const n: GridNode = { id: spec.id, slots: 0, speed: 1, load: 0, alive: true, holders: new Set(), blocked: new Set(), lookahead: 0, staged: [] };
    this.#patch(n, { slots: spec.slots, speed: spec.speed ?? 1, load: spec.load ?? 0, lookahead: spec.lookahead ?? 0 });
    this.#nodes.set(n.id, n);
    this.#sorted = undefined;
  }

  /** Changes a node's slots, speed, load or liveness. Shrinking slots below its use over-subscribes it. */
  updateNode(id: string, patch: NodePatch): void {
    this.#patch(this.#node(id), patch);
  }

  /**
   * Removes a node (it left or died). Returns the GPIDs whose state lived there (running, suspending, blocked, and
   * staged or unstaging ones),
   * by submission order; they are requeued at the front of their priority class, to be resumed elsewhere from
   * their last checkpoint.
   */
  removeNode(id: string): bigint[] {
    const n = this.#node(id);
    const unstaging = [...this.#procs.values()].filter((e) => e.state === 'unstaging' && e.node === id);
    const lost = [...n.holders, ...n.blocked, ...n.staged].map((g) => this.#procs.get(g)!).concat(unstaging).sort((a, b) => a.seq - b.seq);
    for (const e of lost) {
      if (e.state === 'unstaging') this.#unstaging--;
      e.state = 'queued';
      e.lastNode = id;
      e.node = undefined;
      e.front = true;
      e.suspendFor = undefined;
      this.#enqueue(e);
    }
    this.#nodes.delete(id);
    this.#sorted = undefined;
    return lost.map((e) => e.gpid);
  }

  // ---- processes ----

  /** A new process waits in the queue for the next tick. */
  submit(spec: ProcessSpec): void {
    if (typeof spec.gpid !== 'bigint') throw new SchedError('a process needs a bigint gpid');
    if (this.#procs.has(spec.gpid)) throw new SchedError(`process ${spec.gpid} was already submitted`);
    const priority = spec.priority ?? 0;
    if (!Number.isFinite(priority)) throw new SchedError(`priority must be a finite number, got ${priority}`);
    const e: Entry = {
      gpid: spec.gpid, state: 'queued', priority, node: undefined, lastNode: undefined,
      preferNode: spec.preferNode, avoidNode: spec.avoidNode, spreadFrom: spec.spreadFrom, seq: ++this.#seq, front: false, started: !!spec.started,
      suspendFor: undefined, lastMigrationTick: -Infinity,
    };
    this.#procs.set(spec.gpid, e);
    this.#enqueue(e, true);
  }

  /** The process entered a wait syscall: it frees its slot and stays on its node. No-op if already blocked. */
  block(gpid: bigint): void {
    const e = this.#proc(gpid);
    if (e.state === 'blocked') return;
    if (e.state !== 'running' && e.state !== 'suspending') {
      throw new SchedError(`process ${gpid} is ${e.state}, not running: only a running process can block`);
    }
    const n = this.#nodes.get(e.node!)!;
    n.holders.delete(gpid);
    n.blocked.add(gpid);
    e.state = 'blocked';
    e.suspendFor = undefined;
  }

  /**
   * The wait ended: the process queues for a slot again, preferring the node it waited on. Returns false (and does
   * nothing) if it was not blocked, e.g. it was requeued when its node was lost.
   */
  unblock(gpid: bigint): boolean {
    const e = this.#proc(gpid);
    if (e.state !== 'blocked') return false;
    this.#nodes.get(e.node!)!.blocked.delete(gpid);
    e.state = 'queued';
    e.lastNode = e.node;
    e.node = undefined;
    this.#enqueue(e);
    return true;
  }

  /** The process exited or was killed: it is forgotten. Returns false if it was not known. */
  release(gpid: bigint): boolean {
    const e = this.#procs.get(gpid);
    if (!e) return false;
    if (e.state === 'unstaging') this.#unstaging--;
    if (e.node !== undefined) {
      const n = this.#nodes.get(e.node);
      if (n) {
        n.holders.delete(gpid);
        n.blocked.delete(gpid);
        if (e.state === 'staged') n.staged.splice(n.staged.indexOf(gpid), 1);
          }
    }
    this.#procs.delete(gpid);
    return true;
  }

  /**
   * The checkpoint of a suspend decision was taken: the process frees its slot and waits in the queue. Returns
   * false (and does nothing) if it was not suspending (it blocked, exited or was lost meanwhile).
   */
  suspended(gpid: bigint): boolean {
    const e = this.#proc(gpid);
    if (e.state !== 'suspending') return false;
    const n = this.#nodes.get(e.node!)!;
    n.holders.delete(gpid);
    e.state = 'suspended';
    e.lastNode = e.node;
    e.node = undefined;
    e.suspendFor = undefined;
    this.#enqueue(e);
    return true;
  }

  /**
   * The process now lives on `to`: confirms a migration the runtime made on its own, or reports a failed one
   * (`to` = the node it stayed on). Counts as a migration for the cool-down.
   */
  migrated(gpid: bigint, to: string): void {
    const e = this.#proc(gpid);
    const dest = this.#node(to);
    if (e.node === undefined) throw new SchedError(`process ${gpid} is ${e.state}, on no node: it cannot have migrated`);
    if (e.state === 'staged' || e.state === 'unstaging') throw new SchedError(`process ${gpid} is ${e.state}: it has not begun, so it cannot have migrated`);
    const src = this.#nodes.get(e.node)!;
    const set = e.state === 'blocked' ? 'blocked' : 'holders';
    src[set].delete(gpid);
    dest[set].add(gpid);
    e.node = to;
    e.lastNode = to;
    e.lastMigrationTick = this.#ticks;
  }

  /**
   * The outcome of an `unstage` decision: `ok` — the node gave the process back, it waits in the queue again (at
   * the front of its priority class); not ok — the node had begun it (or is about to): it is staged there again,
   * first, until `began` (which may also have come already). Returns false (and does nothing) if it was not
   * unstaging (released — also when unknown —, begun, or requeued when its node was lost).
   */
  unstaged(gpid: bigint, ok: boolean): boolean {
    const e = this.#procs.get(gpid);
    if (!e || e.state !== 'unstaging') return false;
    this.#unstaging--;
    const n = this.#nodes.get(e.node!)!;
    if (ok) {
      e.state = 'queued';
      e.node = undefined;
      e.front = true;
      this.#enqueue(e);
    } else {
      n.staged.unshift(gpid);
      e.state = 'staged';
    }
    return true;
  }

  /**
   * The node began a staged (or unstaging) process: it holds a slot there now (the one its predecessor freed).
   * Returns false (and does nothing) if it was neither.
   */
  began(gpid: bigint): boolean {
    const e = this.#procs.get(gpid);
    if (!e || (e.state !== 'staged' && e.state !== 'unstaging')) return false;
    const n = this.#nodes.get(e.node!)!;
    if (e.state === 'unstaging') this.#unstaging--;
    else n.staged.splice(n.staged.indexOf(gpid), 1);
    n.holders.add(gpid);
    e.state = 'running';
    e.lastNode = n.id;
    e.started = true;
    return true;
  }

  // ---- queries ----

  process(gpid: bigint): SchedEntry | undefined {
    const e = this.#procs.get(gpid);
    return e && view(e);
  }

  /** Every process, by GPID. */
  list(): SchedEntry[] {
    return [...this.#procs.values()].sort((a, b) => cmpBig(a.gpid, b.gpid)).map(view);
  }

  /** The waiting processes ('queued' and 'suspended') in the order they will be placed. */
  queue(): bigint[] {
    return this.#waiting().map((e) => e.gpid);
  }

  /** Every node, by id. */
  nodes(): NodeView[] {
    return this.#sortedNodes().map((n) => ({
      id: n.id, slots: n.slots, speed: n.speed, load: n.load, alive: n.alive, effectiveSpeed: eff(n),
      used: n.holders.size, free: freeOf(n),
      processes: [...n.holders].sort(cmpBig), blocked: [...n.blocked].sort(cmpBig),
      lookahead: n.lookahead, staged: [...n.staged],
    }));
  }

  // ---- decisions ----

  /** Decides placements, suspensions and migrations, applies them to this state, and returns them in order. */
  tick(): Decision[] {
    this.#ticks++;
    const out: Decision[] = [];
    const touched = new Set<bigint>();
    let migrations = 0;
    const canMigrate = (e: Entry): boolean =>
      migrations < this.options.maxMigrationsPerTick && !touched.has(e.gpid) &&
      this.#ticks - e.lastMigrationTick > this.options.migrateCooldownTicks;
    const nodes = this.#sortedNodes();

    // 0. take staged processes back: beyond a node's lookahead (it shrank), from behind waiting processes of strictly
    // higher priority, and for free slots nothing waiting can use (done after step 1, below)
    for (const n of nodes) {
      while (n.staged.length > n.lookahead) out.push(this.#unstage(n, this.#procs.get(n.staged[n.staged.length - 1]!)!, 'shrunk', touched));
    }
    const topWaiting = this.#eachWaiting().next();
    if (!topWaiting.done) {
      const top = topWaiting.value.priority;
      for (const n of nodes) {
        for (let i = n.staged.length - 1; i >= 0; i--) {
          const e = this.#procs.get(n.staged[i]!)!;
          if (e.priority < top) out.push(this.#unstage(n, e, 'priority', touched));
        }
      }
    }

    // 1. waiting processes and the excess of over-subscribed nodes, in queue order
    const pendingOn = new Map<string, number>();
    for (const e of this.#holding()) {
      if (e.state === 'suspending') pendingOn.set(e.node!, (pendingOn.get(e.node!) ?? 0) + 1);
    }
    let demands: Iterable<Entry> = this.#eachWaiting();
    const excess = new Set<bigint>();
    for (const n of nodes) {
      const over = n.holders.size - (pendingOn.get(n.id) ?? 0) - n.slots;
      if (!n.alive || over <= 0) continue;
      const movable = [...n.holders].map((g) => this.#procs.get(g)!)
        .filter((e) => e.state === 'running' && canMigrate(e))
        .sort((a, b) => a.priority - b.priority || b.seq - a.seq);
      for (const e of movable.slice(0, over)) excess.add(e.gpid);
    }
    if (excess.size > 0) {
      const rank = (e: Entry): boolean => e.front || excess.has(e.gpid);
      const all = [...demands];
      for (const g of excess) all.push(this.#procs.get(g)!);
      all.sort((a, b) => b.priority - a.priority || Number(rank(b)) - Number(rank(a)) || a.seq - b.seq ||
        cmpBig(a.gpid, b.gpid));
      demands = all;
    }
    let free = nodes.reduce((a, n) => a + (n.alive ? freeOf(n) : 0), 0);
    for (const e of demands) {
      if (free <= 0) break; // nothing more fits anywhere: the rest keep waiting (fork-delay)
      const isExcess = excess.has(e.gpid);
      if (isExcess && !canMigrate(e)) continue;
      const target = this.#pick(e, nodes, isExcess ? e.node : undefined);
      if (!target) continue;
      touched.add(e.gpid);
      if (isExcess) {
        migrations++;
        free--;
        out.push(this.#move(e, target, 'oversubscribed'));
      } else {
        out.push({ kind: 'place', gpid: e.gpid, node: target.id, resume: e.started });
        free--;
        target.holders.add(e.gpid);
        e.state = 'running';
        e.node = e.lastNode = target.id;
        e.started = true;
        e.front = false;
      }
    }

    // 1b. staging: fresh processes that found no slot wait on a node with lookahead room, a prefix of the queue in
    // queue order (so nothing is staged ahead of a process that waits); the node with the fewest staged per slot
    // first. A process is not staged behind running processes of lower priority: it waits, so that preemption
    // (step 2) can serve it.
    if (free <= 0) {
      let room = nodes.reduce((a, n) => a + (n.alive && n.slots > 0 ? Math.max(0, n.lookahead - n.staged.length) : 0), 0);
      const lowest = new Map<GridNode, number>();
      const lowestOf = (n: GridNode): number => {
        let v = lowest.get(n);
        if (v === undefined) {
          v = Infinity;
          for (const h of n.holders) v = Math.min(v, this.#procs.get(h)!.priority);
          lowest.set(n, v);
        }
        return v;
      };
      for (const e of this.#eachWaiting()) {
        if (room <= 0 || e.started) break;
        let best: GridNode | undefined;
        for (const n of nodes) {
          if (n.slots === 0 || n.staged.length >= n.lookahead || !this.#eligible(e, n, nodes) || lowestOf(n) < e.priority) continue;
          if (!best || n.staged.length / n.slots < best.staged.length / best.slots) best = n;
        }
        if (!best) break;
        touched.add(e.gpid);
        room--;
        best.staged.push(e.gpid);
        e.state = 'staged';
        e.node = best.id;
        out.push({ kind: 'stage', gpid: e.gpid, node: best.id });
      }
    } else {
      // free slots that nothing waiting could use: take staged processes back from other nodes (work stealing),
      // the newest of the node holding the most, if the free node may run it; processes already being taken back
      // count against the free slots
      let inFlight = this.#unstaging;
      for (const n of nodes) {
        let spare = n.alive ? freeOf(n) : 0;
        const claimed = Math.min(spare, inFlight);
        spare -= claimed;
        inFlight -= claimed;
        while (spare > 0) {
          let from: GridNode | undefined;
          for (const m of nodes) {
            if (m !== n && m.staged.length > 0 && (!from || m.staged.length > from.staged.length)) from = m;
          }
          const g = from?.staged[from.staged.length - 1];
          const e = g !== undefined ? this.#procs.get(g)! : undefined;
          if (!from || !e || !this.#eligible(e, n, nodes)) break;
          out.push(this.#unstage(from, e, 'idle-node', touched));
          spare--;
        }
      }
    }

    // 2. preemption: make room for strictly higher-priority waiting processes
    if (this.options.preempt) {
      const served = new Set<bigint>();
      for (const e of this.#holding()) if (e.suspendFor !== undefined) served.add(e.suspendFor);
      // the lowest priority among running processes: no waiting process at or below it can preempt
      let lowest = Infinity;
      for (const e of this.#holding()) {
        if (e.state === 'running' && !touched.has(e.gpid)) lowest = Math.min(lowest, e.priority);
      }
      for (const w of this.#eachWaiting()) {
        if (w.priority <= lowest) break; // the queue is in priority order
        if (served.has(w.gpid)) continue;
        let victim: Entry | undefined;
        for (const n of nodes) {
          const pending = pendingOn.get(n.id) ?? 0;
          if (!this.#eligible(w, n, nodes) || n.holders.size - pending > n.slots) continue;
          for (const g of n.holders) {
            const v = this.#procs.get(g)!;
            if (v.state !== 'running' || touched.has(g) || v.priority >= w.priority) continue;
            if (!victim || v.priority < victim.priority || (v.priority === victim.priority && v.seq > victim.seq)) {
              victim = v;
            }
          }
        }
        if (!victim) continue;
        touched.add(victim.gpid);
        victim.state = 'suspending';
        victim.suspendFor = w.gpid;
        pendingOn.set(victim.node!, (pendingOn.get(victim.node!) ?? 0) + 1);
        out.push({ kind: 'suspend', gpid: victim.gpid, node: victim.node!, beneficiary: w.gpid });
      }
    }

    // 2b. overload: a node running more than its slots (they shrank, or it drains with 0) whose excess found no free
    // slot anywhere in step 1 suspends that excess to a checkpoint (lowest priority first, latest submitted among
    // equals); it waits in the queue and resumes where a slot frees. Not while a slot is free somewhere: the excess
    // moves there (step 1, maybe on a later tick once its migration cooldown is over).
    if (this.options.preempt && free <= 0) {
      for (const n of nodes) {
        if (!n.alive) continue;
        const over = n.holders.size - (pendingOn.get(n.id) ?? 0) - n.slots;
        if (over <= 0) continue;
        const victims = [...n.holders].map((g) => this.#procs.get(g)!)
          .filter((e) => e.state === 'running' && !touched.has(e.gpid))
          .sort((a, b) => a.priority - b.priority || b.seq - a.seq);
        for (const v of victims.slice(0, over)) {
          touched.add(v.gpid);
          v.state = 'suspending';
          v.suspendFor = undefined;
          pendingOn.set(n.id, (pendingOn.get(n.id) ?? 0) + 1);
          out.push({ kind: 'suspend', gpid: v.gpid, node: n.id, reason: 'overload' });
        }
      }
    }

    // 3. speed rebalancing into free slots on much faster nodes (only when some alive node with a free slot is more
    // than speedRatio times faster than another: with equal nodes a tick does not look at running processes)
    let fastFree = 0;
    let slowest = Infinity;
    for (const n of nodes) {
      if (!n.alive) continue;
      if (freeOf(n) > 0) fastFree = Math.max(fastFree, eff(n));
      slowest = Math.min(slowest, eff(n));
    }
    if (Number.isFinite(this.options.speedRatio) && fastFree > slowest * this.options.speedRatio) {
      const running = [...this.#holding()]
        .filter((e) => e.state === 'running' && this.#nodes.get(e.node!)!.alive && canMigrate(e))
        .sort((a, b) => eff(this.#nodes.get(a.node!)!) - eff(this.#nodes.get(b.node!)!) ||
          b.priority - a.priority || a.seq - b.seq);
      for (const e of running) {
        if (migrations >= this.options.maxMigrationsPerTick) break;
        if (!canMigrate(e) || e.node === e.preferNode) continue;
        const from = this.#nodes.get(e.node!)!;
        const bar = eff(from) * this.options.speedRatio;
        let best: GridNode | undefined;
        for (const n of nodes) {
          if (n === from || freeOf(n) === 0 || !this.#eligible(e, n, nodes) || !(eff(n) > bar)) continue;
          if (!best || eff(n) > eff(best) || (eff(n) === eff(best) && freeOf(n) > freeOf(best))) best = n;
        }
        if (!best) continue;
        touched.add(e.gpid);
        migrations++;
        out.push(this.#move(e, best, 'speed'));
      }
    }
    return out;
  }

  // ---- internals ----


  #unstage(n: GridNode, e: Entry, reason: 'priority' | 'idle-node' | 'shrunk', touched: Set<bigint>): Decision {
    n.staged.splice(n.staged.indexOf(e.gpid), 1);
    e.state = 'unstaging';
    this.#unstaging++;
    touched.add(e.gpid);
    return { kind: 'unstage', gpid: e.gpid, node: n.id, reason };
  }

  #move(e: Entry, to: GridNode, reason: 'oversubscribed' | 'speed'): Decision {
    const from = e.node!;
    const src = this.#nodes.get(from)!;
    src.holders.delete(e.gpid);
    to.holders.add(e.gpid);
    e.node = e.lastNode = to.id;
    e.lastMigrationTick = this.#ticks;
    return { kind: 'migrate', gpid: e.gpid, from, to: to.id, reason };
  }

  /** The node to run `e` on, among eligible alive nodes with a free slot other than `exclude`. */
  #pick(e: Entry, nodes: GridNode[], exclude: string | undefined): GridNode | undefined {
    const cands = nodes.filter((n) => n.id !== exclude && freeOf(n) > 0 && this.#eligible(e, n, nodes));
    if (cands.length === 0) return undefined;
    const preferred = cands.find((n) => n.id === e.preferNode);
    if (preferred) return preferred;
    const fastest = Math.max(...cands.map(eff));
    const fastEnough = cands.filter((n) => !(eff(n) * this.options.speedRatio < fastest));
    const last = e.started ? fastEnough.find((n) => n.id === e.lastNode) : undefined;
    if (last) return last;
    const away = e.spreadFrom !== undefined ? fastEnough.filter((n) => n.id !== e.spreadFrom) : fastEnough;
    let best: GridNode | undefined;
    let bestScore = -1;
    for (const n of away.length ? away : fastEnough) {
      const score = freeOf(n) * eff(n);
      // nodes are in id order, so strict comparisons keep the lowest id among equals
      if (score > bestScore || (score === bestScore && freeOf(n) > freeOf(best!))) {
        best = n;
        bestScore = score;
      }
    }
    return best;
  }

  #eligible(e: Entry, n: GridNode, nodes: GridNode[]): boolean {
    if (!n.alive) return false;
    if (e.avoidNode !== n.id) return true;
    // relax the constraint when the avoided node is the only alive node with slots
    return !nodes.some((m) => m !== n && m.alive && m.slots > 0);
  }

  /**
   * The waiting processes in queue order. The queue is kept sorted as processes enter it (binary insertion), and
   * entries that left it are dropped lazily here, so a tick costs O(queue) instead of a sort of every process.
   */
  #waiting(): Entry[] {
    return [...this.#eachWaiting()];
  }

  /** Processes that hold a slot (running or suspending), node by node: a tick reads these, not every process. */
  *#holding(): Generator<Entry> {
    for (const n of this.#nodes.values()) for (const g of n.holders) yield this.#procs.get(g)!;
  }

  #isWaiting(e: Entry): boolean {
    return (e.state === 'queued' || e.state === 'suspended') && this.#procs.get(e.gpid) === e;
  }

  /**
   * The waiting processes in queue order, lazily: a tick stops reading as soon as no slot is left, so it costs
   * what it places, not the length of the queue. Stale entries at the front (placed ones) are dropped as it goes;
   * the whole queue is compacted now and then.
   */
  *#eachWaiting(): Generator<Entry> {
    const q = this.#queue;
    let head = 0;
    while (head < q.length && !this.#isWaiting(q[head]!)) head++;
    if (head) q.splice(0, head);
    if (++this.#sinceCompaction >= 1000) {
      this.#sinceCompaction = 0;
      this.#queue = q.filter((e) => this.#isWaiting(e));
    }
    for (const e of this.#queue) if (this.#isWaiting(e)) yield e;
  }

  /** A process entered the wait queue (its key — priority, front, seq — is fixed while it waits). */
  #enqueue(e: Entry, fresh = false): void {
    // (a new process is in no queue yet; a requeued one may still be, as a stale entry)
    const i = fresh ? -1 : this.#queue.indexOf(e);
    if (i >= 0) this.#queue.splice(i, 1);
    let lo = 0;
    let hi = this.#queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (queueOrder(this.#queue[mid]!, e) <= 0) lo = mid + 1;
      else hi = mid;
    }
    this.#queue.splice(lo, 0, e);
  }

  #sortedNodes(): GridNode[] {
    return (this.#sorted ??= [...this.#nodes.values()].sort((a, b) => cmpStr(a.id, b.id)));
  }

  #node(id: string): GridNode {
    const n = this.#nodes.get(id);
    if (!n) throw new SchedError(`unknown node ${id}: add it with addNode first`);
    return n;
  }

  #proc(gpid: bigint): Entry {
    const e = this.#procs.get(gpid);
    if (!e) throw new SchedError(`unknown process ${gpid}: submit it first (or it was released)`);
    return e;
  }

  #patch(n: GridNode, p: NodePatch): void {
    if (p.slots !== undefined && (!Number.isInteger(p.slots) || p.slots < 0)) {
      throw new SchedError(`node ${n.id}: slots must be an integer ≥ 0, got ${p.slots}`);
    }
    if (p.speed !== undefined && !(p.speed > 0 && Number.isFinite(p.speed))) {
      throw new SchedError(`node ${n.id}: speed must be a finite number > 0, got ${p.speed}`);
    }
    if (p.load !== undefined && !(p.load >= 0 && p.load <= 1)) {
      throw new SchedError(`node ${n.id}: load must be in [0, 1], got ${p.load}`);
    }
    if (p.alive !== undefined && typeof p.alive !== 'boolean') throw new SchedError(`node ${n.id}: alive must be a boolean`);
    if (p.lookahead !== undefined && (!Number.isInteger(p.lookahead) || p.lookahead < 0)) {
      throw new SchedError(`node ${n.id}: lookahead must be an integer ≥ 0, got ${p.lookahead}`);
    }
    if (p.lookahead !== undefined) n.lookahead = p.lookahead;
    if (p.slots !== undefined) n.slots = p.slots;
    if (p.speed !== undefined) n.speed = p.speed;
    if (p.load !== undefined) n.load = p.load;
    if (p.alive !== undefined) n.alive = p.alive;
  }
}
