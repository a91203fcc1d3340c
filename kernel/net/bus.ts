/**
 * The Bus: subjects with publish/subscribe and request/reply. Two implementations are planned (DESIGN.md,
 * "Transport and storage"): in-process (this file, the embedded default) and NATS. Subjects are dot-separated
 * tokens; a subscription may end in `>` (matches one or more further tokens) or use `*` for exactly one token,
 * as in NATS.
 */
import type { Message } from './protocol.js';

export type Handler = (msg: Message, subject: string) => void;

export interface Bus {
  publish(subject: string, msg: Message): void;
  /** Returns a function that ends the subscription. */
  subscribe(subject: string, handler: Handler): () => void;
  close(): void;
}

function matches(pattern: string[], subject: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

/**
 * The in-process Bus: delivery is asynchronous (a microtask later, in publish order per subscriber), like a
 * network carrier, so a handler never runs inside its publisher's call. Messages are passed by reference.
 */
export class LocalBus implements Bus {
  private subs: Array<{ pattern: string[]; handler: Handler }> = [];
  private closed = false;
  private queue: Array<() => void> = [];
  private draining = false;

  publish(subject: string, msg: Message): void {
    if (this.closed) return;
    const tokens = subject.split('.');
    for (const s of this.subs) {
      if (matches(s.pattern, tokens)) {
        const h = s.handler;
        this.queue.push(() => {
          if (this.subs.some((x) => x.handler === h)) h(msg, subject);
        });
      }
    }
    this.drain();
  }

  subscribe(subject: string, handler: Handler): () => void {
    const entry = { pattern: subject.split('.'), handler };
    this.subs.push(entry);
    return () => {
      this.subs = this.subs.filter((s) => s !== entry);
    };
  }

  close(): void {
    this.closed = true;
    this.subs = [];
    this.queue = [];
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    void Promise.resolve().then(() => {
      try {
        while (this.queue.length) {
          const f = this.queue.shift()!;
          try {
            f();
          } catch (e) {
            // a failing handler must not stop delivery to others; report it asynchronously
            void Promise.reject(e);
          }
        }
      } finally {
        this.draining = false;
      }
    });
  }
}
