// Child-process entry of a node started with `--isolate process`: a NodeHost whose Bus is bridged to the
// coordinator over the IPC channel, every message msgpackr-encoded by the one wire protocol. When the coordinator
// goes away (the channel closes), the node exits.
import { decodeMessage, encodeMessage, LocalBus } from '../../kernel/index.js';
import { NodeHost } from './node-host.js';

const [id, slotsArg] = process.argv.slice(2);
if (!id || !process.send) {
  process.stderr.write('gridvm node: started without a node id or an IPC channel (the coordinator starts nodes)\n');
  process.exit(2);
}
const bus = new LocalBus();
bus.subscribe('coord', (m) => {
  // the origin may be gone (closing, or killed): a failed send is not this node's error, the exit below follows
  if (process.connected) process.send!(encodeMessage(m), undefined, {}, () => {});
});
process.on('message', (raw: unknown) => {
  try {
    const b = raw instanceof Uint8Array ? raw : new Uint8Array(raw as ArrayBuffer);
    bus.publish(`node.${id}`, decodeMessage(b));
  } catch (e) {
    process.stderr.write(`gridvm node ${id}: dropped a bad message: ${(e as Error).message}\n`);
  }
});
process.on('disconnect', () => process.exit(0));
const host = new NodeHost(id, bus, { slots: Number(slotsArg ?? 1) || 1, ownsMessages: true });
host.start();
