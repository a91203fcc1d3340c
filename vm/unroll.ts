import type { InstrumentOptions } from './instrument.js';
/** How loops are unrolled: `unrollLoops` when given, else all small loops, or only tiny ones with the native tool. */
export function unrollLoopsOf(opts: Pick<InstrumentOptions, 'unrollLoops' | 'asyncify'> | undefined): boolean | 'tiny' {
  return opts?.unrollLoops ?? (opts?.asyncify ? 'tiny' : true);
}
