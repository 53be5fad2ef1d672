// The Client: one player's session with an xserver cluster. It owns the
// connection, drives the pure SessionCore, and resumes the session after a
// lost connection (PROTOCOL.md §3.10.6).
import { SessionCore, backoff } from './core.js';
import { ClosedError, ConnectionError, KickError, XserverError } from './errors.js';
import { lookupGateway } from './login.js';
import { webSocket } from './transport.js';
import { Code, FrameReader, Kind, PROTOCOL_V2, ProtocolError, RESUMED_BROADCAST_GAP, codeName, decodeCoded, decodeData, decodeError, decodeMsgAck, decodePong, decodePush, decodeResumed, decodeShed, decodeSession, decodeStream, decodeStreamEnd, encodeLogin, encodePing, frame, fromU64, toBytes, } from './wire.js';
const dec = new TextDecoder();
/** One message from a node (or a broadcast, on stream 0). */
export class Message {
    cmd;
    data;
    stream;
    constructor(
    /** The cmd the node chose; a number, or a bigint above 2^53-1. */
    cmd, 
    /** The data (the Message's own copy). */
    data, 
    /** The stream it came on: 0 for broadcasts to every client of the gateway. */
    stream) {
        this.cmd = cmd;
        this.data = data;
        this.stream = stream;
    }
    /** The data as UTF-8 text. */
    text() {
        return dec.decode(this.data);
    }
    /** The data parsed as JSON. */
    json() {
        return JSON.parse(this.text());
    }
}
// Link is one connection: its reader, its write batching and what it is
// waiting for. A Link that is not the Client's current one is ignored.
class Link {
    reader;
    phase = 'login';
    waiter;
    out = [];
    scheduled = false;
    closed = false;
    conn;
    constructor(maxFrame) {
        this.reader = new FrameReader(maxFrame);
    }
    /** write queues a frame; frames written in one turn go out in as few writes as the transport allows. */
    write(b) {
        if (this.closed)
            return;
        this.out.push(b);
        if (!this.scheduled) {
            this.scheduled = true;
            queueMicrotask(() => this.flush());
        }
    }
    flush() {
        this.scheduled = false;
        if (this.closed || this.out.length === 0)
            return;
        const limit = this.conn.maxWrite ?? Infinity;
        let batch = [], size = 0;
        const send = () => {
            if (batch.length === 1)
                this.conn.write(batch[0]);
            else if (batch.length > 1) {
                const b = new Uint8Array(size);
                let o = 0;
                for (const x of batch) {
                    b.set(x, o);
                    o += x.length;
                }
                this.conn.write(b);
            }
            batch = [];
            size = 0;
        };
        for (const f of this.out) {
            if (size > 0 && size + f.length > limit)
                send();
            batch.push(f);
            size += f.length;
        }
        send();
        this.out = [];
    }
    /** close closes the connection; graceful: once the peer closed too (see Connection.end). */
    close(graceful = false) {
        if (this.closed)
            return;
        this.flush();
        this.closed = true;
        if (graceful && this.conn?.end)
            this.conn.end();
        else
            this.conn?.close();
    }
}
/**
 * Client is a player's session with an xserver cluster, over WebSocket (the
 * default) or TCP. connect() logs in with a resumable session (protocol
 * version 2). A lost connection is resumed automatically, on the same
 * gateway or on another one, and no message is lost or repeated in either
 * direction; events say what happens. Everything runs on the caller's
 * event loop: listeners are called synchronously, in order.
 */
export class Client {
    opts;
    ticket;
    dial;
    lookup;
    coreConfig;
    listeners = {};
    st = 'idle';
    target;
    link;
    core;
    endError;
    stop = new AbortController(); // aborted by end(): cancels the backoff's sleep
    attemptCtl; // the connection attempt under way; end() aborts it
    // quitting: close() was called while away; the next resume logs out.
    quitting;
    wake; // the backoff's sleep under way; close() cuts it short
    pingTimer;
    pingWaiting = false;
    pingSentAt = 0;
    pingSeq = 0n;
    pings = new Map();
    ackTimer;
    drainers = [];
    resuming;
    constructor(options) {
        const t = options.ticket;
        if (!t || typeof t.account !== 'string' || typeof t.token !== 'string' || typeof t.gateway !== 'string') {
            throw new TypeError('Client: options.ticket needs account, token and gateway (what the login service returned)');
        }
        this.ticket = t;
        this.target = { gateway: t.gateway, websocket: t.websocket ?? '', gateway_id: t.gateway_id ?? '' };
        this.dial = options.transport ?? webSocket();
        const loginUrl = options.loginUrl;
        this.lookup = options.lookupGateway ??
            (loginUrl !== undefined ? (signal) => lookupGateway(loginUrl, { signal }) : undefined);
        const pos = (v, d) => (v !== undefined && v > 0 ? v : d);
        const min = pos(options.backoffMinMs, 50);
        this.opts = {
            backoffMinMs: min,
            backoffMaxMs: Math.max(min, pos(options.backoffMaxMs, 2000)),
            pingEveryMs: pos(options.pingEveryMs, 5000),
            connectTimeoutMs: pos(options.connectTimeoutMs, 5000),
            maxFrame: pos(options.maxFrame, 1 << 20),
            maxSendFrame: pos(options.maxSendFrame, 65_536),
            random: options.random ?? Math.random,
        };
        this.coreConfig = {};
        if (options.ackEvery !== undefined)
            this.coreConfig.ackEvery = options.ackEvery;
        if (options.ackDelayMs !== undefined)
            this.coreConfig.ackDelayMs = options.ackDelayMs;
        if (options.maxQueued !== undefined)
            this.coreConfig.maxQueued = options.maxQueued;
    }
    /** Where the client is: idle, connecting, live, resuming (away, trying to resume) or ended. */
    get state() {
        return this.st;
    }
    /** The account. */
    get account() {
        return this.ticket.account;
    }
    /** The gateway the session is at (or was last at, while resuming). */
    get gateway() {
        return { ...this.target };
    }
    /** The session id, once logged in. */
    get sessionId() {
        return this.core?.session.sid;
    }
    /** Messages sent and not yet acknowledged, plus those waiting for room in the window. */
    get unacked() {
        return this.core ? this.core.unacked + this.core.queued : 0;
    }
    /** Why the client ended (undefined until it did). */
    get error() {
        return this.endError;
    }
    /** on adds a listener and returns a function that removes it. */
    on(event, fn) {
        let set = this.listeners[event];
        if (!set) {
            set = new Set();
            this.listeners[event] = set;
        }
        set.add(fn);
        return () => this.off(event, fn);
    }
    /** off removes a listener. */
    off(event, fn) {
        this.listeners[event]?.delete(fn);
    }
    emit(event, e) {
        const set = this.listeners[event];
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(e);
            }
            catch (err) {
                // A listener's bug must not break the session: report it as uncaught.
                queueMicrotask(() => { throw err; });
            }
        }
    }
    /**
     * connect logs in at the ticket's gateway and resolves once the session
     * is live. A refusal rejects with a KickError (code 1 BadToken: get a new
     * ticket; 13 Unavailable or 11 Shutdown: retry later or elsewhere).
     */
    async connect() {
        if (this.st !== 'idle')
            throw new XserverError(`connect: the client is ${this.st}`);
        this.st = 'connecting';
        const deadline = this.newAttempt();
        const timer = setTimeout(() => deadline.abort(), this.opts.connectTimeoutMs);
        try {
            const link = await this.open(this.target, deadline.signal);
            link.phase = 'login';
            link.write(encodeLogin(this.ticket.account, this.ticket.token, PROTOCOL_V2));
            this.link = link;
            await this.answer(link, deadline.signal, 'login');
        }
        catch (err) {
            const e = err instanceof XserverError ? err : new ConnectionError(String(err?.message ?? err), { cause: err });
            this.end(e);
            throw this.endError;
        }
        finally {
            clearTimeout(timer);
        }
    }
    /**
     * send sends a message to the node type cmd names (cmd / the gateway's
     * offset, PROTOCOL.md §3.4). It is delivered exactly once, in order,
     * across lost connections: it is kept until acknowledged and sent again
     * after a resume. It never blocks: beyond the session's max_unacked, a
     * message waits in the client until acknowledgements make room.
     */
    send(cmd, data) {
        if (this.st === 'ended')
            throw this.endError ?? new ClosedError();
        if (this.quitting)
            throw new ClosedError();
        if (!this.core)
            throw new XserverError('send: not logged in yet (await connect())');
        const d = toBytes(data);
        if (2 + 12 + d.length > this.opts.maxSendFrame) {
            throw new RangeError(`send: ${d.length} bytes of data make a frame over the gateway's limit of ${this.opts.maxSendFrame}`);
        }
        const f = this.core.send(cmd, d);
        if (f)
            this.link?.write(f);
    }
    /** sendJSON sends JSON.stringify(value) as the data. */
    sendJSON(cmd, value) {
        this.send(cmd, JSON.stringify(value));
    }
    /** drain resolves once every message sent so far is acknowledged (processed by its node or answered with notDelivered). */
    drain() {
        if (this.st === 'ended')
            return Promise.reject(this.endError ?? new ClosedError());
        if (this.unacked === 0)
            return Promise.resolve();
        return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
    }
    /** ping sends a ClientPing and resolves with the round trip in ms (rejects if the connection is lost first). */
    ping() {
        const link = this.link;
        if (this.st !== 'live' || !link)
            return Promise.reject(new XserverError(`ping: the client is ${this.st}`));
        const seq = ++this.pingSeq;
        return new Promise((resolve, reject) => {
            this.pings.set(seq, { sentAt: now(), resolve, reject });
            link.write(encodePing(seq));
        });
    }
    /**
     * close logs out and ends the client: the session ends at once on the
     * gateway (ClientLogout; resume is for lost connections, not for a
     * player who quits). The ended event follows, with a ClosedError. Safe to
     * call twice. Called while the client is between connections (resuming
     * after a loss), it makes one more resume at once and logs out on it;
     * the ended event then follows that resume, within connectTimeoutMs.
     * When none succeeds, the session ends when its resume window passes
     * (lose-account then, once).
     */
    close() {
        if (this.st === 'resuming' && !this.link) {
            if (this.quitting)
                return;
            const timer = setTimeout(() => this.end(new ClosedError()), this.opts.connectTimeoutMs);
            this.quitting = { timer, failed: 0 };
            this.wake?.abort(); // one more attempt at once
            return;
        }
        const link = this.st === 'ended' ? undefined : this.link;
        if (link)
            this.logout(link);
        this.end(new ClosedError());
    }
    // logout writes ClientLogout on link and closes it gracefully: the
    // gateway closes the connection once it has the logout, and closing
    // first with bytes unread here could reset the connection and make the
    // gateway drop the logout unread.
    logout(link) {
        link.write(frame(Kind.Logout));
        if (this.link === link) {
            this.link = undefined;
            this.stopTimers();
        }
        this.settle(link, new ClosedError());
        link.close(true);
    }
    /**
     * abandon ends the client without logging out: the session waits for
     * its resume window on the gateway, as after a lost connection.
     */
    abandon() {
        this.end(new ClosedError());
    }
    // ---- Connections ----------------------------------------------------
    // newAttempt starts a connection attempt: end() aborts it.
    newAttempt() {
        this.attemptCtl = new AbortController();
        return this.attemptCtl;
    }
    // open dials a gateway. The caller writes the login or the resume and
    // then makes the link the current one, in the same turn: send() writes
    // to the current link, and nothing may come before the handshake frame.
    async open(to, signal) {
        const link = new Link(this.opts.maxFrame);
        const conn = await this.dial(to, {
            data: (chunk) => this.onData(link, chunk),
            closed: (err) => this.onClosed(link, err ?? new ConnectionError('connection closed')),
        }, signal);
        link.conn = conn;
        if (this.st === 'ended') {
            link.close();
            throw this.endError ?? new ClosedError();
        }
        return link;
    }
    // answer waits until the link's handshake (login or resume) is answered.
    answer(link, signal, what) {
        return new Promise((resolve, reject) => {
            const onAbort = () => {
                this.failHandshake(link, this.st === 'ended' ? this.endError ?? new ClosedError()
                    : new ConnectionError(`no ${what} answer from ${link.conn.label} within ${this.opts.connectTimeoutMs} ms`));
            };
            link.waiter = {
                resolve: () => { signal.removeEventListener('abort', onAbort); resolve(); },
                reject: (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
            };
            if (signal.aborted)
                onAbort();
            else
                signal.addEventListener('abort', onAbort, { once: true });
        });
    }
    // settle ends a link's handshake.
    settle(link, err) {
        const w = link.waiter;
        link.waiter = undefined;
        if (!w)
            return;
        if (err)
            w.reject(err);
        else
            w.resolve();
    }
    // dropLink closes a link; it stops being the current one first, so that
    // the transport's closed report that may follow is ignored.
    dropLink(link) {
        if (this.link === link) {
            this.link = undefined;
            this.stopTimers();
        }
        link.close();
    }
    // failHandshake fails a link's login or resume with err, then closes it.
    failHandshake(link, err) {
        this.settle(link, err);
        this.dropLink(link);
    }
    onClosed(link, err) {
        if (link.waiter)
            this.failHandshake(link, err);
        else if (link === this.link)
            this.lost(link, err, false);
    }
    onData(link, chunk) {
        if (link !== this.link || link.closed)
            return;
        let frames;
        try {
            frames = link.reader.push(chunk);
        }
        catch (err) {
            this.failLink(link, err);
            return;
        }
        for (const f of frames) {
            if (link !== this.link || link.closed)
                return; // the connection ended meanwhile
            this.pingWaiting = false;
            try {
                this.onFrame(link, f);
            }
            catch (err) {
                this.failLink(link, err);
                return;
            }
        }
        if (link === this.link && link.phase === 'live')
            this.flushAcks(link);
    }
    // failLink ends a connection that broke the protocol: a handshake fails,
    // a live session resumes.
    failLink(link, err) {
        const e = err instanceof XserverError ? err : new ConnectionError(`protocol error from ${link.conn.label}: ${err.message}`, { cause: err });
        if (link.waiter) {
            this.failHandshake(link, e);
        }
        else {
            this.lost(link, e, false);
        }
    }
    // ---- Frames -----------------------------------------------------------
    onFrame(link, f) {
        const p = f.payload;
        switch (link.phase) {
            case 'login': {
                if (f.kind !== Kind.LoginAck && f.kind !== Kind.Kick)
                    throw new ProtocolError(`kind ${f.kind} before the login answer`);
                const c = decodeCoded(p);
                if (f.kind === Kind.Kick || c.code !== Code.OK) {
                    this.failHandshake(link, new KickError(c.code, c.text, f.kind === Kind.Kick ? 'kick' : 'login'));
                    return;
                }
                link.phase = 'session';
                return;
            }
            case 'session': {
                if (f.kind !== Kind.Session)
                    throw new ProtocolError(`kind ${f.kind} instead of ClientSession: the gateway does not speak protocol version 2`);
                this.core = new SessionCore(this.ticket.account, decodeSession(p), this.coreConfig);
                link.phase = 'live';
                this.st = 'live';
                this.startTimers(link);
                this.emit('connected', {
                    gateway: link.conn.label, sessionId: this.core.session.sid, windowMs: this.core.session.windowMs,
                    maxUnacked: this.core.session.maxUnacked,
                });
                this.settle(link);
                return;
            }
            case 'resume': {
                let r;
                if (f.kind === Kind.Resumed)
                    r = decodeResumed(p);
                else if (f.kind === Kind.Kick)
                    r = { ...decodeCoded(p), msgAck: 0, flags: 0 };
                else
                    throw new ProtocolError(`kind ${f.kind} before the resume answer`);
                if (r.code !== Code.OK) {
                    this.failHandshake(link, new KickError(r.code, r.text, f.kind === Kind.Kick ? 'kick' : 'resume'));
                    return;
                }
                const core = this.core;
                link.phase = 'live';
                this.st = 'live';
                for (const m of core.onResumed(r.msgAck))
                    link.write(m);
                this.startTimers(link);
                const rs = this.resuming ?? { lostAt: now(), attempts: 1, resent: 0 };
                this.resuming = undefined;
                if (rs.to)
                    this.target = rs.to; // before the event: client.gateway is the new one
                this.emit('resumed', {
                    gateway: link.conn.label, awayMs: Math.round(now() - rs.lostAt), resent: rs.resent,
                    broadcastGap: (r.flags & RESUMED_BROADCAST_GAP) !== 0, attempts: rs.attempts,
                });
                this.settle(link);
                this.checkDrained();
                return;
            }
            case 'live':
                this.onLiveFrame(link, f.kind, p);
                return;
        }
    }
    onLiveFrame(link, kind, p) {
        const core = this.core;
        switch (kind) {
            case Kind.Push: {
                const m = decodePush(p);
                if (core.onPush(now(), m.stream, m.seq))
                    this.emit('message', new Message(fromU64(m.cmd), m.data, m.stream));
                return;
            }
            case Kind.Stream:
                core.onStream(decodeStream(p));
                return;
            case Kind.StreamEnd:
                core.onStreamEnd(decodeStreamEnd(p));
                return;
            case Kind.MsgAck: {
                for (const m of core.onMsgAck(decodeMsgAck(p)))
                    link.write(m);
                this.checkDrained();
                return;
            }
            case Kind.Error: {
                const e = decodeError(p);
                this.emit('notDelivered', { cmd: fromU64(e.cmd), code: e.code, codeName: codeName(e.code) });
                return;
            }
            case Kind.Shed: {
                const sh = decodeShed(p);
                core.onShed(sh.stream, sh.through);
                this.emit('shed', sh);
                return;
            }
            case Kind.Pong: {
                const seq = decodePong(p);
                const w = this.pings.get(seq);
                if (w) {
                    this.pings.delete(seq);
                    w.resolve(now() - w.sentAt);
                }
                return;
            }
            case Kind.Kick: {
                const c = decodeCoded(p);
                if (c.code === Code.Shutdown && core.session.windowMs > 0) {
                    // The gateway drains: resume elsewhere.
                    this.lost(link, new KickError(c.code, c.text, 'kick'), true);
                    return;
                }
                this.end(new KickError(c.code, c.text, 'kick'));
                return;
            }
            case Kind.Data: {
                // Not sent in a version 2 session; delivered rather than dropped.
                const d = decodeData(p);
                this.emit('message', new Message(fromU64(d.cmd), d.data, -1));
                return;
            }
            default:
                return; // a kind from the future
        }
    }
    // flushAcks writes a ClientAck when one is due, or arms the timer for it.
    flushAcks(link) {
        const core = this.core;
        const a = core.ackDue(now());
        if (a) {
            link.write(a);
            return;
        }
        const at = core.nextAckAt();
        if (at !== undefined && this.ackTimer === undefined) {
            this.ackTimer = setTimeout(() => {
                this.ackTimer = undefined;
                const l = this.link;
                if (l && l.phase === 'live') {
                    const f = core.ackNow();
                    if (f)
                        l.write(f);
                }
            }, Math.max(0, at - now()));
        }
    }
    checkDrained() {
        if (this.unacked !== 0 || this.drainers.length === 0)
            return;
        const ds = this.drainers;
        this.drainers = [];
        for (const d of ds)
            d.resolve();
    }
    // ---- Liveness -----------------------------------------------------------
    startTimers(link) {
        this.stopTimers();
        this.pingWaiting = false;
        this.pingTimer = setInterval(() => {
            if (this.link !== link || link.phase !== 'live')
                return;
            const t = now();
            if (this.pingWaiting) {
                if (t - this.pingSentAt >= 2 * this.opts.pingEveryMs) {
                    this.lost(link, new ConnectionError(`no answer from ${link.conn.label} for ${Math.round(t - this.pingSentAt)} ms`), false);
                }
                return;
            }
            this.pingWaiting = true;
            this.pingSentAt = t;
            link.write(encodePing(0n));
        }, this.opts.pingEveryMs);
    }
    stopTimers() {
        if (this.pingTimer !== undefined)
            clearInterval(this.pingTimer);
        if (this.ackTimer !== undefined)
            clearTimeout(this.ackTimer);
        this.pingTimer = this.ackTimer = undefined;
        const err = new ConnectionError('connection lost before the pong');
        for (const w of this.pings.values())
            w.reject(err);
        this.pings.clear();
    }
    // ---- Losing and resuming the connection ---------------------------------
    // lost handles the loss of the live connection: resume, or end when the
    // session cannot be resumed.
    lost(link, err, draining) {
        if (link !== this.link || this.st !== 'live')
            return;
        this.dropLink(link);
        const core = this.core;
        if (core.session.windowMs === 0) {
            this.end(new ConnectionError(`connection lost and the gateway has resume off: ${err.message}`, { cause: err }));
            return;
        }
        this.st = 'resuming';
        this.resuming = { lostAt: now(), attempts: 0, resent: 0 };
        this.emit('disconnected', { gateway: link.conn.label, error: err });
        void this.reconnect(draining);
    }
    // reconnect resumes the session: at the last gateway first (unless it is
    // draining), then at the one lookupGateway names, with jittered, capped
    // backoff between attempts, until it resumes, is refused for good, or the
    // resume window has passed.
    async reconnect(draining) {
        const core = this.core;
        const rs = this.resuming;
        let failures = draining ? 1 : 0;
        for (let attempt = 0; this.st === 'resuming'; attempt++) {
            // The gateway counts the window from when it noticed the loss, which
            // may be later than here: give up only well after it.
            if (now() - rs.lostAt > core.session.windowMs + this.opts.connectTimeoutMs + this.opts.backoffMaxMs) {
                this.end(new KickError(Code.Expired, `no gateway reached within the resume window (${core.session.windowMs} ms)`, 'client'));
                return;
            }
            const deadline = this.newAttempt();
            const timer = setTimeout(() => deadline.abort(), this.opts.connectTimeoutMs);
            try {
                let to = this.target;
                if (failures > 0 && this.lookup) {
                    try {
                        to = await this.lookup(deadline.signal);
                    }
                    catch {
                        // Keep trying the last one.
                    }
                }
                if (this.st !== 'resuming')
                    return;
                rs.attempts++;
                this.emit('reconnecting', { attempt: rs.attempts, gateway: to.websocket || to.gateway });
                const link = await this.open(to, deadline.signal);
                link.phase = 'resume';
                const frames = core.resumeFrames();
                rs.resent = frames.length - 1;
                rs.to = to;
                for (const f of frames)
                    link.write(f);
                this.link = link; // new messages follow the resent ones
                if (this.quitting) {
                    // close() while away: log out right behind the resume.
                    this.logout(link);
                    this.end(new ClosedError());
                    return;
                }
                await this.answer(link, deadline.signal, 'resume');
                return;
            }
            catch (err) {
                if (this.st !== 'resuming')
                    return;
                if (err instanceof KickError && !retryable(err.code)) {
                    this.end(err);
                    return;
                }
                failures++;
            }
            finally {
                clearTimeout(timer);
            }
            if (this.quitting) {
                // close() is waiting: no backoff; the attempt under way when it was
                // called and one more (at the gateway lookupGateway names), then stop.
                if (++this.quitting.failed >= 2) {
                    this.end(new ClosedError());
                    return;
                }
                continue;
            }
            this.wake = new AbortController();
            await sleep(backoff(attempt, this.opts.backoffMinMs, this.opts.backoffMaxMs, this.opts.random), this.stop.signal, this.wake.signal);
            this.wake = undefined;
        }
    }
    // end ends the client once.
    end(err) {
        if (this.st === 'ended')
            return;
        this.st = 'ended';
        this.endError = err;
        this.resuming = undefined;
        if (this.quitting)
            clearTimeout(this.quitting.timer);
        this.quitting = undefined;
        const link = this.link;
        this.link = undefined;
        this.stopTimers();
        if (link)
            this.failHandshake(link, err);
        this.stop.abort();
        this.attemptCtl?.abort();
        const ds = this.drainers;
        this.drainers = [];
        for (const d of ds)
            d.reject(err);
        this.emit('ended', { error: err });
    }
}
// retryable says whether a refused resume may succeed elsewhere or later.
function retryable(code) {
    return code === Code.Unavailable || code === Code.Shutdown || code === Code.Full;
}
function now() {
    return typeof performance !== 'undefined' ? performance.now() : Date.now();
}
// sleep waits ms, or until one of the signals aborts.
function sleep(ms, ...signals) {
    return new Promise((resolve) => {
        if (signals.some((s) => s.aborted)) {
            resolve();
            return;
        }
        const done = () => {
            clearTimeout(t);
            for (const s of signals)
                s.removeEventListener('abort', done);
            resolve();
        };
        const t = setTimeout(done, ms);
        for (const s of signals)
            s.addEventListener('abort', done, { once: true });
    });
}
