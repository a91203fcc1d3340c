// The disk cache of instrumented modules keys entries by the instrumenter's own code too: an entry written by other
// instrumentation code under the same version (a development build, an edit without a version bump) is not served.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DiskModuleCache } from '../../runtime-node/cache.js';
import { instrumenterCodeId } from '../../runtime-node/cache.js';
import type { InstrumentInfo } from '../../vm/index.js';

const dir = mkdtempSync(join(tmpdir(), 'gridvm-modcache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const info = { version: 1, globals: [], memoryExport: 'memory', entry: '_start' } as unknown as InstrumentInfo;

describe('DiskModuleCache', () => {
  it('serves what this instrumenter stored, and not an entry left under the same key by other instrumenter code', async () => {
    const id = instrumenterCodeId();
    expect(id).toMatch(/^[0-9a-f]{12}$/); // the vm files are next to runtime-node/ in this build
    const cache = new DiskModuleCache(dir);
    // what an older instrumenter left: the bare key
    writeFileSync(join(dir, 'k1.wasm'), new Uint8Array([1, 2, 3]));
    writeFileSync(join(dir, 'k1.json'), JSON.stringify(info));
    expect(await cache.get('k1')).toBeUndefined();
    await cache.put('k1', { bytes: new Uint8Array([9, 9]), info });
    const got = await cache.get('k1');
    expect([...got!.bytes]).toEqual([9, 9]);
    expect(got!.info.entry).toBe('_start');
    expect(readdirSync(dir).sort()).toEqual(['k1.json', 'k1.wasm', `k1-i${id}.json`, `k1-i${id}.wasm`].sort());
    expect(await cache.get('k2')).toBeUndefined();
  });
});
