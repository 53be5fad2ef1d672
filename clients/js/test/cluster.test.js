// The SDK in Node against a real cluster (see helpers/cluster.js): login,
// send and receive over TCP and WebSocket, kicks as typed errors, resumes
// after cut connections and after a gateway's death (SIGKILL) with every
// message exactly once in both directions, and a refused resume.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { Client, Code, KickError, login, tcp, webSocket, wire } from '../dist/node.js';
import { startCluster, startProxy, waitFor } from './helpers/cluster.js';

const PASSWORD = 'xserver'; // the example login service's demo password
const ECHO = 4001; // type 4 (the echo node) echoes the message with this cmd

let cluster;
before(async () => { cluster = await startCluster({ resumeWindow: '8s' }); });
after(async () => { await cluster?.stop(); });

const transports = { tcp: tcp(), websocket: webSocket() };

// player wraps a Client: it sends numbered messages to the echo node and
// records what comes back and every event.
function player(ticket, opts = {}) {
  const c = new Client({ ticket, backoffMinMs: 10, backoffMaxMs: 200, pingEveryMs: 1000, ...opts });
  const p = { c, got: [], events: [], sent: 0 };
  c.on('message', (m) => { if (m.cmd === ECHO) p.got.push(m.json().n); });
  for (const ev of ['connected', 'disconnected', 'reconnecting', 'resumed', 'ended', 'notDelivered']) {
    c.on(ev, (e) => p.events.push({ ev, ...e }));
  }
  p.send = (k) => { for (let i = 0; i < k; i++) c.sendJSON(ECHO, { n: ++p.sent }); };
  p.count = (ev) => p.events.filter((e) => e.ev === ev).length;
  p.echoed = () => waitFor(`${ticket.account}: ${p.sent} echoes (got ${p.got.length})`, () => p.got.length >= p.sent);
  // exactlyOnce: every message came back once, in order (a message lost or
  // processed twice by the node shows here, and so does a push lost or
  // delivered twice).
  p.exactlyOnce = () => assert.deepEqual(p.got, Array.from({ length: p.sent }, (_, i) => i + 1));
  return p;
}

for (const [name, transport] of Object.entries(transports)) {
  test(`${name}: login, send and receive by cmd, ping, an undeliverable message`, async () => {
    const ticket = await login(cluster.loginUrl, `plain-${name}`, PASSWORD);
    assert.equal(ticket.account, `plain-${name}`);
    assert.equal(ticket.token.length, 43);
    const p = player(ticket, { transport });
    await p.c.connect();
    assert.equal(p.c.state, 'live');
    assert.equal(p.events[0].ev, 'connected');
    assert.ok(p.events[0].sessionId > 0n);
    assert.equal(p.events[0].windowMs, 8000);
    assert.equal(p.events[0].maxUnacked, 256);
    p.send(50);
    await p.echoed();
    p.exactlyOnce();
    assert.equal(typeof await p.c.ping(), 'number');
    p.c.send(9001, 'nobody'); // type 9: no such node
    await waitFor('notDelivered', () => p.events.find((e) => e.ev === 'notDelivered'));
    assert.deepEqual(p.events.find((e) => e.ev === 'notDelivered'), { ev: 'notDelivered', cmd: 9001, code: Code.NoNode, codeName: 'NoNode' });
    await p.c.drain(); // the undeliverable message is acknowledged too
    p.c.close();
    assert.equal(p.c.state, 'ended');
    assert.equal(p.events.at(-1).error.name, 'ClosedError');
  });
}

test('the README example runs as written', async () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const code = readme.match(/## Ten lines\n\n```js\n([\s\S]*?)```/)[1];
  assert.equal(code.trim().split('\n').length, 10);
  const root = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.ok(root.includes(`\`\`\`js\n${code}\`\`\``), 'the repository README shows the same example');
  const file = join(tmpdir(), `xserver-readme-${process.pid}.mjs`);
  writeFileSync(file, code
    .replaceAll("'http://127.0.0.1:8080'", JSON.stringify(cluster.loginUrl))
    .replace("from '@xserver/client'", `from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}`)
    + "await new Promise((r) => client.on('message', r));\nclient.close();\n");
  const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, file], { timeout: 15_000 });
  assert.equal(stdout, "4001 { name: 'Alice' }\nsession over: client closed\n");
});

// watched wraps a transport and tracks, from the bytes themselves, the
// highest ClientMsg seq written and the highest ClientMsgAck read.
function watched(transport) {
  const w = { sent: 0, acked: 0, maxInFlight: 0 };
  w.dial = async (to, handlers, signal) => {
    const rIn = new wire.FrameReader(), rOut = new wire.FrameReader();
    const conn = await transport(to, {
      data(chunk) {
        for (const f of rIn.push(chunk.slice())) if (f.kind === wire.Kind.MsgAck) w.acked = Math.max(w.acked, wire.decodeMsgAck(f.payload));
        handlers.data(chunk);
      },
      closed: handlers.closed,
    }, signal);
    return {
      label: conn.label,
      maxWrite: conn.maxWrite,
      close: () => conn.close(),
      write(b) {
        for (const f of rOut.push(b.slice())) {
          if (f.kind === wire.Kind.Msg) {
            w.sent = Math.max(w.sent, wire.decodeMsg(f.payload).seq);
            w.maxInFlight = Math.max(w.maxInFlight, w.sent - w.acked);
          }
        }
        conn.write(b);
      },
    };
  };
  return w;
}

test('2000 messages at once: never more than max_unacked in flight, all delivered in order', async () => {
  const w = watched(tcp());
  const p = player(await login(cluster.loginUrl, 'burst', PASSWORD), { transport: w.dial });
  await p.c.connect();
  p.send(2000);
  assert.ok(p.c.unacked > 256, 'messages wait in the client');
  await p.echoed();
  await p.c.drain();
  p.exactlyOnce();
  assert.equal(w.sent, 2000);
  assert.ok(w.maxInFlight <= 256 && w.maxInFlight > 200, `at most 256 in flight (saw ${w.maxInFlight})`);
  p.c.close();
});

test('a login refused by the login service is a LoginError with its status', async () => {
  await assert.rejects(login(cluster.loginUrl, 'someone', 'wrong password'), (e) => e.name === 'LoginError' && e.status === 401);
});

test('a bad token is a KickError code 1 from connect', async () => {
  const ticket = await login(cluster.loginUrl, 'badtoken', PASSWORD);
  const c = new Client({ ticket: { ...ticket, token: 'x'.repeat(43) }, transport: tcp() });
  await assert.rejects(c.connect(), (e) => e instanceof KickError && e.code === Code.BadToken && e.source === 'login');
  assert.equal(c.state, 'ended');
});

test('a second login kicks the first: KickError code 7, no reconnect', async () => {
  const first = player(await login(cluster.loginUrl, 'twice', PASSWORD), { transport: tcp() });
  await first.c.connect();
  const second = player(await login(cluster.loginUrl, 'twice', PASSWORD), { transport: webSocket() });
  await second.c.connect();
  const ended = await waitFor('the first session to end', () => first.events.find((e) => e.ev === 'ended'));
  assert.ok(ended.error instanceof KickError);
  assert.equal(ended.error.code, Code.Duplicate);
  assert.equal(ended.error.codeName, 'Duplicate');
  assert.equal(ended.error.source, 'kick');
  assert.equal(ended.error.relogin, false);
  assert.equal(first.count('disconnected'), 0, 'a kick is not a lost connection');
  assert.throws(() => first.c.send(ECHO, 'x'), KickError);
  second.send(3);
  await second.echoed();
  second.exactlyOnce();
  second.c.close();
});

for (const [name, transport] of Object.entries(transports)) {
  test(`${name}: connections cut abruptly under traffic; every message exactly once both ways`, async (t) => {
    const ticket = await login(cluster.loginUrl, `cut-${name}`, PASSWORD);
    const g = cluster.gatewayOf(ticket.gateway);
    const px = await startProxy(name === 'tcp' ? g.tcp : g.ws);
    const p = player({ ...ticket, gateway: px.addr, websocket: px.addr }, { transport });
    try {
      await p.c.connect();
      const cuts = 5;
      for (let i = 0; i < cuts; i++) {
        p.send(40);
        // Cut once some echoes of this batch are back and others in flight.
        await waitFor('echoes in flight', () => p.got.length > p.sent - 40);
        px.cut();
        p.send(20); // sent while away: resent after the resume
        await waitFor(`resume ${i + 1}`, () => p.count('resumed') === i + 1);
      }
      await p.echoed();
      await p.c.drain();
      p.exactlyOnce();
      assert.equal(p.count('disconnected'), cuts);
      const r = p.events.filter((e) => e.ev === 'resumed');
      t.diagnostic(`resumed ${r.length} times after ${r.map((e) => e.awayMs).join(', ')} ms; resent ${r.map((e) => e.resent).join(', ')}`);
      assert.ok(r.every((e) => e.awayMs >= 0 && e.broadcastGap === false && e.attempts >= 1), JSON.stringify(r));
      assert.ok(r.some((e) => e.resent > 0), 'some messages were resent');
      assert.equal(cluster.lostAccount(ticket.account), false, 'no lose-account for a session that resumed');
    } finally {
      p.c.close();
      await px.close();
    }
  });
}

test('resume refused: the window passed (KickError code 15, Expired)', async () => {
  const ticket = await login(cluster.loginUrl, 'expires', PASSWORD);
  const px = await startProxy(cluster.gatewayOf(ticket.gateway).tcp);
  const p = player({ ...ticket, gateway: px.addr }, { transport: tcp(), backoffMaxMs: 500 });
  try {
    await p.c.connect();
    p.send(3);
    await p.echoed();
    px.block(true); // the gateway is unreachable…
    px.cut();
    // …until the session's window (8 s) has passed and its node was told.
    await waitFor('lose-account at the echo node', () => cluster.lostAccount('expires'));
    px.block(false);
    const ended = await waitFor('the client to end', () => p.events.find((e) => e.ev === 'ended'));
    assert.ok(ended.error instanceof KickError, String(ended.error));
    assert.equal(ended.error.code, Code.Expired);
    assert.equal(ended.error.source, 'resume');
    assert.equal(ended.error.relogin, true);
    assert.ok(p.count('reconnecting') >= 2);
    assert.equal(p.count('resumed'), 0);
  } finally {
    p.c.close();
    await px.close();
  }
});

test('close() while away logs out on one more resume: lose-account at once, not after the window', async () => {
  const ticket = await login(cluster.loginUrl, 'quitter', PASSWORD);
  const g = cluster.gatewayOf(ticket.gateway);
  const px = await startProxy(g.tcp);
  // Away for seconds unless close() hurries: the backoff is 5 s.
  const p = player({ ...ticket, gateway: px.addr }, {
    transport: tcp(), backoffMinMs: 5000, backoffMaxMs: 5000,
    lookupGateway: async () => ({ gateway: g.tcp }),
  });
  try {
    await p.c.connect();
    p.send(1);
    await p.echoed();
    px.block(true); // the way back through the proxy is gone
    px.cut();
    await waitFor('the client to notice', () => p.count('disconnected') === 1);
    const t0 = Date.now();
    p.c.close();
    assert.throws(() => p.c.send(ECHO, 'x'));
    await waitFor('lose-account at the echo node', () => cluster.lostAccount('quitter'));
    const ms = Date.now() - t0;
    assert.ok(ms < 4000, `lose-account ${ms} ms after close(): the session waited for its window (8 s)`);
    const ended = await waitFor('the client to end', () => p.events.find((e) => e.ev === 'ended'));
    assert.equal(ended.error.name, 'ClosedError');
  } finally {
    p.c.close();
    await px.close();
  }
});

test('close() with echoes still arriving logs out: lose-account at once, not after the window', async () => {
  for (let i = 0; i < 5; i++) {
    const account = `closer-${i}`;
    const ticket = await login(cluster.loginUrl, account, PASSWORD);
    const p = player(ticket, { transport: tcp() });
    await p.c.connect();
    p.send(1);
    await p.echoed();
    p.send(300); // echoes arrive while it closes
    const t0 = Date.now();
    p.c.close();
    await waitFor(`${account}: lose-account at the echo node`, () => cluster.lostAccount(account));
    const ms = Date.now() - t0;
    assert.ok(ms < 4000, `${account}: lose-account ${ms} ms after close(): the logout was lost, the session waited for its window (8 s)`);
  }
});

// Last: it kills a gateway.
test('the gateway dies (SIGKILL) under traffic: resumed on the other one, nothing lost or repeated', async (t) => {
  const tickets = {};
  for (const name of Object.keys(transports)) tickets[name] = await login(cluster.loginUrl, `survivor-${name}`, PASSWORD);
  // Both players at the same gateway, the first one's (a token is good at any gateway).
  const doomed = cluster.gatewayOf(tickets.tcp.gateway);
  const other = cluster.gateways.find((g) => g !== doomed);
  const players = Object.entries(transports).map(([name, transport]) =>
    player({ ...tickets[name], gateway: doomed.tcp, websocket: doomed.ws }, { transport, loginUrl: cluster.loginUrl }));
  try {
    await Promise.all(players.map((p) => p.c.connect()));
    for (const p of players) p.send(30);
    await Promise.all(players.map((p) => waitFor('some echoes', () => p.got.length >= 10)));
    await doomed.proc.kill('SIGKILL');
    for (const p of players) p.send(30); // while the gateway is dead
    for (const p of players) {
      await waitFor(`${p.c.account} to resume`, () => p.count("resumed") === 1).catch((e) => { throw new Error(`${e.message}; events: ${JSON.stringify(p.events, (k, v) => typeof v === "bigint" ? String(v) : v instanceof Error ? String(v) : v)}`); });
      p.send(30);
      await p.echoed();
      await p.c.drain();
      p.exactlyOnce();
      const r = p.events.find((e) => e.ev === 'resumed');
      t.diagnostic(`${p.c.account}: resumed after ${r.awayMs} ms, ${r.attempts} attempts, ${r.resent} messages resent`);
      assert.equal(r.broadcastGap, true, 'a resume on another gateway may miss broadcasts');
      assert.ok([other.tcp, other.ws].some((a) => r.gateway.includes(a)), `resumed at ${r.gateway}`);
      assert.equal(p.c.gateway.gateway, other.tcp, 'client.gateway names the new gateway');
      assert.equal(cluster.lostAccount(p.c.account), false);
    }
  } finally {
    for (const p of players) p.c.close();
  }
});
