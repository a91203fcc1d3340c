import { readFileSync } from 'node:fs';

/**
 * A file's bytes as a Uint8Array, without copying them when the Buffer read owns its whole ArrayBuffer (any file
 * above Node's small-buffer pool): `new Uint8Array(readFileSync(f))` copied a large module into fresh memory, whose
 * first touch is slow here (~0.7 s for yosys' 124 MB cached module, on top of the read).
 */
export function readBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? new Uint8Array(b.buffer, 0, b.byteLength) : new Uint8Array(b);
}
