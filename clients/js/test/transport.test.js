// The transports on their own: a refused connection fails the dial at
// once (not after the client's connect timeout), bytes flow both ways.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';

import { ConnectionError, tcp, webSocket } from '../dist/node.js';
import { freePort } from './helpers/cluster.js';

const handlers = { data() {}, closed() {} };

for (const [name, dial] of [['webSocket', webSocket()], ['tcp', tcp()]]) {
  // Without an answer the dial would hang until the test's timeout.
  test(`${name}(): a refused connection rejects at once`, { timeout: 3000 }, async () => {
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    await assert.rejects(dial({ gateway: addr, websocket: addr }, handlers, new AbortController().signal), ConnectionError);
  });

  test(`${name}(): an aborted dial rejects`, { timeout: 3000 }, async () => {
    const silent = createServer(() => {}); // accepts, never answers the WebSocket handshake
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const addr = `127.0.0.1:${silent.address().port}`;
    const ctl = new AbortController();
    const p = dial({ gateway: addr, websocket: addr }, handlers, ctl.signal);
    ctl.abort();
    try {
      if (name === 'tcp') {
        // A TCP dial may complete before the abort is seen: then it is open.
        const c = await p.catch((e) => e);
        if (!(c instanceof ConnectionError)) c.close();
      } else {
        await assert.rejects(p, ConnectionError);
      }
    } finally {
      silent.close();
    }
  });
}

test('tcp(): bytes both ways, closed reported once', { timeout: 3000 }, async () => {
  const server = createServer((s) => s.on('data', (d) => s.end(d)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const got = [];
  let closed = 0;
  const done = new Promise((resolve) => {
    tcp()({ gateway: `127.0.0.1:${server.address().port}` }, {
      data: (b) => got.push(...b),
      closed: () => { closed++; resolve(); },
    }, new AbortController().signal).then((c) => c.write(Uint8Array.of(1, 2, 3)));
  });
  await done;
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(closed, 1);
  server.close();
});

test('tcp(): a bad address is a ConnectionError', async () => {
  await assert.rejects(tcp()({ gateway: 'no-port' }, handlers, new AbortController().signal), ConnectionError);
});

// A WebSocket that never reports anything and whose close() throws, as
// Node 20's sometimes does for a connection to a just-killed gateway: the
// deadline must still end the dial.
test('webSocket(): the deadline ends a dial the socket never answers', { timeout: 3000 }, async () => {
  class Mute {
    constructor() { this.readyState = 0; }
    send() {}
    close() { throw new Error('InvalidStateError'); }
  }
  const ctl = new AbortController();
  const p = webSocket({ WebSocket: Mute })({ gateway: 'x:1', websocket: 'x:1' }, handlers, ctl.signal);
  ctl.abort();
  await assert.rejects(p, ConnectionError);
});
