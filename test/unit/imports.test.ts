// The import graph, read from the sources: the layering of DESIGN.md (vm/ and kernel/ import nothing from Node),
// and binaryen (the instrumenter, ~0.5 s to load per thread) kept off the paths that run cached modules: the CLI's
// main thread, the job worker, grid nodes and the browser worker load it only on a cache miss (a dynamic import).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** static imports and re-exports of a source file (not `import type`, not dynamic `import()`) */
function staticImports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
  for (let m; (m = re.exec(src)); ) out.push(m[1]!);
  return out;
}
/** every module a file loads statically: package names, node: builtins, and files relative to the root */
function closure(entry: string): { files: Map<string, string>; packages: Map<string, string> } {
  const files = new Map<string, string>([[entry, '']]);
  const packages = new Map<string, string>();
  const work = [entry];
  while (work.length) {
    const f = work.pop()!;
    for (const spec of staticImports(join(root, f))) {
      if (!spec.startsWith('.')) {
        if (!packages.has(spec)) packages.set(spec, f);
        continue;
      }
      const target = relative(root, resolve(root, dirname(f), spec.replace(/\.js$/, '.ts')));
      if (!files.has(target)) {
        files.set(target, f);
        work.push(target);
      }
    }
  }
  return { files, packages };
}
/** the chain of imports from the entry to a file */
function chain(files: Map<string, string>, f: string): string {
  const out = [f];
  while (files.get(out[0]!)) out.unshift(files.get(out[0]!)!);
  return out.join(' -> ');
}

describe('the import graph', () => {
  it('vm/ and kernel/ import nothing from Node', () => {
    for (const dir of ['vm', 'kernel']) {
      const walk = (d: string): string[] => readdirSync(join(root, d), { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? (e.name === 'assembly' ? [] : walk(join(d, e.name))) : e.name.endsWith('.ts') ? [join(d, e.name)] : []);
      const files = walk(dir);
      expect(files.length).toBeGreaterThan(5);
      for (const f of files) {
        const bad = staticImports(join(root, f)).filter((s) => s.startsWith('node:') || ['fs', 'path', 'os', 'crypto', 'worker_threads', 'child_process'].includes(s));
        expect(bad, f).toEqual([]);
      }
    }
  });

  it('keeps binaryen off the paths that run cached modules', () => {
    for (const entry of ['tools/gridvm.ts', 'runtime-node/job-worker.ts', 'runtime-node/resume-worker.ts', 'runtime-node/grid/runner.ts', 'runtime-node/grid/coordinator.ts', 'runtime-browser/worker.ts']) {
      const { files, packages } = closure(entry);
      expect(files.size, entry).toBeGreaterThan(1);
      const from = packages.get('binaryen');
      expect(from, `${entry} loads binaryen: ${from ? chain(files, from) : ''}`).toBeUndefined();
    }
    // the instrumenter itself does (the check can see it)
    expect(closure('vm/index.ts').packages.has('binaryen')).toBe(true);
  });

  it('keeps the CLI\'s main thread free of the VM runtime and the grid: they load in the command that needs them', () => {
    const { files } = closure('tools/gridvm.ts');
    for (const heavy of ['vm/machine.ts', 'runtime-node/run.ts', 'runtime-node/grid/coordinator.ts', 'runtime-node/grid/control.ts']) {
      expect(files.has(heavy), files.has(heavy) ? chain(files, heavy) : heavy).toBe(false);
    }
  });
});
