// Transports: how the client opens a byte stream to a gateway. The client
// needs only Dialer; webSocket() works in browsers and in Node (global
// WebSocket), tcp() (in ./node) in Node.

import { ConnectionError } from './errors.js';

/** A gateway's client addresses, as a ticket or GET /gateway names them. */
export interface GatewayAddress {
  /** TCP address host:port. */
  gateway: string;
  /** WebSocket address host:port (empty when the gateway has no WebSocket listener). */
  websocket?: string;
  /** The gateway's node id (text), when the login service says. */
  gateway_id?: string;
}

/** What a transport reports about an open connection. */
export interface ConnectionHandlers {
  /** Bytes arrived (a TCP read or a WebSocket message). */
  data(chunk: Uint8Array): void;
  /** The connection is closed (err: why, when it failed). Called once. */
  closed(err?: Error): void;
}

/** An open byte stream to a gateway. */
export interface Connection {
  /** Writes bytes (queued by the transport). */
  write(bytes: Uint8Array): void;
  /** Closes the connection at once. handlers.closed follows. */
  close(): void;
  /**
   * Optional: closes once what was written went out and the peer closed
   * too (reading on meanwhile), or after about a second; handlers.closed
   * follows at once. A plain close() with bytes unread may reset the
   * connection, and a reset can make the peer drop what it had not read
   * yet (the logout). A WebSocket's close() is graceful already.
   */
  end?(): void;
  /** Largest single write the gateway accepts (a WebSocket message: 65 600 bytes); undefined: no limit. */
  readonly maxWrite?: number;
  /** A name for logs and events, such as ws://127.0.0.1:7401/ws. */
  readonly label: string;
}

/**
 * A Dialer opens a connection to a gateway. It resolves once bytes can be
 * written, and rejects if the connection cannot be opened or signal aborts.
 */
export type Dialer = (to: GatewayAddress, handlers: ConnectionHandlers, signal: AbortSignal) => Promise<Connection>;

/** The WebSocket constructor webSocket() uses: the browser's, Node's global one, or the `ws` package's. */
export interface WebSocketConstructor {
  new (url: string): WebSocketLike;
}

/** The part of the WebSocket API the SDK uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** Options of webSocket(). */
export interface WebSocketOptions {
  /** wss:// rather than ws:// (default: true on an https: page, else false). */
  secure?: boolean;
  /** The path of the gateway's WebSocket endpoint (default "/ws"). */
  path?: string;
  /** The WebSocket constructor (default: globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
}

/** The gateway's limit on one WebSocket message: MaxFrame + 64 (PROTOCOL.md §3.6). */
export const MAX_WS_MESSAGE = 65_600;

/**
 * webSocket returns a Dialer that opens ws://<websocket>/ws (binary
 * messages, PROTOCOL.md §3.6).
 */
export function webSocket(opts: WebSocketOptions = {}): Dialer {
  return (to, handlers, signal) => {
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      return Promise.reject(new ConnectionError(
        'no WebSocket here: on Node 20 run node with --experimental-websocket (Node 22 has it), ' +
        'pass webSocket({ WebSocket }) from the ws package, or use tcp() from @xserver/client/node'));
    }
    if (!to.websocket) {
      return Promise.reject(new ConnectionError(`gateway ${to.gateway} has no WebSocket address (is it started with -ws-listen?)`));
    }
    const secure = opts.secure ?? (typeof location !== 'undefined' && location.protocol === 'https:');
    const url = `${secure ? 'wss' : 'ws'}://${to.websocket}${opts.path ?? '/ws'}`;
    return new Promise<Connection>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = new WS(url);
      } catch (e) {
        reject(new ConnectionError(`${url}: ${(e as Error).message}`, { cause: e }));
        return;
      }
      ws.binaryType = 'arraybuffer';
      let open = false, done = false;
      const onAbort = () => {
        fail(new ConnectionError(`${url}: connection attempt aborted`));
        closeQuietly();
      };
      // close may throw on a socket that never opened (Node 20).
      const closeQuietly = () => {
        try { ws.close(); } catch { /* not open */ }
      };
      const fail = (err: Error) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        if (open) handlers.closed(err);
        else reject(err);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => {
        if (done) return;
        open = true;
        signal.removeEventListener('abort', onAbort);
        resolve({
          label: url,
          maxWrite: MAX_WS_MESSAGE,
          write(b) {
            if (ws.readyState === 1) ws.send(b);
          },
          close() {
            fail(new ConnectionError(`${url}: closed`));
            closeQuietly();
          },
        });
      };
      ws.onmessage = (ev) => {
        if (done) return;
        if (ev.data instanceof ArrayBuffer) handlers.data(new Uint8Array(ev.data));
        else {
          // The gateway sends binary messages only.
          fail(new ConnectionError(`${url}: a text message from the gateway`));
          closeQuietly();
        }
      };
      ws.onerror = () => {
        // Browsers follow an error with a close (and its code); Node 20's
        // WebSocket reports a refused connection with an error alone.
        fail(new ConnectionError(`${url}: ${open ? 'connection failed' : 'cannot connect'}`));
        closeQuietly();
      };
      ws.onclose = (ev) => {
        fail(new ConnectionError(`${url}: ${open ? 'connection closed' : 'cannot connect'} (${ev.code ?? '?'}${ev.reason ? `: ${ev.reason}` : ''})`));
      };
    });
  };
}
