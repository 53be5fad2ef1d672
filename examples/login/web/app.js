// The example game's browser client. It logs in at the login service
// (POST /login on this origin) and plays through the xserver JavaScript SDK
// (clients/js; a copy of its modules is in sdk/): a resumable session over
// WebSocket, resumed automatically after a lost connection, with the
// lobby's JSON bodies (examples/internal/game/game.go). No build step.

import * as sdk from './sdk/index.js';

const { Client, KickError, LoginError, login, codeText } = sdk;

// Commands of the example game: requests are answered with the same cmd.
const Cmd = Object.freeze({
  ENTER: 4001, WORLD: 4002, PRIVATE: 4003, ONLINE: 4004, QUEUE: 4005,
  PUSH_PRESENCE: 4010, PUSH_WORLD: 4011, PUSH_PRIVATE: 4012, PUSH_MATCHED: 4013,
});

// The SDK's protocol helpers, for other scripts and for the browser test.
window.xserverClient = sdk.wire;

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

let session = null;          // the Client once logged in
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

// KEEP_LINES is how many chat and event lines the page keeps.
const KEEP_LINES = 200;

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
    const ticket = await login('', account, ui.password.value); // POST /login on this origin
    if (!ticket.websocket) throw new Error('the gateway has no WebSocket listener (-ws-listen)');
    await connect(ticket, name);
  } catch (e) {
    if (session) return; // connected; the session reports its own end
    setStatus('offline', 'offline');
    showAlert(`Login failed: ${e instanceof LoginError ? e.detail : whyEnded(e)}.`);
    ui.loginButton.disabled = false;
  }
}

// whyEnded words the error a session ended with.
function whyEnded(e) {
  if (e instanceof KickError) {
    const why = codeText(e.code);
    const by = e.source === 'login' ? 'The gateway refused the login' : 'Disconnected by the server';
    return `${by}: ${why}${e.reason && e.reason !== why ? ` (${e.reason})` : ''}`;
  }
  return e.message;
}

// connect logs in at the gateway with a resumable session: a lost
// connection is resumed (at this gateway, or at the one GET /gateway
// names) without losing or repeating a message, while the page says
// "reconnecting…".
async function connect(ticket, name) {
  me = { account: ticket.account, name };
  setStatus('connecting', `connecting to ${ticket.websocket}…`);
  const c = new Client({ ticket, loginUrl: '' });
  c.on('message', (m) => {
    let body;
    try {
      body = m.json();
    } catch {
      body = null; // not this game's JSON; onData says so
    }
    onData(m.cmd, body);
  });
  c.on('notDelivered', ({ cmd, code }) => {
    note(`Message ${cmd} was not delivered: ${codeText(code)}.`, 'error');
    if (cmd === Cmd.QUEUE) ui.queue.disabled = false;
  });
  c.on('disconnected', () => {
    setStatus('reconnecting', 'reconnecting…');
    note('Connection lost; reconnecting…', 'presence');
  });
  c.on('reconnecting', ({ attempt }) => {
    if (attempt > 1) setStatus('reconnecting', `reconnecting… (attempt ${attempt})`);
  });
  c.on('resumed', ({ awayMs, resent, broadcastGap }) => {
    setStatus('online', `in the lobby as ${me.name}`);
    note(`Reconnected after ${awayMs} ms${resent ? `; ${resent} message${resent > 1 ? 's' : ''} sent again` : ''}.`, 'presence');
    if (broadcastGap) c.sendJSON(Cmd.ONLINE, {}); // broadcasts may be missing: refresh the list
  });
  c.on('ended', ({ error }) => {
    if (session !== c) return; // the player left
    session = null;
    leave();
    const reason = `${whyEnded(error)}.`;
    showAlert(reason);
    note(reason, 'error');
  });
  await c.connect();
  session = c;
  setStatus('connecting', 'entering the lobby…');
  c.sendJSON(Cmd.ENTER, { name });
}

// send sends a request to the lobby; false when there is no session.
function send(cmd, body) {
  if (!session) return false;
  session.sendJSON(cmd, body);
  return true;
}

function leave() {
  const c = session;
  session = null;
  if (c) c.close();
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
  if (text && send(Cmd.WORLD, { text })) ui.chatText.value = '';
});

ui.matchForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!send(Cmd.QUEUE, { mode: ui.mode.value.trim() })) return;
  ui.queue.disabled = true;
  ui.matchStatus.textContent = 'Queueing…';
});

ui.logout.addEventListener('click', () => {
  leave();
  note('You left.');
});

ui.account.value = `player-${Math.floor(1000 + Math.random() * 9000)}`;
