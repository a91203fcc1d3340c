// Child-process entry of a node started with `--isolate process`: a NodeHost whose Bus is bridged to the
// coordinator over the IPC channel, every message msgpackr-encoded by the one wire protocol. When the coordinator
// goes away (the channel closes), the node exits.
import { LocalBus } from '../../kernel/index.js';
import { NodeHost } from './node-host.js';
import { carry, sweepCarrierFiles, uncarry } from './ipc-carrier.js';

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
process.on('disconnect', () => {
  // the origin has gone: nobody will read what this node wrote for it, or read what it wrote for this node
  sweepCarrierFiles(process.pid);
  sweepCarrierFiles(process.ppid, id);
  process.exit(0);
});
const host = new NodeHost(id, bus, { slots: Number(slotsArg ?? 1) || 1, ownsMessages: true });
host.start();
