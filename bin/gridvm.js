#!/usr/bin/env node
// The gridvm CLI. Runs the compiled TypeScript in dist/ (built by `npm ci` / `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/tools/gridvm.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('gridvm: not built yet; run `npm run build` in the gridvm checkout\n');
  process.exit(125);
}
const { main } = await import(entry.href);
await main(process.argv);
// exit now: Node would wait for V8 to finish compiling code nobody will run (TurboFan tier-ups of a large module),
// 5.5 s after yosys' result here; stdout and stderr are synchronous on Linux, so nothing written is lost
process.exit();
