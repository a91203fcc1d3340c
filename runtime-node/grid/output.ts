// Output integration at the origin: every process's stdout/stderr arrive as chunks tagged with their byte offset
// in that process's stream. Chunks already emitted (a process replayed from an older checkpoint after a node was
// lost) are dropped, so nothing is emitted twice. The streams of one job are then integrated in GPID order — ranks
// in rank order, a parent before the children it spawned: the first unfinished process streams live, later ones
// are held until every earlier one has finished.

export type Sink = (bytes: Uint8Array) => void;

export interface StreamState {
  /** bytes of stdout / stderr emitted so far, per fd */
  emitted: { 1: number; 2: number };
  held: Array<{ fd: 1 | 2; bytes: Uint8Array }>;
  finished: boolean;
}

export class OutputIntegrator {
  private readonly order: number[] = [];
  private readonly streams = new Map<number, StreamState>();
  private fg = 0;
  /** offsets that ran ahead of what was emitted (a lost chunk): must never happen; counted for tests */
  gaps = 0;

  constructor(private readonly sinks: { 1: Sink; 2: Sink }) {}

  add(gpid: number): void {
    if (this.streams.has(gpid)) return;
    this.order.push(gpid);
    this.streams.set(gpid, { emitted: { 1: 0, 2: 0 }, held: [], finished: false });
  }

  emitted(gpid: number): { 1: number; 2: number } {
    return this.streams.get(gpid)?.emitted ?? { 1: 0, 2: 0 };
  }

  /** A chunk of `gpid`'s stream `fd` starting at byte `offset`. */
  deliver(gpid: number, fd: 1 | 2, offset: number, bytes: Uint8Array): void {
    const s = this.streams.get(gpid);
    if (!s) return;
    const have = s.emitted[fd];
    if (offset > have) this.gaps++;
    const skip = have - offset;
    if (skip >= bytes.length) return;
    const fresh = skip > 0 ? bytes.subarray(skip) : bytes;
    s.emitted[fd] += fresh.length;
    if (this.order[this.fg] === gpid) this.sinks[fd](fresh);
    else s.held.push({ fd, bytes: fresh.slice() });
  }

  finish(gpid: number): void {
    const s = this.streams.get(gpid);
    if (!s || s.finished) return;
    s.finished = true;
    this.advance();
  }

  private advance(): void {
    while (this.fg < this.order.length && this.streams.get(this.order[this.fg]!)!.finished) {
      this.fg++;
      const next = this.order[this.fg];
      if (next === undefined) return;
      const s = this.streams.get(next)!;
      for (const c of s.held) this.sinks[c.fd](c.bytes);
      s.held = [];
    }
  }
}
