/**
 * The guest's function names from a V8 error stack (names come from the module's name section):
 *   "    at level_three (wasm://wasm/7a3f…:wasm-function[5]:0x2a1)"  ->  "level_three"
 *   "    at wasm://wasm/7a3f…:wasm-function[5]:0x2a1"                  ->  "wasm-function[5]"
 * Instrumentation helpers (__gridvm_*) are left out.
 */
export function guestStackFromError(e: unknown): string[] {
  const stack = (e as { stack?: string })?.stack;
  if (typeof stack !== 'string') return [];
  const out: string[] = [];
  for (const line of stack.split('\n')) {
    if (!line.includes('wasm-function[')) continue;
    const named = /^\s*at (.+?) \(wasm:\/\/.*wasm-function\[(\d+)\]/.exec(line);
    const name = named ? named[1]! : `wasm-function[${/wasm-function\[(\d+)\]/.exec(line)?.[1]}]`;
    if (name.startsWith('__gridvm_')) continue;
    out.push(name.replace(/^\$/, ''));
  }
  return out;
}
