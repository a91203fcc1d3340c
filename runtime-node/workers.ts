import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Start a worker thread running one of runtime-node's worker entry files. Workers always run the compiled
 * JavaScript in dist/ (built by `npm run build`, which `npm test` runs first): when this module itself runs from
 * TypeScript sources (tests), it points at the compiled twin.
 */
export function startWorker(name: string, opts: WorkerOptions = {}): Worker {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL(`../dist/runtime-node/${name}.js`, here) : new URL(`./${name}.js`, here);
  if (!existsSync(fileURLToPath(url))) throw new Error(`worker script ${fileURLToPath(url)} is missing: run \`npm run build\``);
  return new Worker(url, opts);
}
