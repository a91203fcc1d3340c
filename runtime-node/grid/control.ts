// The control interface of a running local grid: a small HTTP API on a Unix socket in $GRIDVM_HOME/run/ (default
// ~/.gridvm), so that `gridvm ps`, `gridvm kill`, `gridvm migrate`, `gridvm slots` and `gridvm status` reach grids started by other
// `gridvm run --nodes` commands. Finished jobs are kept as JSON records in $GRIDVM_HOME/jobs/.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Grid, JobResult, NodeView, ProcView } from './coordinator.js';

export function gridHome(): string {
  return process.env.GRIDVM_HOME || join(homedir(), '.gridvm');
}

export interface GridSnapshot {
  pid: number;
  socket: string;
  jobs: string[];
  nodes: NodeView[];
  processes: ProcView[];
}

/** A job's status as `gridvm status` shows it: live from its grid, or from its record once finished. */
export interface JobStatus {
  id: string;
  live: boolean;
  exitCode: number | null;
  processes: ProcView[];
  nodes?: NodeView[];
  startedAt?: string;
  endedAt?: string;
  elapsedMs?: number;
}

const json = (res: import('node:http').ServerResponse, code: number, body: unknown) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

/** Serve the grid's control API until close(). */
export async function serveControl(grid: Grid): Promise<{ socket: string; close(): Promise<void> }> {
  const dir = join(gridHome(), 'run');
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, `grid-${process.pid}.sock`);
  rmSync(socket, { force: true });
  const server: Server = createServer((req, res) => {
    const parts = (req.url ?? '/').split('?')[0]!.split('/').filter(Boolean).map(decodeURIComponent);
    try {
      if (req.method === 'GET' && parts[0] === 'ps') {
        return json(res, 200, { pid: process.pid, socket, jobs: grid.jobIds(), nodes: grid.nodes(), processes: grid.ps() } satisfies GridSnapshot);
      }
      if (req.method === 'POST' && parts[0] === 'kill' && parts[1]) {
        const ok = grid.kill(Number(parts[1]));
        return json(res, ok ? 200 : 404, ok ? { ok } : { error: `no live process with GPID ${parts[1]}` });
      }
      if (req.method === 'POST' && parts[0] === 'migrate' && parts[1] && parts[2]) {
        const precopy = /(^|&)precopy=1(&|$)/.test((req.url ?? '').split('?')[1] ?? '');
        grid.migrate(Number(parts[1]), parts[2], { precopy }).then(
          (record) => json(res, 200, { ok: true, record }),
          (e: Error) => json(res, 409, { error: e.message }),
        );
        return;
      }
      if (req.method === 'POST' && parts[0] === 'slots' && parts[1] && parts[2] !== undefined) {
        grid.setSlots(parts[1], Number(parts[2]));
        return json(res, 200, { ok: true });
      }
      json(res, 404, { error: `unknown request ${req.method} ${req.url}` });
    } catch (e) {
      json(res, 409, { error: (e as Error).message });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  server.unref();
  return {
    socket,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        rmSync(socket, { force: true });
      }),
  };
}

function call(socket: string, method: string, path: string, timeoutMs = 3000): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, timeout: timeoutMs }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Every running local grid (stale sockets of grids that died are removed). */
export async function listGrids(): Promise<GridSnapshot[]> {
  const dir = join(gridHome(), 'run');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.sock'));
  } catch {
    return [];
  }
  const out: GridSnapshot[] = [];
  for (const n of names) {
    const socket = join(dir, n);
    try {
      const r = await call(socket, 'GET', '/ps');
      if (r.status === 200) out.push(r.body as GridSnapshot);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED' || code === 'ENOENT') rmSync(socket, { force: true });
    }
  }
  return out;
}

/** The grid that has this process, or undefined. */
export async function gridOf(gpid: number): Promise<GridSnapshot | undefined> {
  return (await listGrids()).find((g) => g.processes.some((p) => p.gpid === gpid));
}

export async function controlRequest(socket: string, method: 'POST' | 'GET', path: string, timeoutMs?: number): Promise<{ status: number; body: any }> {
  return call(socket, method, path, timeoutMs);
}

export function saveJobRecord(r: JobResult): string {
  const dir = join(gridHome(), 'jobs');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${r.id}.json`);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(r, null, 2));
  renameSync(tmp, file);
  return file;
}

export async function jobStatus(id: string): Promise<JobStatus | undefined> {
  for (const g of await listGrids()) {
    if (!g.jobs.includes(id)) continue;
    return { id, live: true, exitCode: null, processes: g.processes.filter((p) => p.job === id), nodes: g.nodes };
  }
  try {
    const r = JSON.parse(readFileSync(join(gridHome(), 'jobs', `${id}.json`), 'utf8')) as JobResult;
    return { id, live: false, exitCode: r.exitCode, processes: r.processes, startedAt: r.startedAt, endedAt: r.endedAt, elapsedMs: r.elapsedMs };
  } catch {
    return undefined;
  }
}
