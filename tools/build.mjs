#!/usr/bin/env node
// Builds everything a checkout needs: AssemblyScript hot paths, TypeScript (dist/), the browser bundle and the
// guest jobs (C guests only when clang for wasm32-wasi is present). Run by `npm ci` (prepare) and `npm test`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const step = (name, file, args = []) => {
  const t0 = Date.now();
  execFileSync(process.execPath, [join(root, file), ...args], { stdio: 'inherit', cwd: root });
  if (process.env.GRIDVM_BUILD_VERBOSE) console.error(`build: ${name} ${Date.now() - t0} ms`);
};
if (existsSync(join(root, 'tools/build-as.mjs'))) step('assemblyscript', 'tools/build-as.mjs');
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit', cwd: root });
if (existsSync(join(root, 'tools/build-browser.mjs'))) step('browser', 'tools/build-browser.mjs');
if (existsSync(join(root, 'tools/build-guests.mjs'))) step('guests', 'tools/build-guests.mjs');
