import { createRequire } from 'node:module';
import type cliProgressT from 'cli-progress';

/** cli-progress, loaded when a bar is first shown (~20 ms at every start of the CLI otherwise) */
export const cliProgress = (): typeof cliProgressT => createRequire(import.meta.url)('cli-progress') as typeof cliProgressT;

/**
 * A progress bar for instrumentation, on stderr, shown only on a terminal and only when instrumentation takes
 * long enough to notice (large modules; cached modules start at once).
 */
export function instrumentProgress(): { update: (stage: string, fraction: number) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const t0 = Date.now();
  let bar: cliProgressT.SingleBar | undefined;
  // in order; a stage may name its tool after a space (`optimize (wasmopt108)`); the bar never goes back
  const stages = ['parse', 'analyse', 'preempt', 'flatten', 'unwind', 'asyncify', 'optimize', 'emit', 'done'];
  let shown = 0;
  return {
    update: (stage, fraction) => {
      if (!bar && Date.now() - t0 < 300) return;
      if (!bar) {
        const { SingleBar, Presets } = cliProgress();
        bar = new SingleBar(
          { format: 'instrumenting [{bar}] {percentage}% {stage}', stream: process.stderr, clearOnComplete: true, synchronousUpdate: true },
          Presets.shades_classic,
        );
        bar.start(100, 0, { stage });
      }
      const i = Math.max(0, stages.indexOf(stage.split(' ')[0]!));
      shown = Math.max(shown, Math.round(((i + Math.min(1, fraction)) / (stages.length - 1)) * 100));
      bar.update(shown, { stage });
    },
    stop: () => bar?.stop(),
  };
}
