// run() memoises the job it prepared for a path (checked by a stat at every call) and for a bytes object: a module
// file changed on disk must never run stale, even when its size stays the same, the write lands in the same
// timestamp tick, or the copy keeps the old mtime (cp -p, rsync -t, tar).
import { mkdtempSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import binaryen from 'binaryen';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../runtime-node/run.js';

/** A module that exits with `code` (< 64: the same size for every code) */
function exitWith(code: number): Uint8Array {
  const m = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start") (call $exit (i32.const ${code}))))`);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'gridvm-run-memo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('run() memoised jobs', () => {
  it('a module rewritten in place between two runs (same size, same moment) runs the new bytes', async () => {
    const f = join(dir, 'inplace.wasm');
    expect(exitWith(3).length).toBe(exitWith(4).length);
    for (let i = 0; i < 4; i++) {
      const code = 3 + (i % 2);
      writeFileSync(f, exitWith(code));
      expect((await run(f, { cache: false })).exitCode).toBe(code);
      expect((await run(f, { cache: false })).exitCode).toBe(code);
    }
  });

  it('a module replaced by a rename runs the new bytes', async () => {
    const f = join(dir, 'renamed.wasm');
    writeFileSync(f, exitWith(5));
    expect((await run(f, { cache: false })).exitCode).toBe(5);
    writeFileSync(`${f}.tmp`, exitWith(6));
    renameSync(`${f}.tmp`, f);
    expect((await run(f, { cache: false })).exitCode).toBe(6);
  });

  it('an old file is memoised; a same-size copy over it that keeps its mtime still runs the new bytes', async () => {
    const f = join(dir, 'old.wasm');
    writeFileSync(f, exitWith(7));
    const old = Math.floor(Date.now() / 1000) - 60; // whole seconds: utimes sets them exactly
    utimesSync(f, old, old);
    // files whose timestamps are this recent are not memoised (a write in the same tick could not be seen)
    await new Promise((r) => setTimeout(r, 3200));
    const first = await run(f, { cache: false });
    expect(first.exitCode).toBe(7);
    const again = await run(f, { cache: false });
    expect(again.exitCode).toBe(7);
    expect(again.instrumentCached).toBe(true);
    const before = statSync(f);
    writeFileSync(f, exitWith(8));
    utimesSync(f, old, old);
    expect(statSync(f).mtimeMs).toBe(before.mtimeMs);
    expect(statSync(f).size).toBe(before.size);
    expect((await run(f, { cache: false })).exitCode).toBe(8);
  }, 20_000);

  it('runs from bytes and from a path give the same output, repeatedly', async () => {
    const bytes = exitWith(9);
    for (let i = 0; i < 3; i++) {
      const r = await run(bytes, { cache: false, stdout: 'buffer' });
      expect(r.exitCode).toBe(9);
      expect(r.stdout).toBeInstanceOf(Uint8Array);
      expect(r.stdout.length).toBe(0);
    }
  });
});
