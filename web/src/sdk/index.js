// The Switchboard JavaScript SDK: one import for applications.
//   import { Client, ChatStore, codec } from './sdk/index.js';
export { Client, State, SendStatus, SbError } from './client.js';
export { ClientCore, defaultConfig, Close, retryable } from './core.js';
export { IdbOutbox, MemoryOutbox } from './outbox.js';
export { ChatStore, Conv, isQuiet } from './chat.js';
export { MessageList } from './msglist.js';
export { createCodec, SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from './codec.js';
export { codec } from './schema.js';
export { toHex, fromHex } from './ids.js';
export { URLS_MAX, STABLE_MS } from './core.js';
