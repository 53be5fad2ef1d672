// The example game's browser client. It logs in at the login service
// (POST /login on this origin), opens a WebSocket to the gateway the
// ticket names and speaks the xserver client protocol (docs/PROTOCOL.md
// §3) with the lobby's JSON bodies (examples/internal/game/game.go).
// Plain JavaScript, no build step, no dependencies.
'use strict';

(() => {
  // ---- Client protocol -------------------------------------------------

  // Frame kinds (PROTOCOL.md §3.2).
  const Kind = Object.freeze({
    LOGIN: 100, LOGIN_ACK: 101, DATA: 102, KICK: 103, PING: 104, PONG: 105, ERROR: 106,
  });

  // Client codes (PROTOCOL.md §3.3), named as common/wire.CodeText does.
  const CODE_TEXT = [
    'ok', 'bad token', 'bad frame', 'frame too large', 'login timeout', 'cmd names no node type',
    'no node available', 'logged in elsewhere', 'kicked', 'idle timeout', 'too slow to read',
    'gateway shutting down', 'gateway full', 'login service unavailable',
  ];
  const codeText = (code) => CODE_TEXT[code] || `code ${code}`;

  // Commands of the example game: requests are answered with the same cmd.
  const Cmd = Object.freeze({
    ENTER: 4001n, WORLD: 4002n, PRIVATE: 4003n, ONLINE: 4004n, QUEUE: 4005n,
    PUSH_PRESENCE: 4010n, PUSH_WORLD: 4011n, PUSH_PRIVATE: 4012n, PUSH_MATCHED: 4013n,
  });

  const HEADER = 6;                // u32 length, u16 kind
  const MAX_FRAME = 1 << 20;       // refuse to buffer anything larger
  const PING_EVERY_MS = 30000;     // the gateway never pings; its idle limit is 5 min
  const KEEP_LINES = 200;          // chat and event lines kept on the page

  const enc = new TextEncoder();
  const dec = new TextDecoder();

  // frame encodes one frame: u32 length (2 + payload), u16 kind, payload.
  function frame(kind, payload) {
    const b = new Uint8Array(HEADER + payload.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, 2 + payload.length);
    v.setUint16(4, kind);
    b.set(payload, HEADER);
    return b;
  }

  // loginFrame: u8 account length, account, u16 token length, token.
  function loginFrame(account, token) {
    const a = enc.encode(account), t = enc.encode(token);
    const p = new Uint8Array(3 + a.length + t.length);
    p[0] = a.length;
    p.set(a, 1);
    new DataView(p.buffer).setUint16(1 + a.length, t.length);
    p.set(t, 3 + a.length);
    return frame(Kind.LOGIN, p);
  }

  // dataFrame: u64 cmd (a BigInt), then the data bytes.
  function dataFrame(cmd, data) {
    const p = new Uint8Array(8 + data.length);
    new DataView(p.buffer).setBigUint64(0, cmd);
    p.set(data, 8);
    return frame(Kind.DATA, p);
  }

  // pingFrame carries 8 opaque bytes (the send time); the pong echoes them.
  function pingFrame() {
    const p = new Uint8Array(8);
    new DataView(p.buffer).setBigUint64(0, BigInt(Date.now()));
    return frame(Kind.PING, p);
  }

  // FrameReader splits a byte stream into frames. WebSocket messages are
  // one stream: a message may hold several frames, a frame may span
  // messages, so bytes wait in a buffer until a whole frame is there.
  class FrameReader {
    constructor() {
      this.buf = new Uint8Array(0);
    }

    // push adds a chunk and returns the frames it completed, as
    // {kind, payload}; it throws on a length no stream can recover from.
    push(chunk) {
      const joined = new Uint8Array(this.buf.length + chunk.length);
      joined.set(this.buf);
      joined.set(chunk, this.buf.length);
      this.buf = joined;
      const frames = [];
      while (this.buf.length >= HEADER) {
        const v = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
        const len = v.getUint32(0);
        if (len < 2 || len > MAX_FRAME) throw new Error(`bad frame length ${len}`);
        if (this.buf.length < 4 + len) break; // wait for the rest
        frames.push({ kind: v.getUint16(4), payload: this.buf.slice(HEADER, 4 + len) });
        this.buf = this.buf.subarray(4 + len);
      }
      return frames;
    }
  }

  // Session is one gateway connection. It sends the login frame when the
  // socket opens and reports through the handlers in `on`:
  //   loggedIn()                 LoginAck code 0
  //   data(cmd, body)            a data frame, body parsed from JSON
  //   notDelivered(cmd, code)    ClientError: one message was dropped
  //   ended(reason)              the session is over (not after close())
  class Session {
    constructor(ticket, on) {
      this.on = on;
      this.ended = false;
      this.reader = new FrameReader();
      this.pinger = 0;
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      this.ws = new WebSocket(`${scheme}://${ticket.websocket}/ws`);
      this.ws.binaryType = 'arraybuffer';
      this.ws.onopen = () => this.ws.send(loginFrame(ticket.account, ticket.token));
      this.ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
      this.ws.onclose = (ev) => this.end(`Connection closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''}).`);
      this.ws.onerror = () => {}; // onclose follows with the code
    }

    receive(chunk) {
      try {
        for (const f of this.reader.push(chunk)) this.dispatch(f.kind, f.payload);
      } catch (e) {
        this.end(`Protocol error: ${e.message}.`);
        this.ws.close();
      }
    }

    dispatch(kind, p) {
      const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
      switch (kind) {
        case Kind.LOGIN_ACK: {
          const code = v.getUint16(0);
          if (code !== 0) {
            this.end(`The gateway refused the login: ${codeText(code)}.`);
            return;
          }
          this.pinger = setInterval(() => this.write(pingFrame()), PING_EVERY_MS);
          this.on.loggedIn();
          return;
        }
        case Kind.DATA: {
          const cmd = v.getBigUint64(0);
          let body;
          try {
            body = JSON.parse(dec.decode(p.subarray(8)));
          } catch {
            body = null; // not this game's JSON; the handler ignores it
          }
          this.on.data(cmd, body);
          return;
        }
        case Kind.KICK: {
          const code = v.getUint16(0), reason = dec.decode(p.subarray(2));
          // Every kick is final; after "logged in elsewhere" (7) a client
          // must not reconnect on its own, and this one never does.
          const why = codeText(code);
          this.end(`Disconnected by the server: ${why}${reason && reason !== why ? ` (${reason})` : ''}.`);
          return;
        }
        case Kind.ERROR:
          this.on.notDelivered(v.getBigUint64(2), v.getUint16(0));
          return;
        default:
          return; // pongs, and kinds from the future
      }
    }

    // send writes one data frame with body as JSON; false when the
    // session is not open.
    send(cmd, body) {
      return this.write(dataFrame(cmd, enc.encode(JSON.stringify(body))));
    }

    write(bytes) {
      if (this.ended || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(bytes);
      return true;
    }

    // close ends the session on the player's request (no ended report).
    close() {
      this.stop();
      this.ws.close(1000, 'bye');
    }

    end(reason) {
      if (this.ended) return;
      this.stop();
      this.on.ended(reason);
    }

    stop() {
      this.ended = true;
      clearInterval(this.pinger);
    }
  }

  // The protocol helpers, for other scripts and for the browser test.
  window.xserverClient = Object.freeze({ Kind, Cmd, codeText, frame, loginFrame, dataFrame, FrameReader });

  // ---- Page --------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'), alert: $('alert'),
    loginPanel: $('login-panel'), loginForm: $('login-form'), loginButton: $('login-button'),
    account: $('account'), name: $('name'), password: $('password'),
    lobby: $('lobby'), online: $('online'), onlineCount: $('online-count'),
    chat: $('chat'), chatForm: $('chat-form'), chatText: $('chat-text'),
    matchForm: $('match-form'), mode: $('mode'), queue: $('queue'),
    matchStatus: $('match-status'), matches: $('matches'), logout: $('logout'),
    events: $('events'),
  };

  let session = null;
  let me = null;               // { account, name } once logged in
  const online = new Map();    // account → name

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function showAlert(text) {
    ui.alert.textContent = text;
    ui.alert.hidden = false;
  }

  // item appends <li class=cls>text</li> to list, drops the oldest lines
  // beyond KEEP_LINES and keeps the new one in view.
  function item(list, text, cls) {
    const li = document.createElement('li');
    li.textContent = text;
    if (cls) li.className = cls;
    list.append(li);
    while (list.children.length > KEEP_LINES) list.firstElementChild.remove();
    li.scrollIntoView({ block: 'nearest' });
    return li;
  }

  function note(text, cls) {
    const li = item(ui.events, text, cls);
    li.title = new Date().toLocaleTimeString();
  }

  function renderOnline() {
    const players = [...online].sort((a, b) => a[1].localeCompare(b[1]) || a[0].localeCompare(b[0]));
    ui.online.replaceChildren(...players.map(([account, name]) => {
      const li = document.createElement('li');
      li.dataset.account = account;
      li.textContent = account === me.account ? `${name} (you)` : name;
      if (name !== account) li.title = account;
      return li;
    }));
    ui.onlineCount.textContent = String(online.size);
  }

  // chatLine shows a game.ChatLine as "<name>: <text>".
  function chatLine(line, cls) {
    const li = item(ui.chat, `${line.name}: ${line.text}`, cls);
    li.classList.toggle('mine', line.from === me.account);
    li.dataset.from = line.from;
    li.title = `${line.from} at ${new Date(line.ts).toLocaleTimeString()}`;
  }

  function showLobby(inLobby) {
    ui.lobby.hidden = !inLobby;
    ui.loginPanel.hidden = inLobby;
    ui.loginButton.disabled = false;
  }

  async function logIn(ev) {
    ev.preventDefault();
    ui.alert.hidden = true;
    const account = ui.account.value.trim();
    const name = ui.name.value.trim() || account;
    ui.loginButton.disabled = true;
    setStatus('connecting', 'logging in…');
    try {
      const resp = await fetch('login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ account, password: ui.password.value }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
      if (!body.websocket) throw new Error('the gateway has no WebSocket listener (-ws-listen)');
      connect(body, name);
    } catch (e) {
      setStatus('offline', 'offline');
      showAlert(`Login failed: ${e.message}.`);
      ui.loginButton.disabled = false;
    }
  }

  function connect(ticket, name) {
    me = { account: ticket.account, name };
    setStatus('connecting', `connecting to ${ticket.websocket}…`);
    session = new Session(ticket, {
      loggedIn() {
        setStatus('connecting', 'entering the lobby…');
        session.send(Cmd.ENTER, { name });
      },
      data: onData,
      notDelivered(cmd, code) {
        note(`Message ${cmd} was not delivered: ${codeText(code)}.`, 'error');
        if (cmd === Cmd.QUEUE) ui.queue.disabled = false;
      },
      ended(reason) {
        session = null;
        leave();
        showAlert(reason);
        note(reason, 'error');
      },
    });
  }

  function leave() {
    if (session) session.close();
    session = null;
    online.clear();
    ui.online.replaceChildren();
    ui.onlineCount.textContent = '0';
    setStatus('offline', 'offline');
    showLobby(false);
  }

  function onData(cmd, body) {
    if (body === null || typeof body !== 'object') {
      note(`Unreadable message ${cmd}.`, 'error');
      return;
    }
    switch (cmd) {
      case Cmd.ENTER: // game.EnterReply
        if (!body.ok) {
          leave();
          showAlert(`The lobby refused you: ${body.error}.`);
          return;
        }
        online.clear();
        for (const p of body.online || []) online.set(p.account, p.name);
        online.set(me.account, me.name);
        renderOnline();
        ui.chat.replaceChildren();
        ui.matches.replaceChildren();
        ui.matchStatus.textContent = 'Not queued.';
        ui.queue.disabled = false;
        showLobby(true);
        setStatus('online', `in the lobby as ${me.name}`);
        note(`You entered the lobby as ${me.name}.`);
        ui.chatText.focus();
        return;
      case Cmd.WORLD: // game.Ack
        if (!body.ok) note(`Your message was refused: ${body.error}.`, 'error');
        return;
      case Cmd.QUEUE: // game.Ack
        if (body.ok) {
          ui.matchStatus.textContent = `Waiting for an opponent (${ui.mode.value})…`;
        } else {
          ui.matchStatus.textContent = `Not queued: ${body.error}.`;
          ui.queue.disabled = false;
        }
        return;
      case Cmd.ONLINE: // game.OnlineList
        online.clear();
        for (const p of body.online || []) online.set(p.account, p.name);
        renderOnline();
        return;
      case Cmd.PUSH_PRESENCE: // game.Presence
        if (body.online) {
          const known = online.has(body.account);
          online.set(body.account, body.name);
          if (!known) note(`${body.name} came online.`, 'presence');
        } else if (online.delete(body.account)) {
          note(`${body.name} left.`, 'presence');
        }
        renderOnline();
        return;
      case Cmd.PUSH_WORLD: // game.ChatLine
        chatLine(body, 'line');
        return;
      case Cmd.PUSH_PRIVATE: // game.ChatLine
        chatLine(body, 'line private');
        return;
      case Cmd.PUSH_MATCHED: { // game.Matched
        const who = body.opponent.name || body.opponent.account;
        ui.matchStatus.textContent = `Matched against ${who}!`;
        item(ui.matches, `${body.mode}: you vs ${who} (match ${body.match_id})`, 'match');
        note(`Matched against ${who} in ${body.mode}.`);
        ui.queue.disabled = false;
        return;
      }
      default:
        note(`Unknown message ${cmd}.`);
    }
  }

  ui.loginForm.addEventListener('submit', logIn);

  ui.chatForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = ui.chatText.value.trim();
    if (!text || !session) return;
    if (session.send(Cmd.WORLD, { text })) ui.chatText.value = '';
  });

  ui.matchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!session || !session.send(Cmd.QUEUE, { mode: ui.mode.value.trim() })) return;
    ui.queue.disabled = true;
    ui.matchStatus.textContent = 'Queueing…';
  });

  ui.logout.addEventListener('click', () => {
    leave();
    note('You left.');
  });

  ui.account.value = `player-${Math.floor(1000 + Math.random() * 9000)}`;
})();
