/** The one wire protocol and the Bus interface (DESIGN.md, "Transport and storage"). */
export * from './protocol.js';
export { LocalBus, type Bus, type Handler } from './bus.js';
