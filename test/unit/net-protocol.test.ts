// The wire protocol (kernel/net/protocol.ts) and the in-process Bus (kernel/net/bus.ts).
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, LocalBus, PROTOCOL_VERSION, ProtocolError, validateMessage, type Message } from '../../kernel/net/index.js';

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

describe('wire protocol', () => {
  it('round-trips every kind of field: numbers, strings, bytes, nested objects, bigints', () => {
    const m: Message = {
      t: 'output', node: 'n1', gpid: 7, fd: 2, offset: 123456789, bytes: new Uint8Array([0, 1, 2, 255]),
    };
    const back = decodeMessage(encodeMessage(m));
    expect(back).toEqual(m);
    const c: Message = { t: 'blocked', node: 'n2', gpid: 3, snapshot: new Uint8Array(70_000).fill(9), call: { op: 'wait', gpid: -1 }, usage: { fuelUsed: 1, cpuMs: 2, memoryPeakBytes: 3, checkpoints: 4 } };
    expect(decodeMessage(encodeMessage(c))).toEqual(c);
  });

  it('refuses another protocol version, garbage, truncation and unknown types with a ProtocolError saying what', () => {
    const good = encodeMessage({ t: 'shutdown' });
    const other = good.slice();
    other[0] = PROTOCOL_VERSION + 1;
    expect(() => decodeMessage(other)).toThrow(/protocol version 2 is not supported/);
    expect(() => decodeMessage(new Uint8Array([PROTOCOL_VERSION]))).toThrow(ProtocolError);
    expect(() => decodeMessage(new Uint8Array([PROTOCOL_VERSION, 0xc1, 0xc1, 0xc1]))).toThrow(/does not decode|not an object/);
    const out = encodeMessage({ t: 'output', node: 'n', gpid: 1, fd: 1, offset: 0, bytes: new Uint8Array(10) });
    expect(() => decodeMessage(out.subarray(0, out.length - 4))).toThrow(ProtocolError);
    expect(() => validateMessage({ t: 'format-disk' })).toThrow(/unknown message type "format-disk"/);
    expect(() => validateMessage([1, 2])).toThrow(/not an object/);
  });

  it('checks the fields handlers rely on', () => {
    expect(() => validateMessage({ t: 'output', node: 'n', gpid: 1, fd: 3, offset: 0, bytes: new Uint8Array(1) })).toThrow(/fd must be 1 or 2/);
    expect(() => validateMessage({ t: 'output', node: 'n', gpid: 'one', fd: 1, offset: 0, bytes: new Uint8Array(1) })).toThrow(/gpid must be a number/);
    expect(() => validateMessage({ t: 'checkpoint', node: 'n', gpid: 1, seq: 1, snapshot: 'not bytes' })).toThrow(/snapshot must be bytes/);
    expect(() => validateMessage({ t: 'exit', node: 'n', gpid: 1 })).toThrow(/code must be a number/);
    // a raw snapshot may cross a process only with its memory in a named file
    expect(() => validateMessage({ t: 'suspended', node: 'n', gpid: 1, snapshot: { raw: true, memory: new Uint8Array(4) } })).toThrow(/must name its memory file/);
    expect(() => validateMessage({ t: 'suspended', node: 'n', gpid: 1, snapshot: { raw: true, memory: new Uint8Array(0), file: '/dev/shm/x', memoryBytes: 65536 } })).not.toThrow();
    // a streamed capture: shared memory between threads, a memory file between processes, nothing else
    expect(() => validateMessage({ t: 'stream', gpid: 1, hash: 'h', pages: 2 })).toThrow(/stream: needs shared memory \(buffer and progress, between threads\) or a memory file name/);
    expect(() => validateMessage({ t: 'streaming', node: 'n', gpid: 1, pages: 2, buffer: new Uint8Array(4) })).toThrow(/streaming: needs shared memory/);
    expect(() => validateMessage({ t: 'stream', gpid: 1, hash: 'h', file: '/dev/shm/x' })).toThrow(/stream: pages must be an integer >= 1/);
    expect(() => validateMessage({ t: 'streaming', node: 'n', gpid: 1, pages: 1.5, file: '/dev/shm/x' })).toThrow(/pages must be an integer >= 1/);
    // the in-process carried field (a runner's carrier file) never comes from the wire
    expect(() => validateMessage({ t: 'precopy', node: 'n', gpid: 1, snapshot: new Uint8Array(0), carried: { snapshot: { file: '/etc/passwd', bytes: 4 } } })).toThrow(/carried is in-process only/);
    expect(decodeMessage(encodeMessage({ t: 'streaming', node: 'n', gpid: 1, pages: 2, file: '/dev/shm/x' }))).toEqual({ t: 'streaming', node: 'n', gpid: 1, pages: 2, file: '/dev/shm/x' });
    // a node's new slot count (no gpid)
    expect(decodeMessage(encodeMessage({ t: 'slots', slots: 0 }))).toEqual({ t: 'slots', slots: 0 });
    expect(() => validateMessage({ t: 'slots', slots: -1 })).toThrow(/slots must be an integer >= 0/);
    expect(() => validateMessage({ t: 'slots', slots: 1.5 })).toThrow(/slots must be an integer >= 0/);
    expect(() => validateMessage({ t: 'slots' })).toThrow(/slots must be an integer >= 0/);
  });
});

describe('LocalBus', () => {
  it('delivers asynchronously, in publish order, to exact and wildcard subscribers', async () => {
    const bus = new LocalBus();
    const seen: string[] = [];
    bus.subscribe('node.n1', (m, s) => seen.push(`exact ${s} ${m.t}`));
    bus.subscribe('node.*', (m, s) => seen.push(`star ${s} ${m.t}`));
    bus.subscribe('node.>', (m, s) => seen.push(`tail ${s} ${m.t}`));
    bus.subscribe('coord', (m) => seen.push(`coord ${m.t}`));
    bus.publish('node.n1', { t: 'shutdown' });
    bus.publish('node.n2', { t: 'drop', gpid: 1 });
    expect(seen).toEqual([]); // never inside the publisher's call
    await tick();
    expect(seen).toEqual(['exact node.n1 shutdown', 'star node.n1 shutdown', 'tail node.n1 shutdown', 'star node.n2 drop', 'tail node.n2 drop']);
  });

  it('a failing handler does not stop delivery to the others; unsubscribe and close stop delivery', async () => {
    const bus = new LocalBus();
    const got: number[] = [];
    const errors: unknown[] = [];
    const onUnhandled = (e: unknown) => errors.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      bus.subscribe('coord', () => {
        throw new Error('handler bug');
      });
      const off = bus.subscribe('coord', (m) => got.push((m as { gpid: number }).gpid));
      bus.publish('coord', { t: 'drop', gpid: 1 });
      await tick();
      off();
      bus.publish('coord', { t: 'drop', gpid: 2 });
      await tick();
      expect(got).toEqual([1]);
      expect(errors.map((e) => (e as Error).message)).toContain('handler bug');
      bus.close();
      bus.publish('coord', { t: 'drop', gpid: 3 });
      await tick();
      expect(got).toEqual([1]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
