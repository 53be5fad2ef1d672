// @xserver/client/node: everything in @xserver/client, plus tcp(), the
// TCP transport (node:net). Import this entry point in Node only.

import { connect } from 'node:net';

import { ConnectionError } from './errors.js';
import type { Dialer } from './transport.js';

export * from './index.js';

/** Options of tcp(). */
export interface TcpOptions {
  /** Disable Nagle's algorithm (default true: messages are small and latency matters). */
  noDelay?: boolean;
}

/** tcp returns a Dialer that opens a TCP connection to the gateway's client port (the ticket's gateway address). */
export function tcp(opts: TcpOptions = {}): Dialer {
  return (to, handlers, signal) => new Promise((resolve, reject) => {
    const i = to.gateway.lastIndexOf(':');
    const host = to.gateway.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(to.gateway.slice(i + 1));
    if (i < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      reject(new ConnectionError(`bad gateway address ${JSON.stringify(to.gateway)}: want host:port`));
      return;
    }
    const label = `tcp://${to.gateway}`;
    const sock = connect({ host, port, noDelay: opts.noDelay ?? true });
    let open = false, done = false;
    const onAbort = () => {
      sock.destroy();
      finish(new ConnectionError(`${label}: connection attempt aborted`));
    };
    const finish = (err: Error) => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      if (open) handlers.closed(err);
      else reject(err);
    };
    if (signal.aborted) { onAbort(); return; }
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => {
      open = true;
      signal.removeEventListener('abort', onAbort);
      resolve({
        label,
        write(b) {
          if (!sock.destroyed) sock.write(b);
        },
        close() {
          sock.destroy();
          finish(new ConnectionError(`${label}: closed`));
        },
        end() {
          if (sock.destroyed) return;
          sock.end(); // FIN after what is queued; reading goes on until the gateway closes
          const t = setTimeout(() => sock.destroy(), 1000);
          t.unref();
          sock.once('close', () => clearTimeout(t));
          finish(new ConnectionError(`${label}: closed`));
        },
      });
    });
    sock.on('data', (chunk: Buffer) => {
      if (!done) handlers.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    sock.on('error', (err) => finish(new ConnectionError(`${label}: ${err.message}`, { cause: err })));
    sock.on('close', () => finish(new ConnectionError(`${label}: ${open ? 'connection closed' : 'cannot connect'}`)));
  });
}
