// The IPC carrier of process nodes (runtime-node/grid/ipc-carrier.ts): big byte fields travel through files in the
// migration directory and come back byte for byte; small messages stay plain bytes; a peer cannot make the
// receiver read or remove any other file; files a dead reader left are swept.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { carrierFileName, carry, FILE_CARRIER_BYTES, sweepCarrierFiles, uncarry } from '../../runtime-node/grid/ipc-carrier.js';
import { MIGRATION_DIR } from '../../runtime-node/grid/runner-types.js';
import type { Message } from '../../kernel/index.js';

const mine = () => readdirSync(MIGRATION_DIR).filter((n) => n.startsWith(`gridvm-msg-${process.pid}-`));

describe('IPC carrier', () => {
  it('moves a big snapshot field through a file, byte for byte, and removes the file', () => {
    const snapshot = new Uint8Array(FILE_CARRIER_BYTES * 3 + 5);
    for (let i = 0; i < snapshot.length; i++) snapshot[i] = (i * 2654435761) >>> 24;
    const m = { t: 'precopy', node: 'n1', gpid: 7, snapshot } as Message;
    const c = carry(m, 'n1');
    expect(c).not.toBeInstanceOf(Uint8Array);
    const files = (c as { files: Record<string, { file: string }> }).files;
    expect(Object.keys(files)).toEqual(['snapshot']);
    expect(existsSync(files.snapshot!.file)).toBe(true);
    // the bytes are not in the IPC part
    expect((c as { msg: Uint8Array }).msg.length).toBeLessThan(256);
    const back = uncarry(c) as Extract<Message, { t: 'precopy' }>;
    expect(back.t).toBe('precopy');
    expect(back.gpid).toBe(7);
    expect(Buffer.from(back.snapshot).equals(Buffer.from(snapshot))).toBe(true);
    expect(existsSync(files.snapshot!.file)).toBe(false);
  });

  it('sends a field its sender already wrote to a carrier file as it is, without writing it again', () => {
    const snapshot = new Uint8Array(FILE_CARRIER_BYTES + 9);
    for (let i = 0; i < snapshot.length; i++) snapshot[i] = (i * 40503) >>> 8;
    const file = carrierFileName('origin');
    writeFileSync(file, snapshot);
    const m = { t: 'precopy', node: 'n1', gpid: 9, snapshot: new Uint8Array(0), delta: true, carried: { snapshot: { file, bytes: snapshot.length } } } as Message;
    const before = mine().length;
    const c = carry(m, 'origin') as { msg: Uint8Array; files: Record<string, { file: string; bytes: number }> };
    expect(c.files).toEqual({ snapshot: { file, bytes: snapshot.length } });
    expect(mine().length, 'no second file').toBe(before);
    const back = uncarry(c) as Extract<Message, { t: 'precopy' }>;
    expect(back).toMatchObject({ t: 'precopy', gpid: 9, delta: true });
    expect('carried' in back, 'the in-process field does not travel').toBe(false);
    expect(Buffer.from(back.snapshot).equals(Buffer.from(snapshot))).toBe(true);
    expect(existsSync(file)).toBe(false);
    // only its own carrier files go that way
    expect(() => carry({ ...m, carried: { snapshot: { file: '/etc/passwd', bytes: 4 } } } as Message, 'origin')).toThrow(/not a gridvm message file/);
  });

  it('sends small messages as plain bytes', () => {
    const c = carry({ t: 'precopy', node: 'n1', gpid: 1, snapshot: new Uint8Array(100) } as Message, 'n1');
    expect(c).toBeInstanceOf(Uint8Array);
    expect((uncarry(c) as Extract<Message, { t: 'precopy' }>).snapshot.length).toBe(100);
  });

  it('refuses carrier files that are not its own, and leaves them alone', () => {
    const victim = join(MIGRATION_DIR, `not-gridvm-${process.pid}`);
    writeFileSync(victim, 'keep me');
    try {
      const msg = carry({ t: 'precopy', node: 'n1', gpid: 1, snapshot: new Uint8Array(0) } as Message, 'n1') as Uint8Array;
      for (const file of [victim, '/etc/passwd', join(MIGRATION_DIR, '..', 'gridvm-msg-1-n1-1-00000000')]) {
        expect(() => uncarry({ msg, files: { snapshot: { file, bytes: 7 } } })).toThrow(/not a gridvm message file/);
      }
      expect(existsSync(victim)).toBe(true);
      expect(() => uncarry({ files: {} })).toThrow(/neither bytes nor a carried message/);
      expect(() => uncarry('garbage')).toThrow();
    } finally {
      sweepCarrierFiles(process.pid);
      rmSync(victim, { force: true });
    }
  });

  it('refuses a file whose size is not the one announced, and sweeps files nobody read', () => {
    const big = carry({ t: 'precopy', node: 'n1', gpid: 1, snapshot: new Uint8Array(FILE_CARRIER_BYTES) } as Message, 'n9') as { msg: Uint8Array; files: Record<string, { file: string; bytes: number }> };
    const forged = { msg: big.msg, files: { snapshot: { ...big.files.snapshot!, bytes: 3 } } };
    expect(() => uncarry(forged)).toThrow(/announced/);
    carry({ t: 'precopy', node: 'n1', gpid: 2, snapshot: new Uint8Array(FILE_CARRIER_BYTES) } as Message, 'n9');
    expect(mine().length).toBe(1);
    sweepCarrierFiles(process.pid, 'n9');
    expect(mine().length).toBe(0);
  });
});
