// Worker thread entry: a node's runner. Runs one process at a time on the Grid VM: starts it fresh or from a
// snapshot, streams its output with byte offsets, takes local checkpoints at the node's adaptive interval (exporting
// every k-th to the origin), and stops it at a safe point when the node asks (migration, preemption) through the
// control word. Messages out are NodeEvents (kernel/net/protocol.ts), relayed by the NodeHost.
import { closeSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import {
  AdaptiveInterval,
  Process,
  type CheckpointPolicy,
  type GridCallMsg,
  type MountSpec,
  type NodeEvent,
  type ProcSpec,
  type ProcStatus,
  type RawSnapshot,
  type Usage,
  type CarriedSnapshot,
} from '../../kernel/index.js';
import {
  applyChain,
  applyLink,
  concatChunks,
  CAPTURE_CHUNK,
  createPageEngine,
  decodeSnapshot,
  encodeSnapshot,
  keepPages,
  Machine,
  snapshotFromChain,
  PAGE_SIZE,
  type CompiledJob,
  type DecodedSnapshot,
  type DeltaBase,
  type Encoded,
  type InstrumentInfo,
  MemoryPool,
  InstancePool,
  type RunOutcome,
  type Snapshot,
} from '../../vm/runtime.js';
import { nodePlatform } from '../platform.js';
import { carrierFileName, FILE_CARRIER_BYTES } from './ipc-carrier.js';
import { isMigrationFile, writerPid, migrationFileName, readAll, spareFiles, streamProgress, suspendSink, takeSuspendFile, writeAll } from './shm-files.js';
import { BEGUN, PRECOPY_DELTA_FLAG, PRECOPY_FLAG, slotWords, stamp, type LocalCheckpointEvent, type RecycleEvent, type RunnerCommand, type RunnerData } from './runner-types.js';

const { node, control } = workerData as RunnerData;
const modules = new Map<string, { module: WebAssembly.Module; info: InstrumentInfo }>();
const pages = createPageEngine('auto');
/**
 * Output is batched: chunks wait here and leave with the next event (so a short job's output and exit are one
 * message) or at a safe point once OUTPUT_FLUSH_MS have passed or OUTPUT_FLUSH_BYTES are waiting. Every event is
 * preceded by the output before it, so the origin never sees a checkpoint before the output it covers. The bytes
 * are gathered in one buffer (the kernel lends each write's bytes: ProcessOptions.borrowOutput), consecutive
 * writes of one stream become one output event, and a batch carries all its bytes in one transferred buffer: a
 * job that prints 8 lines sends one output event, not 8 events with a buffer each.
 */
const OUTPUT_FLUSH_MS = 10;
const OUTPUT_FLUSH_BYTES = 64 * 1024;
/** output waiting in outBuf[s, e), filled into an output event at the flush */
interface OutRun {
  t: 'run';
  gpid: number;
  fd: 1 | 2;
  offset: number;
  s: number;
  e: number;
}
let pendingOut: Array<NodeEvent | OutRun> = [];
let outBuf = new Uint8Array(16 * 1024);
let outUsed = 0;
let pendingSince = 0;
/** pendingOut holds a fresh start's 'started' or an earlier process's end: flush it at the first safe point */
let startedQueued = false;

/** Stream `fd` of `gpid` wrote `bytes` (at `offset` of that stream): into the batch. */
function addOutput(gpid: number, fd: 1 | 2, offset: number, bytes: Uint8Array): void {
  if (!pendingOut.length) pendingSince = performance.now();
  const n = bytes.length;
  if (outUsed + n > outBuf.length) {
    const bigger = new Uint8Array(Math.max(outBuf.length * 2, outUsed + n));
    bigger.set(outBuf.subarray(0, outUsed));
    outBuf = bigger;
  }
  outBuf.set(bytes, outUsed);
  const last = pendingOut[pendingOut.length - 1];
  if (last?.t === 'run' && last.gpid === gpid && last.fd === fd && last.e === outUsed && last.offset + (last.e - last.s) === offset) last.e += n;
  else pendingOut.push({ t: 'run', gpid, fd, offset, s: outUsed, e: outUsed + n });
  outUsed += n;
  if (outUsed >= OUTPUT_FLUSH_BYTES) flushOutput();
}

/** Send the waiting output (and a queued 'started'), then `m` if given, as one message. */
const send = (m?: NodeEvent, transfer: ArrayBuffer[] = []) => {
  startedQueued = false;
  flushDue = false;
  if (!pendingOut.length) {
    if (m) parentPort!.postMessage(m, transfer);
    return;
  }
  // the batch's bytes in one buffer of their own, handed over (transferred), each output event a view of it
  const bytes = outUsed ? outBuf.slice(0, outUsed) : undefined;
  const batch: NodeEvent[] = new Array(pendingOut.length + (m ? 1 : 0));
  for (let i = 0; i < pendingOut.length; i++) {
    const x = pendingOut[i]!;
    batch[i] = x.t === 'run' ? { t: 'output', node, gpid: x.gpid, fd: x.fd, offset: x.offset, bytes: bytes!.subarray(x.s, x.e) } : x;
  }
  if (m) batch[pendingOut.length] = m;
  pendingOut = [];
  outUsed = 0;
  if (bytes) transfer.push(bytes.buffer);
  parentPort!.postMessage(batch, transfer);
};
const post = (m: NodeEvent, transfer: ArrayBuffer[] = []) => send(m, transfer);
const flushOutput = () => send();
/**
 * An end (exit, trap) leaves with the next batch: once this thread has handled the messages already queued for it
 * (setImmediate), so a run of staged tiny jobs reports in one message; or earlier, at a safe point of the process
 * that runs next once the batch has waited FLUSH_AT_BEGIN_MS, or when that one begins more than FLUSH_AT_BEGIN_MS
 * later.
 */
const FLUSH_AT_BEGIN_MS = 2;
let flushDue = false;
const postSoon = (m: NodeEvent) => {
  if (!pendingOut.length) pendingSince = performance.now();
  pendingOut.push(m);
  startedQueued = true;
  if (!flushDue) {
    flushDue = true;
    setImmediate(() => {
      if (flushDue) flushOutput();
    });
  }
};
/**
 * The pre-copy of a process about to arrive here (decoded, checksums verified): a full snapshot and the deltas of
 * later rounds, oldest first, all applied to `memory`
 */
let prepared: { gpid: number; chain: DecodedSnapshot[]; memory?: WebAssembly.Memory; streamed?: boolean; file?: string } | undefined;

/**
 * A pre-copy round as the runner keeps it until the start: once applied to the prepared memory, only the pages that
 * instantiation rewrites are read again (applyChain), so the rest of its data (most of the job's memory, in the
 * first round) becomes garbage now, while this thread is idle, instead of after the start, in the job's run.
 */
function compacted(link: DecodedSnapshot, memory: WebAssembly.Memory | undefined, hash: string): DecodedSnapshot {
  const dataPages = modules.get(hash)?.info.dataPages;
  return memory && dataPages ? keepPages(link, dataPages) : link;
}

/** Let go of the prepared process (of `gpid` only, if given): its memory goes back to the pool. */
function releasePrepared(gpid?: number): void {
  if (!prepared || (gpid !== undefined && prepared.gpid !== gpid)) return;
  if (prepared.memory) mempool.give(prepared.memory);
  prepared = undefined;
}

/** A 'stream-in' gives up when its source captures nothing more for this long (its thread died, say). */
const STREAM_STALL_MS = 5000;

/**
 * Copy the memory of a process being frozen on another runner into a job memory of this one, as the capture
 * progresses (the two copies overlap, on two cores): the start that follows finds it in place. Blocks this thread
 * until the capture is complete (milliseconds); gives up if it stalls.
 */
function streamIn(m: Extract<RunnerCommand, { t: 'stream-in' }>): void {
  releasePrepared();
  const info = modules.get(m.hash)?.info;
  const lim = info?.memory;
  // a module that defines its own memory (or without the data-segment pages): its start copies from the raw
  // snapshot as usual
  if (!lim || !info.dataPages) return;
  let memory: WebAssembly.Memory;
  try {
    memory = mempool.take(m.pages, lim);
  } catch {
    return; // no memory for it here now: the start copies from the raw snapshot
  }
  const dst = new Uint8Array(memory.buffer);
  if (m.file !== undefined) {
    if (streamFileIn(m.file, m.pages, dst)) prepared = { gpid: m.gpid, chain: [], memory, streamed: true, file: m.file };
    else mempool.give(memory);
    return;
  }
  const src = new Uint8Array(m.buffer, 0, m.pages * PAGE_SIZE);
  const progress = new Int32Array(m.progress);
  let done = 0;
  let last = performance.now();
  while (done < m.pages) {
    const p = Atomics.load(progress, 0);
    if (p < 0) break; // given up by the source
    if (p > done) {
      dst.set(src.subarray(done * PAGE_SIZE, p * PAGE_SIZE), done * PAGE_SIZE);
      done = p;
      last = performance.now();
      continue;
    }
    if (Atomics.wait(progress, 0, p, 100) === 'timed-out' && performance.now() - last > STREAM_STALL_MS) break;
  }
  if (done < m.pages) {
    mempool.give(memory);
    return;
  }
  prepared = { gpid: m.gpid, chain: [], memory, streamed: true };
}
/** Whether process `pid` still exists (signal 0 checks without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pages per chunk of a streamed memory file (FileSink writes CAPTURE_CHUNK at a time). */
const CHUNK_PAGES = CAPTURE_CHUNK / PAGE_SIZE;
/** A private word to sleep on between looks at a streamed file's progress. */
const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * streamIn between process nodes: read the memory file another node's runner is writing (shm-files.ts FileSink
 * with `announce`) into `dst` as its progress trailer advances. True once all `pages` are in.
 */
function streamFileIn(file: string, pages: number, dst: Uint8Array): boolean {
  if (!isMigrationFile(file)) return false;
  const bytes = pages * PAGE_SIZE;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false; // gone already (the writer gave up): the start reads whatever it is sent
  }
  try {
    let done = 0;
    let last = performance.now();
    while (done < pages) {
      const p = streamProgress(fd, bytes);
      if (p < 0) return false; // given up
      // a count the writer can have written (whole chunks, or all): anything else is not trusted
      if (p > pages || p < done || (p !== pages && p % CHUNK_PAGES !== 0)) return false;
      // the same twice (the writer may have moved on between the reads: then look again)
      if (p > done && streamProgress(fd, bytes) !== p) continue;
      if (p > done) {
        readAll(fd, dst.subarray(done * PAGE_SIZE, p * PAGE_SIZE), done * PAGE_SIZE, `migration file ${file}`);
        done = p;
        last = performance.now();
        continue;
      }
      const idle = performance.now() - last;
      if (idle > STREAM_STALL_MS || (idle > 50 && !alive(writerPid(file)))) return false; // stalled, or its writer died
      Atomics.wait(nap, 0, 0, 0.1);
    }
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * Job memories this runner keeps between processes: a restore into one of them copies into pages that are already
 * faulted in (64 MiB: ~8 ms instead of ~40 ms into a fresh memory).
 */
const mempool = new MemoryPool({ maxBytes: 1024 * 1024 * 1024, maxCount: 4 });
/** idle instances of reusable modules (InstrumentInfo.reusable): a tiny job skips instantiation */
const instances = new InstancePool();
/** epoch ms, sub-ms precision, comparable across threads and processes */
const epochNow = () => performance.timeOrigin + performance.now();

parentPort!.on('message', onCommand);

function onCommand(m: RunnerCommand): void {
  if (m.t === 'starts') {
    for (const c of m.list) onCommand(c);
    return;
  }
  if (m.t === 'module') {
    modules.set(m.hash, { module: m.module, info: m.info });
    return;
  }
  if (m.t === 'stream-in') {
    streamIn(m);
    return;
  }
  if (m.t === 'drop') {
    releasePrepared(m.gpid);
    return;
  }
  if (m.t === 'prepare') {
    try {
      if (m.delta) {
        // a later round: apply it to the memory prepared so far
        if (prepared?.gpid !== m.gpid) throw new Error(`process ${m.gpid} has no earlier pre-copy on this runner`);
        const d = decodeSnapshot(m.snapshot, pages);
        const last = prepared.chain[prepared.chain.length - 1]!;
        if (d.header.kind !== 'delta' || d.header.base !== last.id) throw new Error(`pre-copy round ${prepared.chain.length + 1} of process ${m.gpid} is not a delta of the previous round`);
        if (prepared.memory) {
          const have = prepared.memory.buffer.byteLength / PAGE_SIZE;
          if (d.header.pages > have) prepared.memory.grow(d.header.pages - have);
          applyLink(d, new Uint8Array(prepared.memory.buffer));
        }
        prepared.chain.push(compacted(d, prepared.memory, m.hash));
        post({ t: 'prepared', node, gpid: m.gpid, ok: true });
        return;
      }
      releasePrepared();
      const base = decodeSnapshot(m.snapshot, pages);
      // copy the bulk of the job's memory now, while it still runs on its old node: the start then applies only
      // the pages that changed since (and those instantiation rewrites)
      const lim = modules.get(m.hash)?.info.memory;
      let memory: WebAssembly.Memory | undefined;
      if (lim) {
        memory = mempool.take(base.header.pages, lim);
        applyChain([base], new Uint8Array(memory.buffer));
      }
      prepared = { gpid: m.gpid, chain: [compacted(base, memory, m.hash)], ...(memory ? { memory } : {}) };
      post({ t: 'prepared', node, gpid: m.gpid, ok: true });
    } catch (e) {
      releasePrepared();
      post({ t: 'prepared', node, gpid: m.gpid, ok: false, message: (e as Error).message });
    }
    return;
  }
  // begin it unless the node took it back while it waited here (staged): one compare-and-swap decides
  const words = slotWords(control, m.slot);
  if (Atomics.compareExchange(words, 2, stamp(m.gen), stamp(m.gen, BEGUN)) !== stamp(m.gen)) {
    // taken back (or killed) before it began: free what it brought or what was held for it
    recycle(m.spare);
    const snap = m.snapshot;
    if (snap && !(snap instanceof Uint8Array)) {
      if (snap.file) spareFiles.adopt(snap.file); // a migration's memory file that will not be read is ours
      else if (snap.memory.byteLength) recycle(snap.memory.buffer);
    }
    releasePrepared(m.gpid);
    return;
  }
  if (pendingOut.length && performance.now() - pendingSince >= FLUSH_AT_BEGIN_MS) flushOutput();
  try {
    runProcess(m, words);
  } catch (e) {
    post({ t: 'error', node, gpid: m.gpid, message: `${(e as Error).name}: ${(e as Error).message}` });
  }
}

function encode(s: Snapshot, delta?: DeltaBase, shared = false): { bytes: Uint8Array; base: DeltaBase; delta: boolean } {
  const c = encodeOut(s, delta, { toFile: false, shared });
  return { bytes: c.fields.snapshot, base: c.base, delta: c.delta };
}

/**
 * Encode a snapshot as a message's fields, the pages copied once (views, then one concatenation into the buffer that
 * leaves). shared: in a SharedArrayBuffer, passed on between threads shared, not transferred (a transferred big
 * ArrayBuffer counts as new external memory in each thread it reaches, and V8 answers with a full GC there, maybe in
 * a freeze). toFile (a process node's message to the origin): FILE_CARRIER_BYTES or more are written straight from
 * the captured memory into a carrier file (a spare's pages reused) and leave as the message's `carried` field
 * (ipc-carrier.ts), so nothing the size of the job's memory is allocated in this thread. Such buffers counted as new
 * external memory here, and V8 answered with a full GC (and the freeing of the old buffers) at this thread's next
 * free turn of its event loop, which a running job only gives at its next freeze: 5-10 ms of a 64 MiB pre-copy
 * migration's downtime, measured.
 */
function encodeOut(s: Snapshot, base: DeltaBase | undefined, opts: { toFile: boolean; shared?: boolean }): { fields: { snapshot: Uint8Array; carried?: CarriedSnapshot }; transfer: ArrayBuffer[]; base: DeltaBase; delta: boolean } {
  const e = encodeSnapshot(s, pages, { createdAtMs: Date.now(), ...(base ? { delta: base } : {}), views: true });
  const out = { base: e.base, delta: e.header.kind === 'delta' };
  const carried = opts.toFile && e.size >= FILE_CARRIER_BYTES ? toCarrierFile(e) : undefined;
  if (carried) return { ...out, fields: { snapshot: new Uint8Array(0), carried }, transfer: [] };
  const bytes = concatChunks(e.chunks, opts.shared ? (n) => new Uint8Array(new SharedArrayBuffer(n)) : undefined);
  return { ...out, fields: { snapshot: bytes }, transfer: bytes.buffer instanceof ArrayBuffer ? [bytes.buffer] : [] };
}

/** Write an encoded snapshot into a new carrier file for the origin; undefined if it cannot (no room in /dev/shm, say). */
function toCarrierFile(e: Encoded): CarriedSnapshot | undefined {
  const file = carrierFileName('origin');
  let fd = -1;
  try {
    // (the origin removes a carrier file once read: a spare much bigger than this one is kept for a suspension)
    fd = spareFiles.claim(file, e.size, 2 * e.size).fd;
    let at = 0;
    for (const c of e.chunks) {
      writeAll(fd, c, at);
      at += c.length;
    }
    ftruncateSync(fd, e.size); // a spare may have been bigger
    closeSync(fd);
    return { snapshot: { file, bytes: e.size } };
  } catch {
    if (fd >= 0) closeSync(fd);
    rmSync(file, { force: true });
    return undefined; // the bytes go in the message, as they did before carried files
  }
}

/** A raw snapshot for a migration between threads: the state and a copy of memory, no encoding. */
function rawOf(s: Snapshot, spare: ArrayBufferLike | undefined): RawSnapshot {
  const len = s.pages * PAGE_SIZE;
  let memory: Uint8Array;
  if (spare && s.memory.buffer === spare) memory = s.memory.subarray(0, len); // captured straight into it
  else if (spare && spare.byteLength >= len) {
    memory = new Uint8Array(spare, 0, len);
    memory.set(s.memory.subarray(0, len));
  } else {
    // a new spare, shared: it will circulate between runner threads and the node (origin side) for later migrations.
    // A SharedArrayBuffer is shared, not transferred, so the threads it passes through do not take its size as new
    // external memory: a transferred 64 MiB ArrayBuffer made V8 run a full GC in the receiving thread (~5-8 ms of
    // a migration's downtime, twice)
    memory = new Uint8Array(new SharedArrayBuffer(len));
    memory.set(s.memory.subarray(0, len));
  }
  return {
    raw: true, moduleHash: s.moduleHash, pages: s.pages, globals: s.globals, asyncify: s.asyncify, kernel: s.kernel,
    fuelUsed: s.fuelUsed, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, seq: s.seq, memory,
  };
}

/** A raw snapshot whose memory is written to a file (between process nodes of one machine). */
function rawToFile(s: Snapshot, gpid: number): RawSnapshot {
  const len = s.pages * PAGE_SIZE;
  // captured into its file already (the Machine's capture sink), or copied (dirty-page tracking): write it now, into
  // a spare file whose pages exist when this runner has one
  let file = takeSuspendFile(gpid, len);
  if (file === undefined) {
    file = migrationFileName(gpid);
    const { fd } = spareFiles.claim(file, len);
    try {
      writeAll(fd, s.memory.subarray(0, len), 0);
    } finally {
      closeSync(fd);
    }
  }
  return {
    raw: true, moduleHash: s.moduleHash, pages: s.pages, globals: s.globals, asyncify: s.asyncify, kernel: s.kernel,
    fuelUsed: s.fuelUsed, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, seq: s.seq, memory: new Uint8Array(0),
    file, memoryBytes: len,
  };
}

/** Hand a buffer back to the node's pool of spares (transferred, or shared: either way it leaves this thread). */
function recycle(buffer: ArrayBufferLike | undefined): void {
  if (buffer && buffer.byteLength > 0) parentPort!.postMessage({ t: 'recycle', buffer } satisfies RecycleEvent, buffer instanceof ArrayBuffer ? [buffer] : []);
}

interface Source {
  snap: Snapshot;
  apply: (dst: Uint8Array) => void;
  /** a memory already holding most of the state (prepared by a pre-copy) */
  memory?: WebAssembly.Memory;
}

/** Where a start continues from: a raw snapshot, or a chain [full] / [full base, delta]. */
function sourceOf(m: Extract<RunnerCommand, { t: 'start' }>, info: InstrumentInfo): Source | undefined {
  const p = m.snapshot;
  if (!p) return undefined;
  if (!(p instanceof Uint8Array)) {
    const snap: Snapshot = { ...p, memory: p.memory, kernel: p.kernel as Snapshot['kernel'], globals: p.globals };
    const file = p.file;
    if (m.streamed && prepared?.gpid === m.gpid && prepared.streamed && prepared.file === file && prepared.memory && info.dataPages) {
      // its memory was streamed into this runner while it was captured (from shared memory, or read from its file as
      // it was written): only the pages instantiation rewrites (data segments) are copied again
      const memory = prepared.memory;
      const dataPages = info.dataPages.filter((pg) => pg < p.pages);
      prepared = undefined;
      const page = (dst: Uint8Array, pg: number) => dst.subarray(pg * PAGE_SIZE, (pg + 1) * PAGE_SIZE);
      return {
        snap, memory,
        apply: (dst) => {
          if (file === undefined) {
            for (const pg of dataPages) page(dst, pg).set(page(p.memory, pg));
            return;
          }
          const fd = openSync(file, 'r');
          try {
            for (const pg of dataPages) readAll(fd, page(dst, pg), pg * PAGE_SIZE, `migration file ${file}`);
          } finally {
            closeSync(fd);
            spareFiles.adopt(file);
          }
        },
      };
    }
    // (streamed, but not the memory held here: it would stay pinned while the job runs)
    if (m.streamed) releasePrepared(m.gpid);
    if (file === undefined) return { snap, apply: (dst) => dst.set(p.memory) };
    const len = p.memoryBytes ?? p.pages * PAGE_SIZE;
    return {
      snap,
      apply: (dst) => {
        // straight from the file into the job's memory: no intermediate buffer. The file is ours now: it becomes a
        // spare for a later outgoing migration (or is removed in the background)
        const fd = openSync(file, 'r');
        try {
          readAll(fd, dst.subarray(0, len), 0, `migration file ${file}`);
        } finally {
          closeSync(fd);
          spareFiles.adopt(file);
        }
      },
    };
  }
  const last = decodeSnapshot(p, pages);
  if (last.header.kind === 'full') return { snap: snapshotFromChain([last]), apply: (dst) => applyChain([last], dst) };
  if (m.prepared) {
    if (prepared?.gpid !== m.gpid) throw new Error(`process ${m.gpid} was not prepared on this runner for its migration`);
    const { chain: held, memory } = prepared;
    prepared = undefined;
    const chain = [...held, last];
    if (memory && info.dataPages) {
      const dataPages = info.dataPages;
      return { snap: snapshotFromChain(chain), memory, apply: (dst) => applyChain(chain, dst, { links: held.length, dataPages }) };
    }
    if (memory) mempool.give(memory);
    return { snap: snapshotFromChain(chain), apply: (dst) => applyChain(chain, dst) };
  }
  if (!m.base) throw new Error(`process ${m.gpid}: a delta snapshot came without its base`);
  const chain = [decodeSnapshot(m.base, pages), ...(m.mids ?? []).map((b) => decodeSnapshot(b, pages)), last];
  return { snap: snapshotFromChain(chain), apply: (dst) => applyChain(chain, dst) };
}

function runProcess(m: Extract<RunnerCommand, { t: 'start' }>, controlWord: Int32Array): void {
  const mod = modules.get(m.hash);
  if (!mod) throw new Error(`module ${m.hash.slice(0, 16)} was not sent to this node`);
  const job: CompiledJob = { hash: m.hash, sourceHash: '', bytes: new Uint8Array(0), module: mod.module, info: mod.info, cached: true };
  const from = sourceOf(m, mod.info);
  const memLimits = mod.info.memory;
  // a fresh start of a reusable module runs in an idle instance of it if there is one (with its memory)
  const reuse = !from && !!memLimits && instances.ready(mod.module);
  const memory = !memLimits || reuse ? undefined : from ? (from.memory ?? mempool.take(from.snap.pages, memLimits)) : mempool.take(memLimits.initial, memLimits, { zeroed: true });
  const gpid = m.gpid;
  const offsets = { 1: from?.snap.stdoutBytes ?? 0, 2: from?.snap.stderrBytes ?? 0 };
  const out = (fd: 1 | 2) => (bytes: Uint8Array) => {
    const at = offsets[fd];
    offsets[fd] += bytes.length;
    addOutput(gpid, fd, at, bytes);
  };
  const mounts: MountSpec[] = m.spec.mounts.map((x) => ({ guest: x.guest, kind: x.kind, ...(x.host ? { host: x.host } : {}), readonly: !!x.readonly }));
  const g = m.spec.grid;
  let machine: Machine | undefined;
  const procInfo = (want: bigint): ProcStatus | undefined =>
    want !== BigInt(gpid) ? undefined : {
      gpid: want, name: m.spec.name, state: 'running', node,
      cpuTimeMs: Math.round(cpuBefore + (machine?.elapsedMs ?? 0)), fuelUsed: machine?.fuelUsed ?? 0,
      memoryPeakBytes: machine?.memoryPeak ?? 0, checkpoints, migrations: m.counters.migrations,
    };
  const proc = new Process(
    {
      args: [m.spec.name, ...m.spec.args], env: m.spec.env, mounts, platform: nodePlatform(), stdout: out(1), stderr: out(2), borrowOutput: true,
      grid: { gpid: BigInt(g.gpid), parent: BigInt(g.parent), rank: g.rank, size: g.size, node }, procInfo,
    },
    from?.snap.kernel,
  );
  const cpuBefore = m.counters.cpuMs;
  let checkpoints = m.counters.checkpoints;
  const { mtbfMs, failureSeen, ...policy } = m.policy ?? { w: 0.5, minMs: 250, maxMs: 5000, initialMs: 1000, exportEvery: 2 };
  const interval = new AdaptiveInterval(policy);
  // failures the grid has seen adapt the interval: shorter at once after a recent loss, and Young's optimum
  // sqrt(2 * checkpoint cost * MTBF) as the target once the cost of a checkpoint is known
  if (failureSeen) interval.next({ failureSeen: true, ...(mtbfMs ? { mtbfMs } : {}) });
  let nextCheckpointAt = interval.current;
  let localSeq = 0;
  const lim = m.spec.limits;
  const usage = (mach: Machine): Usage => ({ fuelUsed: mach.fuelUsed, cpuMs: cpuBefore + mach.elapsedMs, memoryPeakBytes: mach.memoryPeak, checkpoints });
  machine = new Machine(job, proc, {
    pages,
    captureBuffer: (action, bytes) => {
      if (action !== 'suspend') return undefined;
      // the job stops running here: a migration's downtime starts now
      frozenAt = epochNow();
      if (m.raw !== 'memory' || precopyBase || mod.info.dirtyPages) return undefined;
      // a suspension on a thread node is handed over raw: capture straight into the shared buffer that will carry
      // it (the spare, or a new one), and tell the origin, so that a migration's target copies it as it is captured
      const buf = m.spare instanceof SharedArrayBuffer && m.spare.byteLength >= bytes ? m.spare : new SharedArrayBuffer(bytes);
      stream = { buffer: buf, progress: new Int32Array(new SharedArrayBuffer(4)) };
      post({ t: 'streaming', node, gpid, buffer: buf, progress: stream.progress.buffer as SharedArrayBuffer, pages: bytes / PAGE_SIZE });
      return new Uint8Array(buf, 0, bytes);
    },
    captureProgress: (copied) => {
      if (!stream) return;
      Atomics.store(stream.progress, 0, copied / PAGE_SIZE);
      Atomics.notify(stream.progress, 0);
    },
    // between process nodes: the suspension's memory goes straight to its file, no copy (shm-files.ts)
    // (streamed: announced to the origin as the file is claimed, so that a migration's target reads it as it is written)
    captureSink: (action) =>
      action === 'suspend' && m.raw === 'file' && !precopyBase
        ? suspendSink(gpid, (file, bytes) => post({ t: 'streaming', node, gpid, file, pages: bytes / PAGE_SIZE }))
        : undefined,
    ...(memory ? { memory } : {}),
    ...(!from ? { instances } : {}),
    now: () => performance.now(),
    control: controlWord,
    ...(lim.fuel !== undefined ? { fuel: lim.fuel } : {}),
    ...(lim.timeoutMs !== undefined ? { timeoutMs: Math.max(0, lim.timeoutMs - cpuBefore) } : {}),
    ...(lim.maxMemoryBytes !== undefined ? { maxMemoryBytes: lim.maxMemoryBytes } : {}),
    policy: (mach) => {
      lastYieldAt = epochNow();
      // a start or an end waits for the batch up to FLUSH_AT_BEGIN_MS: flushed at once, a run of staged tiny jobs
      // (each yields once as it begins) sent one message per job, and the origin's replies kept the runner's queue
      // of staged starts short (hello.wasm on 2 nodes: ~1.2 messages per job -> ~0.2, and ~1.3x the jobs/s)
      if (pendingOut.length && performance.now() - pendingSince >= (startedQueued ? FLUSH_AT_BEGIN_MS : OUTPUT_FLUSH_MS)) flushOutput();
      return mach.elapsedMs >= nextCheckpointAt ? 'checkpoint' : 'continue';
    },
    onCheckpoint: (s) => {
      const flag = Atomics.exchange(controlWord, 1, 0);
      if (flag === PRECOPY_FLAG || flag === PRECOPY_DELTA_FLAG) {
        // a migration's pre-copy: ship the whole state now, the freeze will ship only what changes until then; a
        // later round ships what changed since the last one (with dirty-page tracking, without reading the rest)
        const c = encodeOut(s, flag === PRECOPY_DELTA_FLAG ? precopyBase : undefined, { toFile: m.raw === 'file', shared: m.raw === 'memory' });
        precopyBase = c.base;
        post({ t: 'precopy', node, gpid, ...c.fields, ...(c.delta ? { delta: true } : {}) }, c.transfer);
        return;
      }
      const t0 = performance.now();
      checkpoints++;
      localSeq++;
      let cost: number;
      if (interval.shouldExport(localSeq)) {
        // (from a process node, written from here into its carrier file, as a pre-copy is)
        const c = encodeOut(s, undefined, { toFile: m.raw === 'file' });
        cost = performance.now() - t0;
        post({ t: 'checkpoint', node, gpid, seq: s.seq, ...c.fields, stdoutBytes: s.stdoutBytes, stderrBytes: s.stderrBytes, usage: usage(machine!) }, c.transfer);
      } else {
        const { bytes } = encode(s);
        cost = performance.now() - t0;
        // kept on this node: if this runner thread dies, the node continues the process from it (the output it
        // covers goes first, so a restart from it never leaves a gap)
        flushOutput();
        parentPort!.postMessage({ t: 'local', gpid, snapshot: bytes } satisfies LocalCheckpointEvent, [bytes.buffer as ArrayBuffer]);
      }
      nextCheckpointAt = machine!.elapsedMs + interval.next({ checkpointMs: cost, ...(mtbfMs ? { mtbfMs } : {}) });
    },
  });
  let lastYieldAt = 0;
  let frozenAt = 0;
  /** the shared buffer a suspension is being captured into, and its progress word (pages) */
  let stream: { buffer: SharedArrayBuffer; progress: Int32Array } | undefined;
  let precopyBase: DeltaBase | undefined;
  if (from) machine.restore(from.snap, from.apply);
  // the raw snapshot's memory has been copied into the job: its buffer becomes a spare for a later suspension
  if (m.snapshot && !(m.snapshot instanceof Uint8Array) && m.snapshot.memory.byteLength) recycle(m.snapshot.memory.buffer);
  if (m.resolve) machine.resolveBlocked({ value: BigInt(m.resolve.value), ...(m.resolve.status !== undefined ? { status: m.resolve.status } : {}) });
  // (the NodeHost cleared the control words when it gave this process to the runner)
  const started: NodeEvent = { t: 'started', node, gpid, at: epochNow() };
  if (from) post(started); // a restore (a migration's target side): report it now
  else {
    // a fresh start is reported with its first batch: at its first safe point, or with its output and exit when
    // it is that short (one message for a tiny job instead of two)
    if (!pendingOut.length) pendingSince = performance.now();
    pendingOut.unshift(started);
    startedQueued = true;
  }
  let outcome: RunOutcome;
  try {
    outcome = machine.run();
  } catch (e) {
    if (stream) Atomics.store(stream.progress, 0, -1);
    post({ t: 'error', node, gpid, message: `${(e as Error).name}: ${(e as Error).message}` });
    return;
  }
  // a capture that did not end in a suspension (the job trapped while unwinding): nobody may wait for its stream
  if (stream && outcome.kind !== 'suspended') {
    Atomics.store(stream.progress, 0, -1);
    Atomics.notify(stream.progress, 0);
  }
  if (outcome.kind !== 'suspended' || m.raw !== 'memory') recycle(m.spare);
  // the job is done with its instance and memory (a snapshot holds a copy): the instance serves the next fresh start
  // of its module if it can (release), else the memory the next start or restore here
  if (!machine.release() && memLimits) mempool.give(machine.memory);
  if (outcome.kind === 'exit') postSoon({ t: 'exit', node, gpid, code: outcome.code, usage: usage(machine) });
  else if (outcome.kind === 'trap') {
    const t = outcome.trap;
    postSoon({ t: 'trap', node, gpid, reason: t.reason, message: t.message, stack: t.guestStack, usage: usage(machine) });
  } else if (outcome.kind === 'blocked') {
    const { bytes } = encode(outcome.snapshot);
    const c = outcome.call;
    const call: GridCallMsg = c.op === 'wait' ? { op: 'wait', gpid: Number(c.gpid) } : c;
    post({ t: 'blocked', node, gpid, snapshot: bytes, call, usage: usage(machine) }, [bytes.buffer as ArrayBuffer]);
  } else {
    checkpoints++;
    const s = outcome.snapshot;
    const ev = { t: 'suspended' as const, node, gpid, usage: usage(machine), frozenAt: frozenAt || lastYieldAt, memoryBytes: s.pages * PAGE_SIZE };
    if (m.raw === 'memory' && !precopyBase) {
      const raw = rawOf(s, stream?.buffer ?? m.spare);
      if (raw.memory.buffer !== m.spare) recycle(m.spare);
      post({ ...ev, snapshot: raw, delta: false }, raw.memory.buffer instanceof ArrayBuffer ? [raw.memory.buffer] : []);
    } else if (m.raw === 'file' && !precopyBase) {
      post({ ...ev, snapshot: rawToFile(s, gpid), delta: false });
    } else {
      if (m.raw === 'memory') recycle(m.spare);
      const { bytes, delta } = encode(s, precopyBase);
      post({ ...ev, snapshot: bytes, delta }, [bytes.buffer as ArrayBuffer]);
    }
  }
}
