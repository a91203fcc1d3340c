/** Names that instrumentation adds to a job and the VM relies on (kept free of Binaryen so browsers skip it). */
export const BUDGET_GLOBAL = '__gridvm_budget';
export const MEMLIMIT_GLOBAL = '__gridvm_mem_limit';
export const GLOBAL_EXPORT_PREFIX = '__gridvm_g';
export const TICK_FLOOR_GLOBAL = '__gridvm_tick_floor';
/** address of the dirty-page map (modules instrumented with dirty-page tracking only: vm/dirty.ts) */
export const DIRTY_BASE_GLOBAL = '__gridvm_dirty_base';
/**
 * With dirty-page tracking, a mark for a store covers its page and the first DIRTY_SPILL bytes of the next one
 * (the VM compares those bytes when only the first page is marked): stores at small offsets from one pointer share
 * one mark (vm/dirty.ts).
 */
export const DIRTY_SPILL = 4096;
