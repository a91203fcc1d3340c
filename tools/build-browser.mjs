#!/usr/bin/env node
// Bundles the browser runtime (Web Worker entry) with esbuild into dist/browser/.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: { worker: join(root, 'runtime-browser/worker.ts') },
  outdir: join(root, 'dist/browser'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
});
