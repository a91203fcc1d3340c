// vitest globalSetup: builds the guest jobs once per test run (incremental, so usually a no-op in ~50 ms).
// Without clang for wasm32-wasi the C guests are skipped with a warning (tests check hasClang()); with CI=true the
// build fails instead.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './guests.js';

export default async function setup(): Promise<void> {
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'tools/build-guests.mjs'), '--quiet'],
      { cwd: repoRoot, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`tools/build-guests.mjs failed (exit ${code}); see its output above`);
}
