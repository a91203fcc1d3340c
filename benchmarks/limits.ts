// "What limits it" notes for targets that a run misses, keyed by the target's description. Written from the
// measurements (this harness, --trace-gc, a breakdown of the start-up path) and the code (vm/machine.ts,
// vm/snapshot.ts, vm/pages.ts, kernel/abi/link.ts); RESULTS.md shows a note only where a target is missed.
export function LIMITS(what: string, _measured: string): string {
  if (what.startsWith('instrumentation overhead')) {
    return 'Not the kernel (original on kernel ≈ node:wasi, ~1.0x), nor the stack capture on a call that does not ' +
      'unwind (vm/unwind.ts: an exception carries the unwind). Small do-while loops are unrolled by two, tiny ones by ' +
      'four; ticking checks call in place; small self-recursive functions are unrolled by one level (recursion ' +
      '1.35x -> 0.55x: faster than its original, so the target also asks the other jobs\' geomean to be <= 1.08x); ' +
      'a warm module makes no tier-up re-entries (a re-entered job runs on in its resume versions\' clean loop ' +
      'copies, 6-7% slower). What remains is the per-iteration check of loops that are not unrolled: nested loops ' +
      'and bodies over 120 expressions (nbody\'s pair loops: ~20 checks per step of ~50 ns), and malloc\'s bin ' +
      'scans. The four other jobs\' geomean moves by a few percent from run to run (1.06x-1.09x in this session\'s ' +
      'runs: nbody 1.04x-1.12x, as_gc 1.03x-1.12x): this machine changes speed for tens of seconds at a time (the ' +
      'same original module: ~860 or ~1250 ms for malloc_churn), which is why the ratio is the median of ' +
      'back-to-back pairs.';
  }
  if (what.startsWith('restore at')) {
    return 'Page faults: a fresh instance gets a fresh Wasm memory, so Machine.restore\'s grow + copy spends most of ' +
      'its time in the OS zero-filling pages on first touch (compare the warm-instance column: the same copy into an ' +
      'already faulted-in memory); and the new memory\'s external-memory pressure makes V8 schedule a GC that lands ' +
      'in the rewind (--trace-gc: "external memory pressure", "finalize incremental marking via stack guard"). ' +
      'The warm-instance restore is bound by the copy itself (copying into a Wasm memory ran slower than the ' +
      'ArrayBuffer memcpy here). Needs a vm change to reach it on a fresh instance: vm/instrument.ts turns the job\'s ' +
      'own memory into an import (still exported) and Machine accepts a pooled, pre-grown, faulted-in ' +
      'WebAssembly.Memory in MachineOptions, which a warm worker keeps between jobs.';
  }
  if (what.startsWith('encodeSnapshot delta')) {
    return 'encodeSnapshot hashes every page of memory to find the changed ones (vm/pages.ts hashPages, ~6-7 GB/s: ' +
      '~40 ms for 256 MiB) before it can list the ~1% that changed: the cost scales with memory size, not with ' +
      'the dirty pages. Diffing against the previous copy instead (diffPages) measured no faster here (~9 GB/s, see ' +
      'the page engine table) and needs that copy kept. Getting to 5 ms needs dirty-page tracking, which Wasm does ' +
      'not give (no write protection, no copy-on-write): only store instrumentation (a per-page dirty bitmap, paid ' +
      'on every store) could.';
  }
  if (what.startsWith('delta checkpoint')) {
    return 'Two whole-memory passes: the checkpoint copies all of memory before unwinding (Machine.beginUnwind, ' +
      '~memcpy of 256 MiB), then encodeSnapshot hashes all of it (see the encodeSnapshot row). With 1% dirty, <= 5 ms ' +
      'needs copying and hashing only dirty pages (dirty tracking); without it, moving the encode off the ' +
      'job\'s critical path (encode the pooled copy in another thread while the job runs) brings the pause down to ' +
      'the plain checkpoint (~memcpy), not to 5 ms.';
  }
  if (what.startsWith('tiny job') && what.includes('Machine')) {
    return 'Per job, with the instance reused (InstancePool): the Process and its WASI closures (~5 µs), binding them ' +
      'to the instance\'s imports, resetting its memory (the initial pages: data-segment pages copied, the rest ' +
      'zero-filled) and globals, the job itself (hello: wasi-libc start-up and printf -> fd_write) and its one write(2) ' +
      'to /dev/null (~4 µs; the Machine gathers its ten lines: they were ten writes, ~38 of ~53 µs). ' +
      'Instantiating instead costs ~8-10 µs more at steady state (the fresh-instance column), and garbage.';
  }
  if (what.startsWith('tiny job')) {
    return 'Everything the Machine row pays, plus run()\'s own path per call: a stat of the file (the prepared job is ' +
      'memoised by path + size + mtime and by bytes object), a host platform, option handling and the output buffers.';
  }
  return 'see the section below';
}
