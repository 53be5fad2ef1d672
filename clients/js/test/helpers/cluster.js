// A real xserver cluster for the tests: redis-server on a free port, an
// mgrserver, two gateways (TCP and WebSocket), the example login service
// and an echo node, all as separate processes from the repository's bin/
// (make build). Every process logs JSON to a file in a temporary
// directory; the helpers wait on what the logs say, never on sleeps.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, createWriteStream } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../../', import.meta.url));
export const binDir = process.env.XSERVER_BIN ?? join(repo, 'bin');

/** How long one wait may take before the test fails. */
export const STEP_MS = 20_000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** waitFor polls cond (sync or async) every 20 ms until it returns a truthy value, which it returns. */
export async function waitFor(what, cond, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Proc is one child process whose JSON log lines are kept for waiting on. */
class Proc {
  constructor(name, cmd, args, env, logDir) {
    this.name = name;
    this.lines = [];
    this.exited = false;
    this.logPath = join(logDir, `${name}.log`);
    const file = createWriteStream(this.logPath);
    this.child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let rest = '';
    const onChunk = (chunk) => {
      file.write(chunk);
      const text = rest + chunk.toString('utf8');
      const parts = text.split('\n');
      rest = parts.pop();
      for (const l of parts) {
        try {
          this.lines.push(JSON.parse(l));
        } catch {
          this.lines.push({ msg: l });
        }
      }
    };
    this.child.stdout.on('data', onChunk);
    this.child.stderr.on('data', onChunk);
    this.done = new Promise((resolve) => this.child.once('exit', () => { this.exited = true; file.end(); resolve(); }));
  }

  /** find returns the first log entry matching pred. */
  find(pred) {
    return this.lines.find(pred);
  }

  /** line waits for a log entry matching pred and returns it. */
  line(what, pred, ms) {
    return waitFor(`${this.name}: ${what}`, () => {
      if (this.exited) throw new Error(`${this.name} exited; see ${this.logPath}`);
      return this.find(pred);
    }, ms);
  }

  kill(signal = 'SIGKILL') {
    if (!this.exited) this.child.kill(signal);
    return this.done;
  }
}

/**
 * startCluster starts the whole cluster and resolves once a login would
 * succeed and the echo node is linked to both gateways.
 */
export async function startCluster({ resumeWindow = '2s' } = {}) {
  for (const b of ['mgrserver', 'gateway', 'login', 'echo']) {
    if (!existsSync(join(binDir, b))) throw new Error(`${join(binDir, b)} is missing: run make build first`);
  }
  const logDir = mkdtempSync(join(tmpdir(), 'xserver-js-'));
  const procs = [];
  const c = { logDir, procs, gateways: [] };
  c.stop = async () => { await Promise.all(procs.map((p) => p.kill())); };
  process.once('exit', () => { for (const p of procs) if (!p.exited) p.child.kill('SIGKILL'); });
  try {
    const redisPort = await freePort();
    const redis = new Proc('redis', process.env.REDIS_SERVER ?? 'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, logDir);
    procs.push(redis);
    await waitFor('redis-server to accept connections', () => canConnect(redisPort));
    const env = {
      XSERVER_REDIS: `127.0.0.1:${redisPort}`, XSERVER_CLUSTER: 'jssdk', XSERVER_SECRET: 'js-sdk-test-secret',
      XSERVER_LOG_FORMAT: 'json', XSERVER_LOG_LEVEL: 'info',
    };
    const start = (name, bin, args) => {
      const p = new Proc(name, join(binDir, bin), args, env, logDir);
      procs.push(p);
      return p;
    };
    const mgr = start('mgrserver', 'mgrserver', ['-listen', '127.0.0.1:0']);
    await mgr.line('leading', (l) => l.msg === 'leading');
    for (const i of [1, 2]) {
      const g = start(`gateway-${i}`, 'gateway', ['-listen', '127.0.0.1:0', '-ws-listen', '127.0.0.1:0',
        '-intranet', '127.0.0.1:0', '-resume-window', resumeWindow]);
      const l = await g.line('started', (x) => x.msg === 'gateway started');
      c.gateways.push({ proc: g, id: l.node, tcp: l.client, ws: l.ws });
    }
    const login = start('login', 'login', ['-listen', '127.0.0.1:0']);
    c.loginUrl = `http://${(await login.line('listening', (l) => l.msg?.startsWith('login service listening'))).addr}`;
    c.echo = start('echo', 'echo', []);
    for (const g of c.gateways) {
      await c.echo.line(`linked to ${g.proc.name}`, (l) => l.msg === 'linked to gateway' && l.gateway === g.id);
    }
    c.login = login;
    c.mgr = mgr;
    await waitFor('a login to succeed', async () => {
      const r = await fetch(`${c.loginUrl}/login`, { method: 'POST', body: JSON.stringify({ account: 'probe', password: 'xserver' }) });
      await r.arrayBuffer();
      return r.ok;
    });
    /** gatewayOf returns the gateway whose TCP or WebSocket address is addr. */
    c.gatewayOf = (addr) => c.gateways.find((g) => g.tcp === addr || g.ws === addr);
    /** lostAccount says whether the echo node reported the account's session as ended (lose-account). */
    c.lostAccount = (account) => c.echo.lines.some((l) => l.msg === 'player session ended' && l.account === account);
    return c;
  } catch (e) {
    await c.stop();
    throw new Error(`${e.message} (logs in ${logDir})`, { cause: e });
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * startProxy forwards TCP connections (TCP or WebSocket, it does not
 * care) to target. cut() resets every connection at once, as a network
 * change or a dead peer would; block(true) makes it accept and reset new
 * connections at once, so a gateway looks unreachable.
 */
export async function startProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const socks = new Set();
  let blocked = false;
  const server = createServer((down) => {
    if (blocked) {
      down.resetAndDestroy();
      return;
    }
    const up = connect(port, host);
    for (const [a, b] of [[down, up], [up, down]]) {
      socks.add(a);
      a.on('data', (d) => b.write(d));
      a.on('error', () => b.destroy());
      a.on('close', () => { socks.delete(a); b.destroy(); });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${server.address().port}`,
    connections: () => socks.size / 2,
    cut() {
      for (const s of socks) s.resetAndDestroy();
      socks.clear();
    },
    block(on) {
      blocked = on;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
