// Transports: how the client opens a byte stream to a gateway. The client
// needs only Dialer; webSocket() works in browsers and in Node (global
// WebSocket), tcp() (in ./node) in Node.
import { ConnectionError } from './errors.js';
/** The gateway's limit on one WebSocket message: MaxFrame + 64 (PROTOCOL.md §3.6). */
export const MAX_WS_MESSAGE = 65_600;
/**
 * webSocket returns a Dialer that opens ws://<websocket>/ws (binary
 * messages, PROTOCOL.md §3.6).
 */
export function webSocket(opts = {}) {
    return (to, handlers, signal) => {
        const WS = opts.WebSocket ?? globalThis.WebSocket;
        if (!WS) {
            return Promise.reject(new ConnectionError('no WebSocket here: on Node 20 run node with --experimental-websocket (Node 22 has it), ' +
                'pass webSocket({ WebSocket }) from the ws package, or use tcp() from @xserver/client/node'));
        }
        if (!to.websocket) {
            return Promise.reject(new ConnectionError(`gateway ${to.gateway} has no WebSocket address (is it started with -ws-listen?)`));
        }
        const secure = opts.secure ?? (typeof location !== 'undefined' && location.protocol === 'https:');
        const url = `${secure ? 'wss' : 'ws'}://${to.websocket}${opts.path ?? '/ws'}`;
        return new Promise((resolve, reject) => {
            let ws;
            try {
                ws = new WS(url);
            }
            catch (e) {
                reject(new ConnectionError(`${url}: ${e.message}`, { cause: e }));
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
                try {
                    ws.close();
                }
                catch { /* not open */ }
            };
            const fail = (err) => {
                if (done)
                    return;
                done = true;
                signal.removeEventListener('abort', onAbort);
                if (open)
                    handlers.closed(err);
                else
                    reject(err);
            };
            signal.addEventListener('abort', onAbort, { once: true });
            ws.onopen = () => {
                if (done)
                    return;
                open = true;
                signal.removeEventListener('abort', onAbort);
                resolve({
                    label: url,
                    maxWrite: MAX_WS_MESSAGE,
                    write(b) {
                        if (ws.readyState === 1)
                            ws.send(b);
                    },
                    close() {
                        fail(new ConnectionError(`${url}: closed`));
                        closeQuietly();
                    },
                });
            };
            ws.onmessage = (ev) => {
                if (done)
                    return;
                if (ev.data instanceof ArrayBuffer)
                    handlers.data(new Uint8Array(ev.data));
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
