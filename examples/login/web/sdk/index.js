// @xserver/client: the player client SDK of xserver, for browsers and Node.
// See README.md; the protocol is docs/PROTOCOL.md of the xserver repository.
export { Client, Message } from './client.js';
export { SessionCore, QueueFullError, backoff } from './core.js';
export { XserverError, KickError, LoginError, ConnectionError, ClosedError } from './errors.js';
export { login, lookupGateway } from './login.js';
export { webSocket, MAX_WS_MESSAGE } from './transport.js';
export * as wire from './wire.js';
export { Code, Kind, codeText, codeName, ProtocolError } from './wire.js';
