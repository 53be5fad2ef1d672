// The SDK in headless Chromium, loaded as an ES module by a page: login at
// the login service (cross-origin fetch), WebSocket to a gateway, send and
// receive, and a resume after the connection is cut abruptly.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { startChromium } from './helpers/chromium.js';
import { startCluster, startProxy } from './helpers/cluster.js';

const dist = new URL('../dist/', import.meta.url);
const page = `<!doctype html><meta charset="utf-8"><title>sdk</title>
<script type="module">
  import * as sdk from '/sdk/index.js';
  window.sdk = sdk;
  window.ready = true;
</script>`;

let cluster, chromium, server, origin;
before(async () => {
  [cluster, chromium] = await Promise.all([startCluster(), startChromium()]);
  server = createServer(async (req, res) => {
    const m = req.url.match(/^\/sdk\/([a-z]+\.js)$/);
    if (req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(page);
    } else if (m && m[1] !== 'node.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(await readFile(new URL(m[1], dist)));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  // Each step runs whatever the others do, so no process outlives the test.
  const steps = await Promise.allSettled([chromium?.close(), cluster?.stop()]);
  server?.close();
  for (const s of steps) if (s.status === 'rejected') throw s.reason;
});

test('Chromium: login, send and receive over WebSocket, resume after a cut', async () => {
  const tab = await chromium.page(`${origin}/`);
  await tab.evaluate(`(async () => { while (!window.ready) await new Promise((r) => setTimeout(r, 10)); })()`);
  const ticket = await tab.evaluate(`sdk.login(${JSON.stringify(cluster.loginUrl)}, 'browser', 'xserver')`);
  const px = await startProxy(cluster.gatewayOf(ticket.websocket).ws);
  try {
    const first = await tab.evaluate(`(async () => {
      const ticket = { ...${JSON.stringify(ticket)}, websocket: ${JSON.stringify(px.addr)} };
      const c = new sdk.Client({ ticket, loginUrl: ${JSON.stringify(cluster.loginUrl)}, backoffMinMs: 10, backoffMaxMs: 200, pingEveryMs: 1000 });
      window.c = c;
      window.got = [];
      window.events = [];
      window.sent = 0;
      window.sendN = (k) => { for (let i = 0; i < k; i++) c.sendJSON(4001, { n: ++window.sent }); };
      window.until = async (what, cond) => {
        const end = Date.now() + 15000;
        while (!cond()) {
          if (Date.now() > end) throw new Error('timed out waiting for ' + what + ': ' + JSON.stringify(events));
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      c.on('message', (m) => { if (m.cmd === 4001) got.push(m.json().n); });
      for (const ev of ['connected', 'disconnected', 'reconnecting', 'resumed', 'ended']) {
        c.on(ev, (e) => events.push(ev === 'resumed' ? { ev, resent: e.resent, gap: e.broadcastGap } : { ev }));
      }
      await c.connect();
      sendN(20);
      await until('echoes', () => got.length === 20);
      return { state: c.state, got, events };
    })()`);
    assert.equal(first.state, 'live');
    assert.deepEqual(first.got, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.deepEqual(first.events, [{ ev: 'connected' }]);

    await tab.evaluate('sendN(20)');
    px.cut();
    const second = await tab.evaluate(`(async () => {
      sendN(20);
      await until('the resume', () => events.some((e) => e.ev === 'resumed'));
      sendN(20);
      await until('every echo', () => got.length >= sent);
      await c.drain();
      return { got, sent };
    })()`);
    // The session resumed: its node never lost the account (checked before
    // the close below, which ends the session and so does fire it).
    assert.equal(cluster.lostAccount('browser'), false);
    const third = await tab.evaluate(`(async () => {
      c.close();
      return { state: c.state, events };
    })()`);
    second.events = third.events;
    second.state = third.state;
    assert.equal(second.sent, 80);
    assert.deepEqual(second.got, Array.from({ length: 80 }, (_, i) => i + 1), 'every message exactly once, in order');
    assert.deepEqual(second.events.map((e) => e.ev).filter((e) => e !== 'reconnecting'),
      ['connected', 'disconnected', 'resumed', 'ended']);
    assert.equal(second.events.find((e) => e.ev === 'resumed').gap, false);
    assert.equal(second.state, 'ended');
    assert.deepEqual(tab.errors, []);
  } finally {
    await px.close();
  }
});
