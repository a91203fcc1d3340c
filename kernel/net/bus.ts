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
 * network carrier, so a handler never runs inside its publisher's call. Messages are passed by reference. A
 * message published before a subscription ends but delivered after it is dropped for that subscription.
 */
export class LocalBus implements Bus {
  private subs: Sub[] = [];
  /** the subscriptions each subject reaches (a grid publishes on a handful of subjects, thousands of times) */
  private routes = new Map<string, Sub[]>();
  private closed = false;
  private queue: Delivery[] = [];
  private head = 0;
  private draining = false;

  publish(subject: string, msg: Message): void {
    if (this.closed) return;
    let route = this.routes.get(subject);
    if (!route) {
      const tokens = subject.split('.');
      route = this.subs.filter((s) => matches(s.pattern, tokens));
      this.routes.set(subject, route);
    }
    for (let i = 0; i < route.length; i++) this.queue.push({ sub: route[i]!, msg, subject });
    if (route.length) this.drain();
  }

  subscribe(subject: string, handler: Handler): () => void {
    const entry: Sub = { pattern: subject.split('.'), handler, active: true };
    this.subs.push(entry);
    this.routes.clear();
    return () => {
      entry.active = false;
      this.subs = this.subs.filter((s) => s !== entry);
      this.routes.clear();
    };
  }

  close(): void {
    this.closed = true;
    for (const s of this.subs) s.active = false;
    this.subs = [];
    this.routes.clear();
    this.queue = [];
    this.head = 0;
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    void Promise.resolve().then(() => {
      try {
        while (this.head < this.queue.length) {
          const d = this.queue[this.head++]!;
          if (!d.sub.active) continue;
          try {
            d.sub.handler(d.msg, d.subject);
          } catch (e) {
            // a failing handler must not stop delivery to others; report it asynchronously
            void Promise.reject(e);
          }
        }
      } finally {
        this.queue = [];
        this.head = 0;
        this.draining = false;
      }
    });
  }
}

interface Sub {
  pattern: string[];
  handler: Handler;
  active: boolean;
}

interface Delivery {
  sub: Sub;
  msg: Message;
  subject: string;
}
