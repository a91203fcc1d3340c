// Child-process entry of a node started with `--isolate process`: a NodeHost whose Bus is bridged to the
// coordinator over the IPC channel, every message msgpackr-encoded by the one wire protocol. When the coordinator
// goes away (the channel closes), the node exits.
import { LocalBus } from '../../kernel/index.js';
import { NodeHost } from './node-host.js';
import { carry, sweepCarrierFiles, uncarry } from './ipc-carrier.js';
import { limitWasmCompileTasks } from '../v8-flags.js';

// the node's runner threads keep the cores: V8's tier-up compiles get the rest (see v8-flags.ts)
limitWasmCompileTasks();

const [id, slotsArg] = process.argv.slice(2);
if (!id || !process.send) {
  process.stderr.write('gridvm node: started without a node id or an IPC channel (the coordinator starts nodes)\n');
  process.exit(2);
}
const bus = new LocalBus();
bus.subscribe('coord', (m) => {
  // the origin may be gone (closing, or killed): a failed send is not this node's error, the exit below follows
  if (process.connected) process.send!(carry(m, 'origin'), undefined, {}, () => {});
});
process.on('message', (raw: unknown) => {
  try {
    bus.publish(`node.${id}`, uncarry(raw));
  } catch (e) {
    process.stderr.write(`gridvm node ${id}: dropped a bad message: ${(e as Error).message}\n`);
  }
});
const originGone = (): never => {
  // the origin has gone: nobody will read what this node wrote for it, or read what it wrote for this node
  sweepCarrierFiles(process.pid);
  sweepCarrierFiles(process.ppid, id);
  process.exit(0);
};
process.on('disconnect', originGone);
// The origin may have closed the channel while this process was still loading its modules (a grid closed right
// after it started this node, e.g. the replacement of a node lost just before a job ended): the 'disconnect' event
// was emitted before there was a listener for it. Without this check the node would start its runner threads and
// live on forever, orphaned, and the origin's close() would wait for its exit forever.
if (!process.connected) originGone();
const host = new NodeHost(id, bus, { slots: Number(slotsArg ?? 1) || 1, ownsMessages: true });
host.start();
