import { Errno, KernelError } from '../errors.js';

/**
 * Small-integer handles for a process's resources (fds today; pipes and mailboxes later). A new handle is the lowest
 * free number, like POSIX; the table refuses to grow past `capacity` (MFILE). `owner` records who holds a handle.
 */
export class ResourceTable<T> {
  private slots: Array<T | undefined> = [];
  private owners: number[] = [];
  /** free handles below slots.length, kept sorted ascending */
  private free: number[] = [];
  private count = 0;

  constructor(readonly capacity = 1024) {}

  get size(): number {
    return this.count;
  }

  /** Insert at the lowest free handle. */
  insert(value: T, owner = 0): number {
    if (this.count >= this.capacity) throw new KernelError(Errno.MFILE, `too many open handles (limit ${this.capacity})`);
    const h = this.free.length > 0 ? this.free.shift()! : this.slots.length;
    this.put(h, value, owner);
    return h;
  }

  /** Insert at a chosen handle (restore, renumber); replaces what was there. */
  insertAt(handle: number, value: T, owner = 0): void {
    if (!Number.isInteger(handle) || handle < 0) throw new KernelError(Errno.BADF);
    if (this.slots[handle] === undefined && this.count >= this.capacity) throw new KernelError(Errno.MFILE);
    if (handle >= this.slots.length) {
      for (let i = this.slots.length; i < handle; i++) this.free.push(i);
      this.slots.length = handle + 1;
      this.owners.length = handle + 1;
    } else if (this.slots[handle] === undefined) {
      this.free.splice(this.free.indexOf(handle), 1);
    }
    this.put(handle, value, owner);
  }

  private put(h: number, value: T, owner: number): void {
    if (this.slots[h] === undefined) this.count++;
    this.slots[h] = value;
    this.owners[h] = owner;
  }

  get(handle: number): T | undefined {
    return this.slots[handle];
  }

  /** The value at `handle`, or KernelError(BADF). */
  require(handle: number): T {
    const v = this.slots[handle];
    if (v === undefined) throw new KernelError(Errno.BADF, `bad file descriptor ${handle}`);
    return v;
  }

  owner(handle: number): number | undefined {
    return this.slots[handle] === undefined ? undefined : this.owners[handle];
  }

  remove(handle: number): T {
    const v = this.require(handle);
    this.slots[handle] = undefined;
    this.count--;
    if (handle === this.slots.length - 1) {
      // trim the tail so free stays small
      let n = handle;
      while (n > 0 && this.slots[n - 1] === undefined) n--;
      this.slots.length = n;
      this.owners.length = n;
      this.free = this.free.filter((f) => f < n);
    } else {
      let lo = 0;
      let hi = this.free.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.free[mid]! < handle) lo = mid + 1;
        else hi = mid;
      }
      this.free.splice(lo, 0, handle);
    }
    return v;
  }

  /** [handle, value] pairs in handle order. */
  entries(): Array<[number, T]> {
    const out: Array<[number, T]> = [];
    this.slots.forEach((v, i) => {
      if (v !== undefined) out.push([i, v]);
    });
    return out;
  }
}
