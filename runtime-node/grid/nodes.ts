// Starting the nodes of a local grid: in this process (each node's processes run on its own runner threads) or as
// separate OS processes (`--isolate process`, so a node can be SIGKILLed), bridged to the Bus over IPC with the
// msgpackr-encoded wire protocol.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Bus } from '../../kernel/index.js';
import { NodeHost, type SparePool } from './node-host.js';
import { carry, sweepCarrierFiles, uncarry } from './ipc-carrier.js';

export type Isolation = 'thread' | 'process';

/** A started node as the coordinator holds it. */
export interface NodeHandle {
  id: string;
  isolate: Isolation;
  /** OS process id of the node (this process for thread nodes) */
  pid: number;
  /** stop the node; for process nodes, kill it (SIGKILL with `hard`) */
  stop(hard?: boolean): Promise<void>;
  /** called once when the node's OS process exits (process nodes only) */
  onExit?: (why: string) => void;
}

function nodeMainPath(): string {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL('../../dist/runtime-node/grid/node-main.js', here) : new URL('./node-main.js', here);
  const p = fileURLToPath(url);
  if (!existsSync(p)) throw new Error(`node entry ${p} is missing: run \`npm run build\``);
  return p;
}

/**
 * How long a node process asked to stop (its IPC channel closed, or SIGTERM) may take to exit before it is killed.
 * A healthy node exits within milliseconds (node-main.ts); a node process still loading its modules when it is
 * asked exits as soon as it has loaded them.
 */
export const STOP_GRACE_MS = 5000;

export function startNode(id: string, bus: Bus, isolate: Isolation, slots: number, spares?: SparePool): NodeHandle {
  if (isolate === 'thread') {
    const host = new NodeHost(id, bus, { slots, ...(spares ? { spares } : {}) });
    host.start();
    return { id, isolate, pid: process.pid, stop: () => host.close() };
  }
  const child: ChildProcess = fork(nodeMainPath(), [id, String(slots)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  const handle: NodeHandle = {
    id,
    isolate,
    pid: child.pid ?? -1,
    stop: (hard) =>
      new Promise<void>((resolve) => {
        // (no pid: it never started, and there is nothing to stop)
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resolve();
        // a node asked to go that has not gone after STOP_GRACE_MS (stuck, stopped, or one that missed the
        // disconnect) is killed: a stop always ends with the node process gone
        const grace = hard ? undefined : setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        child.once('exit', () => {
          if (grace) clearTimeout(grace);
          resolve();
        });
        if (hard) child.kill('SIGKILL');
        else if (child.connected) child.disconnect();
        else child.kill('SIGTERM');
      }),
  };
  const unsubscribe = bus.subscribe(`node.${id}`, (m) => {
    if (child.connected) child.send(carry(m, id), (err) => void err);
  });
  child.on('message', (raw: unknown) => {
    try {
      bus.publish('coord', uncarry(raw));
    } catch (e) {
      process.stderr.write(`gridvm: dropped a bad message from node ${id}: ${(e as Error).message}\n`);
    }
  });
  child.on('exit', (code, signal) => {
    unsubscribe();
    // big messages it never read, and any it wrote but did not get to send
    sweepCarrierFiles(process.pid, id);
    if (child.pid) sweepCarrierFiles(child.pid);
    handle.onExit?.(signal ? `its process was killed by ${signal}` : `its process exited with code ${code}`);
  });
  child.on('error', () => {});
  return handle;
}
