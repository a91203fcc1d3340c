import { Errno, KernelError, Trap } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Bounds-checked access to a guest's linear memory. Views are re-created when memory.buffer changes (after
 * memory.grow); a pointer outside memory throws KernelError(FAULT), which the ABI returns as the errno.
 */
export class GuestMemory {
  private buf: ArrayBuffer | null = null;
  private dv!: DataView;
  private u8!: Uint8Array;
  /**
   * Called with every range the kernel writes into guest memory (set*, write, out, iovecsOut): a VM with dirty-page
   * tracking marks those pages. Reads (bytes, iovecs) are not reported.
   */
  onWrite: ((ptr: number, len: number) => void) | undefined = undefined;

  constructor(private memory: WebAssembly.Memory | null = null) {}

  set(memory: WebAssembly.Memory): void {
    this.memory = memory;
    this.buf = null;
  }

  private refresh(): void {
    if (!this.memory) throw new Trap('trap', 'the kernel was called before the VM set the guest memory (Process.setMemory)');
    const b = this.memory.buffer;
    if (b !== this.buf) {
      this.buf = b;
      this.dv = new DataView(b);
      this.u8 = new Uint8Array(b);
    }
  }

  /** Throws FAULT unless [ptr, ptr+len) is inside memory. ptr and len are u32 (negative i32 means >= 2 GiB). */
  check(ptr: number, len: number): void {
    this.refresh();
    if ((ptr >>> 0) + (len >>> 0) > this.u8.length) {
      throw new KernelError(Errno.FAULT, `pointer 0x${(ptr >>> 0).toString(16)}+${len >>> 0} is outside memory (${this.u8.length} bytes)`);
    }
  }

  /** A view (no copy) of guest bytes. */
  bytes(ptr: number, len: number): Uint8Array {
    this.check(ptr, len);
    return this.u8.subarray(ptr >>> 0, (ptr >>> 0) + (len >>> 0));
  }

  u8At(ptr: number): number {
    this.check(ptr, 1);
    return this.u8[ptr >>> 0]!;
  }
  u16(ptr: number): number {
    this.check(ptr, 2);
    return this.dv.getUint16(ptr >>> 0, true);
  }
  u32(ptr: number): number {
    this.check(ptr, 4);
    return this.dv.getUint32(ptr >>> 0, true);
  }
  u64(ptr: number): bigint {
    this.check(ptr, 8);
    return this.dv.getBigUint64(ptr >>> 0, true);
  }
  setU8(ptr: number, v: number): void {
    this.check(ptr, 1);
    this.onWrite?.(ptr, 1);
    this.u8[ptr >>> 0] = v;
  }
  setU16(ptr: number, v: number): void {
    this.check(ptr, 2);
    this.onWrite?.(ptr, 2);
    this.dv.setUint16(ptr >>> 0, v, true);
  }
  setU32(ptr: number, v: number): void {
    this.check(ptr, 4);
    this.onWrite?.(ptr, 4);
    this.dv.setUint32(ptr >>> 0, v >>> 0, true);
  }
  setU64(ptr: number, v: bigint | number): void {
    this.check(ptr, 8);
    this.onWrite?.(ptr, 8);
    this.dv.setBigUint64(ptr >>> 0, BigInt.asUintN(64, BigInt(v)), true);
  }

  /** UTF-8 string at [ptr, ptr+len); invalid UTF-8 is ILSEQ. */
  string(ptr: number, len: number): string {
    const b = this.bytes(ptr, len);
    try {
      return decoder.decode(b);
    } catch (e) {
      throw new KernelError(Errno.ILSEQ, 'path is not valid UTF-8', { cause: e });
    }
  }

  /** Views of each iovec (ciovec) in an array of `count` {ptr u32, len u32}. */
  iovecs(iovs: number, count: number): Uint8Array[] {
    count >>>= 0;
    this.check(iovs, count * 8);
    const out: Uint8Array[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const p = this.dv.getUint32((iovs >>> 0) + i * 8, true);
      const l = this.dv.getUint32((iovs >>> 0) + i * 8 + 4, true);
      out[i] = this.bytes(p, l);
    }
    return out;
  }

  /** A view (no copy) of guest bytes the kernel is about to write. */
  out(ptr: number, len: number): Uint8Array {
    const v = this.bytes(ptr, len);
    this.onWrite?.(ptr, len >>> 0);
    return v;
  }

  /** Views of each iovec of an array the kernel writes into (fd_read, fd_pread). */
  iovecsOut(iovs: number, count: number): Uint8Array[] {
    const out = this.iovecs(iovs, count);
    if (this.onWrite) for (const v of out) this.onWrite(v.byteOffset, v.length);
    return out;
  }

  /** Write bytes at ptr (bounds-checked). */
  write(ptr: number, data: Uint8Array): void {
    this.check(ptr, data.length);
    this.onWrite?.(ptr, data.length);
    this.u8.set(data, ptr >>> 0);
  }
}

export function encodeUtf8(s: string): Uint8Array {
  return encoder.encode(s);
}
