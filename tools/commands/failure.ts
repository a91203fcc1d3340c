import type { ProcView } from '../../runtime-node/grid/coordinator.js';
import { formatBytes } from '../units.js';

/** How a failed grid process is reported (gridvm run --nodes, gridvm ps): a light module, loaded at every start. */
export function describeFailure(p: ProcView): string[] {
  const f = p.failure!;
  return [
    `gridvm: process ${p.gpid} (${p.name}${p.rank || p.job ? ` rank ${p.rank}` : ''}) ${f.why === 'killed' ? 'was killed' : `failed: ${f.message}`}`,
    ...(f.stack ?? []).map((s) => `    at ${s}`),
    `    when ${f.at}, on node ${f.node ?? '-'}; used ${p.cpuMs} ms CPU, ${p.fuelUsed} fuel, ${formatBytes(p.memoryPeakBytes)} peak memory, ${p.checkpoints} checkpoints, ${p.migrations} migrations`,
  ];
}
