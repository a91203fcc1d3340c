// The origin of a grid on one machine: starts N nodes, keeps the global process table (GPIDs), places processes
// through the scheduler (kernel/sched), answers grid calls (spawn, fork, wait), migrates processes, recovers the
// processes of lost nodes from their last exported checkpoint, and integrates output in GPID order.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import {
  Errno,
  LocalBus,
  Vfs,
  Scheduler,
  type CallResult,
  type CheckpointPolicy,
  type Decision,
  type GridCallMsg,
  type NodeCommand,
  type NodeEvent,
  type ProcCounters,
  type ProcSpec,
  type RawSnapshot,
  type Usage,
} from '../../kernel/index.js';
import { prepareJob } from '../../vm/job.js';
import type { InstrumentInfo } from '../../vm/runtime.js';
import { hostInstrumentOptions } from '../wasm-opt.js';
import { DiskModuleCache } from '../cache.js';
import { nodePlatform } from '../platform.js';
import { KILLED_BEFORE_BEGIN, newSparePool } from './node-host.js';
import { startNode, type Isolation, type NodeHandle } from './nodes.js';
import { OutputIntegrator, type Sink } from './output.js';
import { CONTROL_SLOTS, MIGRATION_DIR } from './runner-types.js';
import { readBytes } from '../files.js';

/**
 * Staged starts per node (GridOptions.lookahead). With hello.wasm jobs on 2 thread nodes, alternating runs against
 * a piscina pool in the same minutes (pool ~15-19k jobs/s): 4 -> ~15-20k, 8 -> ~19-21k, 16 -> ~22-26k, 31 -> ~21k.
 * A queue shorter than the origin's turnaround (the ends of a runner's jobs reach the origin, which stages more)
 * leaves the runner idle between jobs. Each staged start also waits behind a longer job until the scheduler takes
 * it back for an idle node. A node holds at most slots × (CONTROL_SLOTS - 1) (runner-types.ts).
 */
export const DEFAULT_LOOKAHEAD = 16;

export type ProcState = 'queued' | 'starting' | 'running' | 'migrating' | 'suspending' | 'suspended' | 'blocked' | 'exited' | 'failed' | 'killed';

export interface GridOptions {
  nodes: number;
  isolate?: Isolation;
  slotsPerNode?: number;
  /** a node that sends no heartbeat for this long is lost (default 10 s) */
  heartbeatTimeoutMs?: number;
  checkpointPolicy?: CheckpointPolicy;
  /** start a new node when one is lost (default true) */
  replaceLostNodes?: boolean;
  /** use the on-disk cache of instrumented modules (default true) */
  cache?: boolean;
  /** preempt lower-priority processes for higher ones (default true) */
  preempt?: boolean;
  /**
   * Fresh processes each node may hold queued behind its running ones (the scheduler's staging): the node starts
   * the next the moment one ends, without a round trip to the origin. Default DEFAULT_LOOKAHEAD (16), at most
   * slots × (CONTROL_SLOTS - 1) per node; 0 turns it off.
   */
  lookahead?: number;
  /**
   * A start a node has not reported ('started') this long after it was sent, and that the node's heartbeats do not
   * list either (two of them, apart), was lost on the way (a carrier file that could not be written, a message the
   * node dropped): the process continues from its recovery point. Default DEFAULT_LOST_START_MS.
   */
  lostStartMs?: number;
}

/** GridOptions.lostStartMs: far beyond a start's way to its node (a heartbeat that crossed it lists it a beat later). */
export const DEFAULT_LOST_START_MS = 5000;
/** Heartbeats that must miss a start, at least this far apart (origin clock), before it counts as lost. */
const LOST_START_MISSES = 2;
const LOST_START_MISS_SPACING_MS = 200;

export interface JobSpec {
  wasm: string | Uint8Array;
  name?: string;
  args?: string[];
  env?: string[];
  dirs?: Array<{ host: string; guest: string; readonly?: boolean }>;
  memDirs?: string[];
  limits?: { maxMemoryBytes?: number; fuel?: number; timeoutMs?: number };
  /** run as this many rank-aware parts (GRIDVM_RANK / GRIDVM_SIZE); default 1 */
  parts?: number;
  priority?: number;
  /** migrate each running process of the job to another node at this interval */
  migrateEveryMs?: number;
  /** migrate with pre-copy (implies trackDirty) */
  precopy?: boolean;
  /**
   * Instrument the module with dirty-page tracking (InstrumentOptions.dirtyPages): checkpoints and the freeze of a
   * pre-copy migration copy and ship only the pages written since the previous capture. Children it spawns from
   * other modules are instrumented the same way.
   */
  trackDirty?: boolean;
  stdout?: Sink;
  stderr?: Sink;
}

export interface ProcView {
  gpid: number;
  job: string;
  name: string;
  rank: number;
  parent: number;
  state: ProcState;
  node: string | null;
  priority: number;
  cpuMs: number;
  fuelUsed: number;
  memoryPeakBytes: number;
  checkpoints: number;
  exportedCheckpoints: number;
  migrations: number;
  recoveries: number;
  /** every node it ran on, in order (a node appears again after each move back) */
  visited: string[];
  exitCode: number | null;
  failure?: { why: string; reason?: string; message: string; stack?: string[]; node: string | null; at: string };
}

export interface NodeView {
  id: string;
  isolate: Isolation;
  pid: number;
  slots: number;
  alive: boolean;
  running: number[];
  lostWhy?: string;
}

export interface JobResult {
  id: string;
  exitCode: number;
  processes: ProcView[];
  startedAt: string;
  endedAt: string;
  elapsedMs: number;
  /** chunks whose offset ran past what was emitted (must be 0) */
  outputGaps: number;
}

interface Recovery {
  snapshot?: Uint8Array;
  /** the full snapshot `snapshot` is a delta of */
  base?: Uint8Array;
  /** deltas between `base` and `snapshot`, oldest first (pre-copy rounds after the first) */
  mids?: Uint8Array[];
  resolve?: CallResult;
}

/** One migration of a process, as `gridvm bench migrate` and `grid.migrationLog()` report it. */
export interface MigrationRecord {
  gpid: number;
  from: string;
  to: string;
  precopy: boolean;
  /** the process's memory at the freeze */
  memoryBytes: number;
  /** bytes shipped while the process was frozen (the snapshot, or the delta after a pre-copy) */
  bytesShipped: number;
  /** bytes shipped by the pre-copy while it still ran */
  precopyBytes: number;
  /** pre-copy rounds (0 without pre-copy; 2 when the first shipped a large state) */
  precopyRounds: number;
  /** the target copied the memory while the source captured it (between thread nodes, without pre-copy) */
  streamed: boolean;
  /** epoch ms (performance.timeOrigin + performance.now(), comparable across threads and processes) */
  requestedAt: number;
  frozenAt: number;
  runningAt: number;
  /** freeze -> running on the target */
  downtimeMs: number;
  /** request -> running on the target */
  totalMs: number;
}

interface Migration {
  to: string;
  precopy: boolean;
  phase: 'precopy' | 'preparing' | 'freezing' | 'starting';
  /** pre-copy rounds shipped so far */
  rounds: number;
  /** the freeze's memory is being streamed to the target (thread nodes) */
  streamed?: boolean;
  record: Partial<MigrationRecord> & { gpid: number; from: string; to: string; requestedAt: number; precopy: boolean };
  resolve: (r: MigrationRecord) => void;
  reject: (e: Error) => void;
}

const epochNow = () => performance.timeOrigin + performance.now();

/**
 * Pre-copy rounds before a migration freezes: the first ships the whole state, the second the pages written while
 * the first travelled (a delta, cheap with dirty-page tracking), so the freeze ships only what the second let through.
 * A second round only after a first of at least PRECOPY_ROUND2_BYTES: a small state travels fast, and the freeze's
 * delta is small anyway (each round waits for a safe point and makes the migration longer).
 */
const PRECOPY_ROUNDS = 2;
const PRECOPY_ROUND2_BYTES = 8 * 1024 * 1024;

interface ProcRecord {
  view: ProcView;
  job: JobRecord;
  hash: string;
  spec: ProcSpec;
  recovery: Recovery;
  counters: ProcCounters;
  /** the migration in progress */
  migration?: Migration;
  /**
   * The pre-copies of the current run on its node, oldest first (a full snapshot, then the deltas of later
   * rounds): a suspension there ships a delta of the last one
   */
  precopyChain?: Uint8Array[];
  /** a raw snapshot (thread nodes) to start from next, used once */
  pendingRaw?: RawSnapshot;
  /** its start is staged on view.node (shown as queued there) until the node reports it started */
  staged?: boolean;
  /**
   * The start last sent to view.node, until the node reports it started: its heartbeats must list it (node-host
   * lists every start it holds, staged or running), or it was lost on the way
   */
  pendingStart?: { node: string; sentAt: number; missed: number; lastMiss: number };
  /** killed while staged: if its node gives it back (unstaged), it ends killed instead of queueing again */
  killRequested?: boolean;
  /** the blocked call being answered, and its snapshot */
  blocked?: { call: GridCallMsg; snapshot: Uint8Array };
  children: number[];
  reaped: Set<number>;
}

interface JobRecord {
  id: string;
  procs: ProcRecord[];
  out: OutputIntegrator;
  startedAt: number;
  /** wall clock at submit (epoch ms), made an ISO string only for the result */
  startedEpoch: number;
  done: (r: JobResult) => void;
  promise: Promise<JobResult>;
  migrateTimer?: ReturnType<typeof setInterval>;
  rankJob: boolean;
  priority: number;
  precopy: boolean;
  /** its modules are instrumented with dirty-page tracking */
  trackDirty: boolean;
}

interface NodeRecord {
  handle: NodeHandle;
  slots: number;
  alive: boolean;
  lastSeen: number;
  modules: Set<string>;
  lostWhy?: string;
}

const HEARTBEAT_CHECK_MS = 250;
/** the output sink of a job that passed none */
const noSink = (): void => {};
/** processes of finished jobs the origin remembers for ps --all and status (older ones are forgotten) */
const KEEP_FINISHED_PROCS = 10_000;
const DEFAULT_POLICY: CheckpointPolicy = { w: 0.5, minMs: 200, maxMs: 5000, initialMs: 1000, exportEvery: 2 };
const KILLED_CODE = 137;
const TRAP_CODE = 134;

export class Grid {
  readonly bus = new LocalBus();
  private readonly sched: Scheduler;
  private readonly nodeRecs = new Map<string, NodeRecord>();
  private readonly procs = new Map<number, ProcRecord>();
  private readonly jobs = new Map<string, JobRecord>();
  private readonly modules = new Map<string, { bytes: Uint8Array; info: InstrumentInfo }>();
  private readonly migrationLogs: MigrationRecord[] = [];
  /**
   * Migration memory files (gridvm-snap-<writer pid>-…) that node processes of this grid left when they exited,
   * listed at their exit (their pid was theirs then): close() removes these, and only these. Sweeping by pid at
   * close() instead would hit files of another grid's node that got the pid of a node that died long ago.
   */
  private readonly leftFiles = new Set<string>();
  /** processes with a start sent and not yet reported started (entries whose pendingStart went are dropped lazily) */
  private readonly awaitingStart = new Map<number, ProcRecord>();
  private readonly finishedJobs: string[] = [];
  private readonly startedAt = Date.now();
  /** when nodes were lost (epoch ms), for the checkpoint-interval policy */
  private readonly nodeLosses: number[] = [];
  private finishedHead = 0;
  private finishedProcs = 0;
  /** spare buffers for raw snapshots, shared by this grid's thread nodes */
  private readonly spares = newSparePool();
  /** modules already loaded, by the caller's bytes object (not re-hashed: submitting one module many times is cheap) */
  /** module hash by bytes object: a promise, so that a burst of submits of one module prepares it once */
  private readonly byBytes = [new WeakMap<Uint8Array, Promise<string>>(), new WeakMap<Uint8Array, Promise<string>>()] as const;
  private readonly byPath = new Map<string, { mtimeMs: number; size: number; hash: string }>();
  private nextGpid = 1;
  private nextNode = 1;
  private nextJob = 1;
  private kickQueued = false;
  private monitor: ReturnType<typeof setInterval> | undefined;
  private lastCheck = 0;
  private closed = false;
  private readonly cache: DiskModuleCache | undefined;

  private constructor(readonly opts: GridOptions) {
    this.sched = new Scheduler({ preempt: opts.preempt ?? true });
    this.cache = opts.cache === false ? undefined : new DiskModuleCache();
  }

  static async start(opts: GridOptions): Promise<Grid> {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new Error(`--nodes must be a positive integer, not ${opts.nodes}`);
    const g = new Grid(opts);
    g.bus.subscribe('coord', (m) => g.onEvent(m as NodeEvent));
    for (let i = 0; i < opts.nodes; i++) g.addNode();
    g.lastCheck = Date.now();
    g.monitor = setInterval(() => g.checkHeartbeats(), HEARTBEAT_CHECK_MS);
    g.monitor.unref?.();
    return g;
  }

  private addNode(): NodeRecord {
    const id = `n${this.nextNode++}`;
    const slots = this.opts.slotsPerNode ?? 1;
    const handle = startNode(id, this.bus, this.opts.isolate ?? 'thread', slots, this.spares);
    const rec: NodeRecord = { handle, slots, alive: true, lastSeen: Date.now(), modules: new Set() };
    handle.onExit = (why) => {
      this.noteNodeFiles(handle.pid);
      this.nodeLost(id, why);
    };
    this.nodeRecs.set(id, rec);
    this.sched.addNode({ id, slots, lookahead: this.lookaheadFor(slots) });
    this.kick();
    return rec;
  }

  /** Staged starts a node of `slots` slots may hold: a runner holds CONTROL_SLOTS starts, and more would need runner threads beyond the node's slots. */
  private lookaheadFor(slots: number): number {
    return Math.min(this.opts.lookahead ?? DEFAULT_LOOKAHEAD, slots * (CONTROL_SLOTS - 1));
  }

  // ------------------------------------------------------------------ jobs

  /** Submit a job; resolves when every process of it has ended. */
  async submit(spec: JobSpec): Promise<{ id: string; done: Promise<JobResult> }> {
    let hash: string;
    const trackDirty = !!(spec.trackDirty || spec.precopy);
    if (typeof spec.wasm === 'string') {
      // the same file, unchanged since it was loaded: no read, no hashing
      const st = statSync(spec.wasm);
      const key = `${trackDirty ? 'dirty:' : ''}${spec.wasm}`;
      const known = this.byPath.get(key);
      if (known && known.mtimeMs === st.mtimeMs && known.size === st.size) hash = known.hash;
      else {
        hash = await this.loadModule(readBytes(spec.wasm), trackDirty);
        this.byPath.set(key, { mtimeMs: st.mtimeMs, size: st.size, hash });
      }
    } else {
      const memo = this.byBytes[trackDirty ? 1 : 0];
      let p = memo.get(spec.wasm);
      if (!p) {
        p = this.loadModule(spec.wasm, trackDirty);
        memo.set(spec.wasm, p);
        p.catch(() => memo.delete(spec.wasm as Uint8Array)); // a bad module is refused again next time, not cached
      }
      hash = await p;
    }
    const id = `job-${process.pid.toString(36)}-${(this.nextJob++).toString(36)}`;
    let done!: (r: JobResult) => void;
    const promise = new Promise<JobResult>((r) => (done = r));
    const sinks = { 1: spec.stdout ?? noSink, 2: spec.stderr ?? noSink };
    const parts = spec.parts ?? 1;
    const job: JobRecord = {
      id, procs: [], out: new OutputIntegrator(sinks), startedAt: performance.now(), startedEpoch: Date.now(),
      done, promise, rankJob: parts > 1, priority: spec.priority ?? 0, precopy: !!spec.precopy, trackDirty,
    };
    this.jobs.set(id, job);
    const name = spec.name ?? (typeof spec.wasm === 'string' ? spec.wasm.split('/').pop()! : 'job.wasm');
    const mounts: ProcSpec['mounts'] = [
      ...(spec.dirs ?? []).map((d) => ({ guest: d.guest, kind: 'host' as const, host: resolvePath(d.host), readonly: !!d.readonly })),
      ...(spec.memDirs ?? []).map((g) => ({ guest: g, kind: 'memory' as const })),
      // last, so the job's own preopens keep their fd numbers
      { guest: '/proc', kind: 'proc' as const },
    ];
    for (let rank = 0; rank < parts; rank++) {
      const env = [...(spec.env ?? []).filter((e) => !/^GRIDVM_(RANK|SIZE)=/.test(e)), `GRIDVM_RANK=${rank}`, `GRIDVM_SIZE=${parts}`];
      this.newProcess(job, hash, { name, args: spec.args ?? [], env, mounts, limits: spec.limits ?? {}, grid: { gpid: 0, parent: 0, rank, size: parts } }, {});
    }
    if (spec.migrateEveryMs) {
      if (this.aliveNodes().length < 2) process.stderr.write('gridvm: --migrate-every needs at least 2 nodes; not migrating\n');
      else {
        job.migrateTimer = setInterval(() => this.migrateRound(job), spec.migrateEveryMs);
        job.migrateTimer.unref?.();
      }
    }
    this.kick();
    return { id, done: promise };
  }

  private async loadModule(bytes: Uint8Array, trackDirty: boolean): Promise<string> {
    const job = await prepareJob(bytes, { ...(this.cache ? { cache: this.cache } : {}), instrument: hostInstrumentOptions(bytes, trackDirty ? { dirtyPages: true } : {}) });
    if (!this.modules.has(job.hash)) this.modules.set(job.hash, { bytes: job.bytes, info: job.info });
    return job.hash;
  }

  private newProcess(job: JobRecord, hash: string, spec: ProcSpec, recovery: Recovery, parent?: ProcRecord): ProcRecord {
    const gpid = this.nextGpid++;
    spec.grid.gpid = gpid;
    const view: ProcView = {
      gpid, job: job.id, name: spec.name, rank: spec.grid.rank, parent: spec.grid.parent, state: 'queued', node: null,
      priority: job.priority, cpuMs: 0, fuelUsed: 0, memoryPeakBytes: 0, checkpoints: 0, exportedCheckpoints: 0,
      migrations: 0, recoveries: 0, visited: [], exitCode: null,
    };
    const rec: ProcRecord = { view, job, hash, spec, recovery, counters: { cpuMs: 0, checkpoints: 0, migrations: 0 }, children: [], reaped: new Set() };
    parent?.children.push(gpid);
    this.procs.set(gpid, rec);
    job.procs.push(rec);
    job.out.add(gpid);
    // a child spreads away from its parent's node (a remote fork or spawn is meant to use another machine)
    // (the node the parent last ran on: a parent blocked in fork or spawn is held at the origin, on no node)
    const from = parent?.view.visited[parent.view.visited.length - 1];
    this.sched.submit({ gpid: BigInt(gpid), priority: job.priority, ...(from ? { spreadFrom: from } : {}) });
    return rec;
  }

  // ------------------------------------------------------------------ scheduling

  private kick(): void {
    if (this.kickQueued || this.closed) return;
    this.kickQueued = true;
    // one scheduling round per turn of the event loop, however many submissions and events arrived in it
    setImmediate(() => {
      this.kickQueued = false;
      if (this.closed) return;
      // (the scheduler applied every decision to its own state already: each one is carried out on its own, so one
      // that throws does not lose the ones after it)
      for (const d of this.sched.tick()) {
        const rec = this.procs.get(Number(d.gpid));
        if (!rec) continue;
        try {
          this.carryOut(rec, d);
        } catch (err) {
          this.decisionFailed(rec, d, err);
        }
      }
    });
  }

  private carryOut(rec: ProcRecord, d: Decision): void {
    if (d.kind === 'place') this.startOn(rec, d.node);
    else if (d.kind === 'stage') this.startOn(rec, d.node, false, true);
    else if (d.kind === 'unstage') this.send(d.node, { t: 'control', gpid: rec.view.gpid, action: 'unstage', reason: d.reason });
    else if (d.kind === 'suspend') this.stop(rec, 'suspending');
    else if (d.kind === 'migrate') {
      // rebalancing; if it cannot happen now, tell the scheduler where the process really is
      this.migrate(rec.view.gpid, d.to).catch(() => {
        try {
          if (rec.view.node && !this.isEnded(rec)) this.sched.migrated(d.gpid, rec.view.node);
        } catch {
          /* the process left its node meanwhile (requeued): nothing to correct */
        }
      });
    }
  }

  /**
   * Carrying out a scheduling decision threw (a bug, or a resource the origin lacked): the scheduler has applied
   * it, and neither knows where the process stands. It is not retried (a decision that throws would throw again,
   * every round): it fails, visibly, and whatever of it may have reached a node is killed there (a start taken
   * back before it began never runs), so it never runs unaccounted for.
   */
  private decisionFailed(rec: ProcRecord, d: Decision, err: unknown): void {
    const message = `the origin could not carry out its ${d.kind} decision: ${(err as Error)?.message ?? String(err)}`;
    try {
      process.stderr.write(`gridvm: process ${rec.view.gpid}: ${message}\n`);
      const node = rec.view.node ?? (d.kind === 'migrate' ? d.from : d.node);
      if (this.nodeRecs.get(node)?.alive) this.send(node, { t: 'control', gpid: rec.view.gpid, action: 'kill' });
      this.finish(rec, 'failed', 125, { why: 'error', message });
    } catch (e) {
      process.stderr.write(`gridvm: process ${rec.view.gpid}: could not fail it after a failed ${d.kind} decision: ${(e as Error)?.message}\n`);
    }
  }

  private startOn(rec: ProcRecord, node: string, prepared = false, staged = false, streamed = false): void {
    const n = this.nodeRecs.get(node);
    if (!n || !n.alive) {
      // placed on a node that just went away: back to the queue
      this.requeue(rec);
      return;
    }
    this.ensureModule(node, rec.hash);
    // a staged process still waits (at that node) until it starts
    rec.view.state = staged ? 'queued' : 'starting';
    rec.staged = staged;
    rec.view.node = node;
    rec.precopyChain = undefined;
    rec.view.visited.push(node);
    const raw = rec.pendingRaw;
    rec.pendingRaw = undefined;
    const isThread = (this.opts.isolate ?? 'thread') === 'thread';
    // (optional fields set one by one: a start per tiny job, and object spreads allocate)
    const cmd: Extract<NodeCommand, { t: 'start' }> = {
      t: 'start', gpid: rec.view.gpid, hash: rec.hash, spec: rec.spec, counters: { ...rec.counters },
      raw: isThread ? 'memory' : 'file', policy: this.policyNow(),
    };
    const rc = rec.recovery;
    if (raw) cmd.snapshot = raw;
    else if (rc.snapshot) cmd.snapshot = rc.snapshot;
    if (!raw && rc.base && !prepared) {
      cmd.base = rc.base;
      if (rc.mids?.length) cmd.mids = rc.mids;
    }
    if (!raw && prepared) cmd.prepared = true;
    if (!raw && rc.resolve) cmd.resolve = rc.resolve;
    if (staged) cmd.staged = true;
    if (raw && streamed) cmd.streamed = true;
    rec.pendingStart = { node, sentAt: Date.now(), missed: 0, lastMiss: 0 };
    this.awaitingStart.set(rec.view.gpid, rec);
    this.send(node, cmd);
  }

  /**
   * A node's heartbeat lists the processes it holds (running or staged). A start sent there long enough ago
   * (lostStartMs) that is neither reported started nor listed in two heartbeats some time apart was lost on the way:
   * the process continues from its recovery point, as after a node loss. (A node lists a start from the moment it
   * receives it until the event that ends it there, which reaches the origin before any later heartbeat.)
   */
  private checkStarts(node: string, running: readonly number[]): void {
    if (!this.awaitingStart.size) return;
    const grace = this.opts.lostStartMs ?? DEFAULT_LOST_START_MS;
    const now = Date.now();
    let listed: Set<number> | undefined;
    for (const [gpid, rec] of this.awaitingStart) {
      const ps = rec.pendingStart;
      if (!ps || rec.view.node !== ps.node || this.isEnded(rec)) {
        rec.pendingStart = undefined;
        this.awaitingStart.delete(gpid);
        continue;
      }
      if (ps.node !== node || now - ps.sentAt < grace) continue;
      listed ??= new Set(running);
      if (listed.has(gpid)) {
        ps.missed = 0;
        continue;
      }
      if (ps.missed > 0 && now - ps.lastMiss < LOST_START_MISS_SPACING_MS) continue;
      ps.missed++;
      ps.lastMiss = now;
      if (ps.missed >= LOST_START_MISSES) this.startLost(rec, node, now - ps.sentAt);
    }
  }

  private startLost(rec: ProcRecord, node: string, ms: number): void {
    rec.pendingStart = undefined;
    this.awaitingStart.delete(rec.view.gpid);
    process.stderr.write(`gridvm: the start of process ${rec.view.gpid} on node ${node} was lost (not there after ${ms} ms): it continues from its recovery point\n`);
    // should it reach the node after all, it is taken back there before it begins (or killed): it never runs twice
    this.send(node, { t: 'control', gpid: rec.view.gpid, action: 'kill' });
    if (rec.staged && rec.killRequested) {
      this.finish(rec, 'killed', KILLED_CODE, { why: 'killed', message: KILLED_BEFORE_BEGIN });
      return;
    }
    if (!rec.staged) rec.view.recoveries++;
    rec.view.visited.pop();
    // (a migration's target may hold what was prepared or streamed for that start)
    if (rec.migration?.phase === 'starting') this.send(node, { t: 'drop', gpid: rec.view.gpid });
    this.abandonMigration(rec, `its start on ${node} was lost`);
    // elsewhere if it can: were the start only late, the kill above must find that one, not the next
    this.requeue(rec, node);
  }

  /**
   * The checkpoint-interval policy for a start, with what this grid has seen of failures: the mean time between
   * node losses so far, and whether one happened in the last minute (the interval then shortens at once).
   */
  private policyNow(): CheckpointPolicy {
    const base = this.opts.checkpointPolicy ?? DEFAULT_POLICY;
    if (!this.nodeLosses.length) return base;
    const now = Date.now();
    return { ...base, mtbfMs: (now - this.startedAt) / this.nodeLosses.length, failureSeen: now - this.nodeLosses[this.nodeLosses.length - 1]! < 60_000 };
  }

  /** Send a node the instrumented module (once per node). */
  private ensureModule(node: string, hash: string): void {
    const n = this.nodeRecs.get(node);
    if (!n || n.modules.has(hash)) return;
    const m = this.modules.get(hash)!;
    this.send(node, { t: 'module', hash, bytes: m.bytes, info: m.info });
    n.modules.add(hash);
  }

  /** Put a process back in the scheduler's queue (it continues from rec.recovery). */
  private requeue(rec: ProcRecord, avoidNode?: string): void {
    const g = BigInt(rec.view.gpid);
    this.sched.release(g);
    // a process about to continue from a raw snapshot (used once) must not be staged: taken back, it would lose it
    this.sched.submit({ gpid: g, priority: rec.view.priority, ...(rec.pendingRaw ? { started: true } : {}), ...(avoidNode ? { avoidNode } : {}) });
    rec.view.state = 'queued';
    rec.view.node = null;
    rec.staged = false;
    this.kick();
  }

  private send(node: string, m: NodeCommand): void {
    this.bus.publish(`node.${node}`, m);
  }

  /** Ask a running process to stop at its next safe point (suspend for migration or preemption). */
  private stop(rec: ProcRecord, state: 'migrating' | 'suspending'): void {
    if (!rec.view.node) return;
    rec.view.state = state;
    this.send(rec.view.node, { t: 'control', gpid: rec.view.gpid, action: 'suspend', reason: state });
  }

  // ------------------------------------------------------------------ events from nodes

  private onEvent(e: NodeEvent): void {
    if (this.closed) return;
    const n = this.nodeRecs.get(e.node);
    if (!n || !n.alive) return; // a lost node's last words are ignored
    n.lastSeen = Date.now();
    if (e.t === 'heartbeat') return this.checkStarts(e.node, e.running);
    if (e.t === 'hello') return;
    if (e.t === 'prepared') return this.onPrepared(e.gpid, e.node, e.ok, e.message);
    const rec = this.procs.get(e.gpid);
    if (!rec || rec.view.node !== e.node) return; // stale: the process moved on
    switch (e.t) {
      case 'unstaged':
        // given back: it queues again (at the front of its priority class); not given back: it has started there
        if (this.sched.unstaged(BigInt(e.gpid), e.ok) && e.ok && rec.staged) {
          rec.staged = false;
          if (rec.killRequested) {
            this.finish(rec, 'killed', KILLED_CODE, { why: 'killed', message: KILLED_BEFORE_BEGIN });
            return;
          }
          rec.view.state = 'queued';
          rec.view.node = null;
          rec.view.visited.pop();
          this.kick();
        }
        return;
      case 'started': {
        rec.pendingStart = undefined;
        this.awaitingStart.delete(rec.view.gpid);
        if (rec.view.state === 'starting' || (rec.staged && rec.view.state === 'queued')) rec.view.state = 'running';
        // a staged start began: it holds its node's slot now
        if (rec.staged) this.sched.began(BigInt(e.gpid));
        rec.staged = false;
        this.kick(); // a move may have left nodes uneven: the scheduler rebalances
        const mig = rec.migration;
        if (mig?.phase === 'starting') {
          rec.migration = undefined;
          const r = mig.record;
          const done: MigrationRecord = {
            gpid: r.gpid, from: r.from, to: r.to, precopy: r.precopy, memoryBytes: r.memoryBytes ?? 0, bytesShipped: r.bytesShipped ?? 0,
            precopyBytes: r.precopyBytes ?? 0, precopyRounds: mig.rounds, streamed: !!mig.streamed, requestedAt: r.requestedAt, frozenAt: r.frozenAt ?? r.requestedAt, runningAt: e.at,
            downtimeMs: e.at - (r.frozenAt ?? r.requestedAt), totalMs: e.at - r.requestedAt,
          };
          this.migrationLogs.push(done);
          if (this.migrationLogs.length > 1000) this.migrationLogs.shift();
          mig.resolve(done);
        }
        return;
      }
      case 'precopy': {
        // the runner's next suspension will be a delta of this snapshot, whatever becomes of the migration
        if (e.delta && !rec.precopyChain?.length) {
          // cannot happen: a later round is only asked for after a first one
          this.finish(rec, 'failed', 125, { why: 'error', message: 'a pre-copy delta arrived without the pre-copy it is a delta of' });
          return;
        }
        rec.precopyChain = e.delta ? [...rec.precopyChain!, e.snapshot] : [e.snapshot];
        const mig = rec.migration;
        // (a later round's delta that arrives for a newer migration, which has asked for its first, full, round: the
        // chain above follows the runner; the migration waits for its own round)
        if (!mig || mig.phase !== 'precopy' || (!!e.delta !== mig.rounds > 0)) return;
        if (!this.nodeRecs.get(mig.to)?.alive) return this.abandonMigration(rec, `node ${mig.to} is gone`);
        mig.phase = 'preparing';
        mig.rounds++;
        mig.record.precopyBytes = (mig.record.precopyBytes ?? 0) + e.snapshot.length;
        this.ensureModule(mig.to, rec.hash);
        this.send(mig.to, { t: 'prepare', gpid: rec.view.gpid, hash: rec.hash, snapshot: e.snapshot, ...(e.delta ? { delta: true } : {}) });
        return;
      }
      case 'output':
        rec.job.out.deliver(rec.view.gpid, e.fd, e.offset, e.bytes);
        return;
      case 'streaming': {
        // the freeze of a plain migration: the target copies the memory as it is captured (from shared memory between
        // thread nodes, from the memory file as it is written between process nodes)
        const mig = rec.migration;
        if (!mig || mig.precopy || mig.phase !== 'freezing' || !this.nodeRecs.get(mig.to)?.alive) return;
        mig.streamed = true;
        this.ensureModule(mig.to, rec.hash);
        const src = e.file !== undefined ? { file: e.file } : { buffer: e.buffer, progress: e.progress };
        this.send(mig.to, { t: 'stream', gpid: rec.view.gpid, hash: rec.hash, pages: e.pages, ...src });
        return;
      }
      case 'checkpoint':
        rec.recovery = { snapshot: e.snapshot };
        rec.view.exportedCheckpoints++;
        this.usage(rec, e.usage);
        return;
      case 'suspended':
        this.onSuspended(rec, e);
        return;
      case 'blocked':
        this.usage(rec, e.usage);
        this.onBlocked(rec, e.call, e.snapshot);
        return;
      case 'exit':
        this.usage(rec, e.usage);
        this.finish(rec, 'exited', e.code);
        return;
      case 'trap':
        // (a start taken back before it began reports no usage of its own: keep what the process had)
        if (e.message !== KILLED_BEFORE_BEGIN) this.usage(rec, e.usage);
        if (e.reason === 'killed') this.finish(rec, 'killed', KILLED_CODE, { why: 'killed', reason: e.reason, message: e.message, stack: e.stack });
        else this.finish(rec, 'failed', TRAP_CODE, { why: e.reason === 'fuel' || e.reason === 'timeout' || e.reason === 'memory-limit' ? 'limit' : 'trap', reason: e.reason, message: e.message, stack: e.stack });
        return;
      case 'error':
        this.finish(rec, 'failed', 125, { why: 'error', message: e.message });
        return;
      case 'lost':
        // its node could not continue it: resume it from its recovery point, here or elsewhere (a staged start that
        // never began loses nothing)
        if (!rec.staged) rec.view.recoveries++;
        this.abandonMigration(rec, `the process was lost on ${e.node}: ${e.why}`);
        this.requeue(rec);
        return;
    }
  }

  private usage(rec: ProcRecord, u: Usage): void {
    rec.view.cpuMs = Math.round(u.cpuMs);
    rec.view.fuelUsed = u.fuelUsed;
    rec.view.memoryPeakBytes = Math.max(rec.view.memoryPeakBytes, u.memoryPeakBytes);
    rec.view.checkpoints = u.checkpoints;
    rec.counters = { cpuMs: u.cpuMs, checkpoints: u.checkpoints, migrations: rec.view.migrations };
  }

  private onPrepared(gpid: number, node: string, ok: boolean, message?: string): void {
    const rec = this.procs.get(gpid);
    const mig = rec?.migration;
    if (!rec || !mig || mig.to !== node || mig.phase !== 'preparing') {
      if (ok) this.send(node, { t: 'drop', gpid });
      return;
    }
    if (!ok) {
      this.abandonMigration(rec, `the target could not prepare: ${message ?? 'unknown error'}`);
      return;
    }
    if (mig.rounds < PRECOPY_ROUNDS && (mig.record.precopyBytes ?? 0) >= PRECOPY_ROUND2_BYTES && rec.view.node) {
      // another round while the job still runs: the pages it wrote while the last one travelled. The freeze then
      // ships only what this round itself let through
      mig.phase = 'precopy';
      this.send(rec.view.node, { t: 'control', gpid, action: 'precopy-delta' });
      return;
    }
    mig.phase = 'freezing';
    this.stop(rec, 'migrating');
  }

  /** Whether the migration's target holds prepared state for the process (a pre-copy round it applied or is applying). */
  private static holdsPrepared(mig: Migration): boolean {
    return mig.phase === 'preparing' || mig.phase === 'freezing' || (mig.phase === 'precopy' && mig.rounds > 0);
  }

  private abandonMigration(rec: ProcRecord, why: string): void {
    const mig = rec.migration;
    if (!mig) return;
    rec.migration = undefined;
    if (Grid.holdsPrepared(mig)) this.send(mig.to, { t: 'drop', gpid: rec.view.gpid });
    if (rec.view.state === 'migrating' && mig.phase !== 'freezing') rec.view.state = 'running';
    mig.reject(new Error(`migration of process ${rec.view.gpid} to ${mig.to} abandoned: ${why}`));
  }

  private onSuspended(rec: ProcRecord, e: Extract<NodeEvent, { t: 'suspended' }>): void {
    this.usage(rec, e.usage);
    const mig = rec.migration;
    const chain = e.delta ? rec.precopyChain : undefined;
    const base = chain?.[0];
    if (e.delta && !base) {
      // cannot happen: a delta is only made after a pre-copy this origin asked for
      this.finish(rec, 'failed', 125, { why: 'error', message: 'a migration delta arrived without its pre-copy base' });
      return;
    }
    let shipped: number;
    if (e.snapshot instanceof Uint8Array) {
      rec.recovery = { snapshot: e.snapshot, ...(base ? { base, mids: chain!.slice(1) } : {}) };
      shipped = e.snapshot.length;
    } else {
      // a raw snapshot is used once (its memory is transferred on); the recovery point stays the last export
      rec.pendingRaw = e.snapshot;
      shipped = e.snapshot.file !== undefined ? (e.snapshot.memoryBytes ?? 0) : e.snapshot.memory.length;
    }
    const to = mig?.to;
    if (rec.view.state === 'migrating' && mig?.phase === 'freezing' && to && this.nodeRecs.get(to)?.alive) {
      mig.phase = 'starting';
      Object.assign(mig.record, { frozenAt: e.frozenAt, bytesShipped: shipped, memoryBytes: e.memoryBytes });
      rec.view.migrations++;
      rec.counters.migrations = rec.view.migrations;
      this.sched.migrated(BigInt(rec.view.gpid), to);
      this.startOn(rec, to, mig.precopy, false, !!mig.streamed && !(e.snapshot instanceof Uint8Array));
      return;
    }
    if (mig) {
      rec.migration = undefined;
      if (to && Grid.holdsPrepared(mig) && this.nodeRecs.get(to)?.alive) this.send(to, { t: 'drop', gpid: rec.view.gpid });
      mig.reject(new Error(`migration of process ${rec.view.gpid} to ${mig.to} failed: the target is gone`));
    }
    // preempted (or the migration target went away): back to the queue, continuing from this snapshot
    if (rec.view.state === 'suspending' && this.sched.suspended(BigInt(rec.view.gpid))) {
      rec.view.state = 'suspended';
      rec.view.node = null;
      this.kick();
    } else this.requeue(rec);
  }

  // ------------------------------------------------------------------ grid calls

  private onBlocked(rec: ProcRecord, call: GridCallMsg, snapshot: Uint8Array): void {
    this.abandonMigration(rec, 'the process blocked in a grid call');
    rec.view.state = 'blocked';
    rec.view.node = null;
    rec.blocked = { call, snapshot };
    rec.recovery = { snapshot };
    // a blocked process's state is here, at the origin: it leaves the scheduler until its call is answered
    this.sched.release(BigInt(rec.view.gpid));
    this.kick();
    if (call.op === 'fork') {
      const child = this.newProcess(rec.job, rec.hash, { ...rec.spec, grid: { ...rec.spec.grid, gpid: 0, parent: rec.view.gpid } }, { snapshot, resolve: { value: 0 } }, rec);
      this.answer(rec, { value: child.view.gpid });
    } else if (call.op === 'spawn') {
      void this.spawn(rec, call).then(
        (v) => this.answer(rec, { value: v }),
        () => this.answer(rec, { value: -Errno.NOENT }),
      );
    } else {
      this.tryWait(rec);
    }
  }

  /**
   * spawn: the module is the caller's own when `path` is its argv[0] (like /proc/self/exe), else a file in one of
   * its host mounts, instrumented here on the origin (and cached) before it is shipped to a node.
   */
  private async spawn(rec: ProcRecord, call: { path: string; argv: string[] }): Promise<number> {
    let hash = rec.hash;
    if (call.path !== rec.spec.name) {
      const bytes = this.readGuestFile(rec.spec, call.path);
      if (!bytes) return -Errno.NOENT;
      try {
        hash = await this.loadModule(bytes, rec.job.trackDirty);
      } catch {
        return -Errno.NOEXEC;
      }
    }
    const argv = call.argv.length ? call.argv : [call.path];
    const child = this.newProcess(rec.job, hash, {
      name: argv[0]!, args: argv.slice(1), env: rec.spec.env, mounts: rec.spec.mounts, limits: rec.spec.limits,
      grid: { gpid: 0, parent: rec.view.gpid, rank: 0, size: 1 },
    }, {}, rec);
    this.kick();
    return child.view.gpid;
  }

  /**
   * A file's bytes by the guest path the process would use, read through the kernel's file system over the
   * process's host mounts: the same confinement as the job's own opens ('..' out of a mount, symlinks out of it,
   * absolute links are refused). Undefined if it cannot be read.
   */
  private readGuestFile(spec: ProcSpec, guestPath: string): Uint8Array | undefined {
    const mounts = spec.mounts.filter((m) => m.kind === 'host' && m.host).map((m) => ({ guest: m.guest, kind: 'host' as const, host: m.host!, readonly: true }));
    const norm = guestPath.replace(/\/+/g, '/');
    const i = mounts.findIndex((m) => {
      const g = m.guest.replace(/\/+$/, '') || '/';
      return norm !== g && norm.startsWith(g === '/' ? '/' : `${g}/`);
    });
    if (i < 0) return undefined;
    const rel = norm.slice((mounts[i]!.guest.replace(/\/+$/, '') || '/').length).replace(/^\/+/, '');
    try {
      const vfs = new Vfs([mounts[i]!], nodePlatform());
      const r = vfs.resolve(0, '', rel, true);
      if (r.stat?.kind !== 'file') return undefined;
      const { handle } = r.mount.fs.open(r.path, { read: true, write: false, create: false, excl: false, trunc: false });
      try {
        const out = new Uint8Array(Number(handle.stat().size));
        let off = 0;
        while (off < out.length) {
          const n = handle.read(out.subarray(off), off);
          if (n === 0) break;
          off += n;
        }
        return out.subarray(0, off);
      } finally {
        handle.close();
      }
    } catch {
      return undefined;
    }
  }

  private tryWait(rec: ProcRecord): void {
    const call = rec.blocked?.call;
    if (!call || call.op !== 'wait') return;
    const candidates = rec.children.filter((c) => !rec.reaped.has(c) && (call.gpid === -1 || c === call.gpid));
    if (!candidates.length) return this.answer(rec, { value: -Errno.CHILD });
    const ended = candidates.find((c) => this.isEnded(this.procs.get(c)!));
    if (ended === undefined) return; // answered when a child ends
    rec.reaped.add(ended);
    this.answer(rec, { value: ended, status: this.procs.get(ended)!.view.exitCode ?? 0 });
  }

  private answer(rec: ProcRecord, result: CallResult): void {
    if (!rec.blocked) return;
    rec.recovery = { snapshot: rec.blocked.snapshot, resolve: result };
    rec.blocked = undefined;
    this.requeue(rec);
  }

  private isEnded(rec: ProcRecord): boolean {
    return rec.view.state === 'exited' || rec.view.state === 'failed' || rec.view.state === 'killed';
  }

  // ------------------------------------------------------------------ endings

  private finish(rec: ProcRecord, state: 'exited' | 'failed' | 'killed', code: number, failure?: Omit<NonNullable<ProcView['failure']>, 'node' | 'at'>): void {
    if (this.isEnded(rec)) return;
    this.abandonMigration(rec, `the process ${state === 'exited' ? 'exited' : state === 'killed' ? 'was killed' : 'failed'}`);
    rec.view.state = state;
    rec.view.exitCode = code;
    if (failure) rec.view.failure = { ...failure, node: rec.view.node, at: new Date().toISOString() };
    rec.view.node = null;
    rec.recovery = {};
    if (rec.pendingRaw?.file) rmSync(rec.pendingRaw.file, { force: true });
    rec.pendingRaw = undefined;
    rec.blocked = undefined;
    this.sched.release(BigInt(rec.view.gpid));
    rec.job.out.finish(rec.view.gpid);
    const parent = this.procs.get(rec.spec.grid.parent);
    if (parent?.blocked) this.tryWait(parent);
    this.kick();
    this.maybeJobDone(rec.job);
  }

  private maybeJobDone(job: JobRecord): void {
    if (!job.procs.every((p) => this.isEnded(p))) return;
    if (job.migrateTimer) clearInterval(job.migrateTimer);
    const procs = job.procs.map((p) => ({ ...p.view, visited: [...p.view.visited] }));
    let exitCode: number;
    if (job.rankJob) exitCode = procs.find((p) => p.exitCode !== 0)?.exitCode ?? 0;
    else exitCode = procs[0]!.exitCode ?? 125;
    const ended = performance.now();
    this.finishedJobs.push(job.id);
    this.finishedProcs += job.procs.length;
    this.pruneFinished();
    job.done({
      id: job.id, exitCode, processes: procs, startedAt: new Date(job.startedEpoch).toISOString(), endedAt: new Date().toISOString(),
      elapsedMs: ended - job.startedAt, outputGaps: job.out.gaps,
    });
  }

  /** Forget the oldest finished jobs beyond KEEP_FINISHED_PROCS processes (their records are saved by the CLI). */
  private pruneFinished(): void {
    while (this.finishedProcs > KEEP_FINISHED_PROCS && this.finishedJobs.length - this.finishedHead > 1) {
      const job = this.jobs.get(this.finishedJobs[this.finishedHead++]!);
      if (!job) continue;
      for (const p of job.procs) this.procs.delete(p.view.gpid);
      this.jobs.delete(job.id);
      this.finishedProcs -= job.procs.length;
    }
    if (this.finishedHead > 1024 && this.finishedHead * 2 > this.finishedJobs.length) {
      this.finishedJobs.splice(0, this.finishedHead);
      this.finishedHead = 0;
    }
  }

  // ------------------------------------------------------------------ control: ps, kill, migrate

  ps(): ProcView[] {
    return [...this.procs.values()].map((p) => ({ ...p.view, visited: [...p.view.visited] }));
  }

  nodes(): NodeView[] {
    return [...this.nodeRecs.entries()].map(([id, n]) => ({
      id, isolate: n.handle.isolate, pid: n.handle.pid, slots: n.slots, alive: n.alive,
      running: [...this.procs.values()].filter((p) => p.view.node === id && !p.staged).map((p) => p.view.gpid),
      ...(n.lostWhy ? { lostWhy: n.lostWhy } : {}),
    }));
  }

  jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  /** Kill a process (GPID). Returns false if there is no such live process. */
  kill(gpid: number): boolean {
    const rec = this.procs.get(gpid);
    if (!rec || this.isEnded(rec)) return false;
    if (rec.view.node && (rec.staged || rec.view.state === 'running' || rec.view.state === 'starting' || rec.view.state === 'migrating' || rec.view.state === 'suspending')) {
      // (a staged start that has not begun is taken back by its node and reported killed; it never runs)
      if (rec.staged) rec.killRequested = true;
      this.send(rec.view.node, { t: 'control', gpid, action: 'kill' });
    } else {
      this.finish(rec, 'killed', KILLED_CODE, { why: 'killed', message: 'killed while not running' });
    }
    return true;
  }

  /**
   * Change how many processes a node may run at once (its owner wants the machine back, say: 0 drains it). Its
   * processes beyond the new count move to free slots elsewhere, or, when no slot is free anywhere, are suspended to
   * a checkpoint and resume where a slot frees (the scheduler's overload rule). Throws on an unknown node or a
   * count that is not an integer >= 0.
   */
  setSlots(node: string, slots: number): void {
    const n = this.nodeRecs.get(node);
    if (!n || !n.alive) throw new Error(`no live node ${node} (nodes: ${this.aliveNodes().join(', ')})`);
    if (!Number.isInteger(slots) || slots < 0) throw new Error(`slots must be an integer >= 0, got ${slots}`);
    n.slots = slots;
    this.sched.updateNode(node, { slots, lookahead: this.lookaheadFor(slots) });
    this.send(node, { t: 'slots', slots });
    this.kick();
  }

  /**
   * Move a running process to another node: freeze it at its next safe point, ship its snapshot, continue it there.
   * With `precopy`, its whole state is shipped and loaded on the target first while it keeps running, and the
   * freeze ships only the pages that changed since. Resolves when it runs on the target.
   */
  migrate(gpid: number, to: string, opts: { precopy?: boolean } = {}): Promise<MigrationRecord> {
    const rec = this.procs.get(gpid);
    const n = this.nodeRecs.get(to);
    const refuse = (why: string) => Promise.reject(new Error(why));
    if (!rec) return refuse(`no process with GPID ${gpid}`);
    if (!n || !n.alive) return refuse(`no live node ${to} (nodes: ${this.aliveNodes().join(', ')})`);
    if (rec.view.state !== 'running') return refuse(`process ${gpid} is ${rec.view.state}, not running`);
    if (rec.migration) return refuse(`process ${gpid} is already migrating to ${rec.migration.to}`);
    const from = rec.view.node!;
    if (from === to) return refuse(`process ${gpid} is already on ${to}`);
    const precopy = !!opts.precopy;
    return new Promise<MigrationRecord>((resolve, reject) => {
      rec.migration = { to, precopy, phase: precopy ? 'precopy' : 'freezing', rounds: 0, record: { gpid, from, to, precopy, requestedAt: epochNow() }, resolve, reject };
      if (precopy) {
        rec.view.state = 'migrating';
        this.send(from, { t: 'control', gpid, action: 'precopy' });
      } else this.stop(rec, 'migrating');
    });
  }

  /** The last migrations (at most 1000), oldest first. */
  migrationLog(): MigrationRecord[] {
    return this.migrationLogs.slice();
  }

  private aliveNodes(): string[] {
    return [...this.nodeRecs.entries()].filter(([, n]) => n.alive).map(([id]) => id);
  }

  private migrateRound(job: JobRecord): void {
    const alive = this.aliveNodes();
    if (alive.length < 2) return;
    for (const rec of job.procs) {
      if (rec.view.state !== 'running' || !rec.view.node) continue;
      const i = alive.indexOf(rec.view.node);
      const to = alive[(i + 1) % alive.length]!;
      if (!rec.migration) this.migrate(rec.view.gpid, to, { precopy: job.precopy }).catch(() => {});
    }
  }

  // ------------------------------------------------------------------ failures

  private checkHeartbeats(): void {
    const limit = this.opts.heartbeatTimeoutMs ?? 10_000;
    const now = Date.now();
    // if this origin's own event loop was blocked (a long instrumentation, a huge message), the silence was ours:
    // do not count it against the nodes
    const lag = now - this.lastCheck - HEARTBEAT_CHECK_MS;
    this.lastCheck = now;
    if (lag > 1000) {
      for (const n of this.nodeRecs.values()) n.lastSeen = Math.max(n.lastSeen, now - HEARTBEAT_CHECK_MS);
      // (nor against the starts sent before it: they may have left only now)
      for (const rec of this.awaitingStart.values()) if (rec.pendingStart) Object.assign(rec.pendingStart, { sentAt: Math.max(rec.pendingStart.sentAt, now), missed: 0 });
    }
    for (const [id, n] of this.nodeRecs) {
      if (n.alive && now - n.lastSeen > limit) this.nodeLost(id, `no heartbeat for ${now - n.lastSeen} ms`);
    }
    // a scheduling round even when nothing happened: the scheduler's cool-downs count rounds, and a decision that
    // waited for one (a drained node's process, just migrated there) would otherwise wait for the next event
    this.kick();
  }

  /** A node died: its processes continue from their last exported checkpoint elsewhere. */
  nodeLost(id: string, why: string): void {
    const n = this.nodeRecs.get(id);
    if (!n || !n.alive || this.closed) return;
    n.alive = false;
    n.lostWhy = why;
    this.nodeLosses.push(Date.now());
    void n.handle.stop(true);
    // A rebalancing migration is the scheduler's own decision: it moved the process to the target in its state at
    // once, while the process still runs on its source until it is frozen. If either end is lost now, make the
    // scheduler agree with where the process really is (its source) before it drops the node: otherwise the loss
    // of the target would requeue a process that still runs on its source (placed again: it ran on two nodes),
    // and the loss of the source would leave it "running" on the target in the scheduler, never placed again.
    for (const rec of this.procs.values()) {
      const mig = rec.migration;
      const src = rec.view.node;
      if (!mig || !src || mig.phase === 'starting' || this.isEnded(rec) || (src !== id && mig.to !== id)) continue;
      const g = BigInt(rec.view.gpid);
      const e = this.sched.process(g);
      if (e?.node !== undefined && e.node !== src && (e.state === 'running' || e.state === 'suspending') && this.sched.nodes().some((x) => x.id === src)) {
        this.sched.migrated(g, src);
      }
    }
    this.sched.removeNode(id);
    for (const rec of this.procs.values()) {
      if (rec.view.node !== id || this.isEnded(rec)) continue;
      rec.view.node = null;
      rec.view.state = 'queued';
      // (a staged start that had not begun there loses nothing)
      if (!rec.staged) rec.view.recoveries++;
      rec.staged = false;
      const mig = rec.migration;
      rec.migration = undefined;
      mig?.reject(new Error(`migration of process ${rec.view.gpid} failed: node ${id} was lost`));
      if (mig && mig.to !== id && Grid.holdsPrepared(mig)) this.send(mig.to, { t: 'drop', gpid: rec.view.gpid });
    }
    for (const rec of this.procs.values()) {
      if (rec.migration?.to !== id) continue;
      if (rec.migration.phase === 'starting') continue; // its start was sent to the lost node: requeued above
      this.abandonMigration(rec, `node ${id} was lost`);
    }
    if (this.opts.replaceLostNodes ?? true) this.addNode();
    this.kick();
  }

  /** Fault injection (tests, chaos drills): end the runner thread of a running process abruptly. */
  injectFault(gpid: number, kind: 'runner-crash'): boolean {
    const rec = this.procs.get(gpid);
    if (!rec?.view.node || rec.view.state !== 'running') return false;
    this.send(rec.view.node, { t: 'fault', gpid, kind });
    return true;
  }

  /** Kill a node's OS process (process isolation) as a failure would. */
  killNode(id: string): boolean {
    const n = this.nodeRecs.get(id);
    if (!n || !n.alive) return false;
    // (a node process that never started has no pid: process.kill(-1) would signal every process we may signal)
    if (n.handle.isolate === 'process' && n.handle.pid > 0) {
      process.kill(n.handle.pid, 'SIGKILL');
    } else this.nodeLost(id, 'killed');
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.monitor) clearInterval(this.monitor);
    for (const j of this.jobs.values()) if (j.migrateTimer) clearInterval(j.migrateTimer);
    await Promise.all([...this.nodeRecs.values()].map((n) => n.handle.stop(false)));
    this.bus.close();
    // memory files of migrations between process nodes that never reached their target: those the nodes left when
    // they exited (every node process has exited now: stop() waits for it)
    for (const f of this.leftFiles) rmSync(f, { force: true });
    this.leftFiles.clear();
  }

  /** List the migration memory files a node process that just exited wrote (and nobody took), for close(). */
  private noteNodeFiles(pid: number): void {
    if (!(pid > 0)) return;
    const prefix = `gridvm-snap-${pid}-`;
    try {
      for (const f of readdirSync(MIGRATION_DIR)) if (f.startsWith(prefix)) this.leftFiles.add(join(MIGRATION_DIR, f));
    } catch {
      /* no directory: nothing was left */
    }
  }
}
