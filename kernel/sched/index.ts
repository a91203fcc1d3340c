/** Public surface of kernel/sched: the global scheduler (placement, fork-delay, preemption, rebalancing) and the
 * adaptive checkpoint interval. Platform-free, deterministic, no clock: time comes in as numbers. */
export {
  AdaptiveInterval, DEFAULT_INTERVAL_POLICY, INTERVAL_HISTORY_LIMIT, SchedError, validateIntervalPolicy,
  type AdaptiveIntervalState, type IntervalObservation, type IntervalPolicy,
} from './interval.js';
export {
  Scheduler, type Decision, type NodePatch, type NodeSpec, type NodeView, type ProcessSpec, type SchedEntry,
  type SchedState, type SchedulerOptions,
} from './scheduler.js';
