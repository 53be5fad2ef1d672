// Headless Chromium driven over the DevTools protocol with nothing but
// Node's WebSocket: start it, open a page, evaluate scripts in it.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function chromiumPath() {
  for (const p of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  throw new Error('chromium not found: apt-get install chromium, or set CHROMIUM');
}

/** startChromium starts a headless Chromium with a fresh profile and connects to its DevTools endpoint. */
export async function startChromium() {
  const profile = mkdtempSync(join(tmpdir(), 'xserver-js-chromium-'));
  const proc = spawn(chromiumPath(), [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--no-default-browser-check',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true }); // its own process group: killed whole
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const killAll = () => {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  process.once('exit', killAll);
  const url = await new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`chromium did not start:\n${err}`)), 20_000);
    proc.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited (${code}):\n${err}`)); });
  });
  const cdp = await connectCDP(url);
  return {
    cdp,
    /** page opens a tab at url and returns it once loaded. */
    async page(pageUrl) {
      const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
      const errors = [];
      cdp.on(sessionId, 'Runtime.exceptionThrown', (p) => errors.push(p.exceptionDetails?.exception?.description ?? p.exceptionDetails?.text));
      cdp.on(sessionId, 'Runtime.consoleAPICalled', (p) => {
        if (p.type === 'error') errors.push(p.args.map((a) => a.value ?? a.description).join(' '));
      });
      await cdp.send('Runtime.enable', {}, sessionId);
      await cdp.send('Page.enable', {}, sessionId);
      const loaded = cdp.once(sessionId, 'Page.loadEventFired');
      await cdp.send('Page.navigate', { url: pageUrl }, sessionId);
      await loaded;
      return {
        errors,
        /** evaluate runs an expression (awaiting a promise) and returns its JSON value; a thrown error fails. */
        async evaluate(expression) {
          const r = await cdp.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
          if (r.exceptionDetails) {
            throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
          }
          return r.result.value;
        },
        close: () => cdp.send('Target.closeTarget', { targetId }),
      };
    },
    async close() {
      cdp.close();
      killAll();
      await exited;
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}

// connectCDP opens the browser's DevTools WebSocket: send() calls a method
// (in a session, with flatten), on()/once() listen to events.
async function connectCDP(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  let id = 0;
  const calls = new Map();
  const listeners = [];
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.id !== undefined) {
      const c = calls.get(m.id);
      calls.delete(m.id);
      if (m.error) c.reject(new Error(`${c.method}: ${m.error.message}`));
      else c.resolve(m.result);
      return;
    }
    for (const l of [...listeners]) if (l.session === m.sessionId && l.method === m.method) l.fn(m.params);
  };
  ws.onclose = () => {
    for (const c of calls.values()) c.reject(new Error('DevTools connection closed'));
  };
  return {
    send(method, params = {}, sessionId) {
      return new Promise((resolve, reject) => {
        calls.set(++id, { method, resolve, reject });
        ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
      });
    },
    on(session, method, fn) {
      listeners.push({ session, method, fn });
    },
    once(session, method) {
      return new Promise((resolve) => {
        const l = { session, method, fn: (p) => { listeners.splice(listeners.indexOf(l), 1); resolve(p); } };
        listeners.push(l);
      });
    },
    close: () => ws.close(),
  };
}
