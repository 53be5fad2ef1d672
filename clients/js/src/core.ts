// The client's side of a resumable session (PROTOCOL.md §3.10) as a pure
// state machine: it takes events and the time, and returns the frames to
// write. No sockets, no timers; the Client drives it.

import {
  type Cmd, type Session, type StreamOpen, type StreamPos, type StreamAck, ProtocolError,
  encodeAck, encodeMsg, encodeResume, toBytes, toU64,
} from './wire.js';

/** When the core acknowledges what it received (PROTOCOL.md §3.10.2). */
export interface CoreConfig {
  /** Acknowledge after this many pushes (default 32). */
  ackEvery?: number;
  /** …or this long after the first unacknowledged push, in ms (default 100). */
  ackDelayMs?: number;
  /** Most messages kept waiting for room in the window, beyond max_unacked (default 10 000). */
  maxQueued?: number;
}

interface StreamState {
  node: Uint8Array;
  epoch: number;
  last: number; // highest seq received
  acked: number; // last position acknowledged to the gateway
}

interface Queued {
  cmd: bigint;
  data: Uint8Array;
}

/** Thrown by SessionCore.send when maxQueued messages already wait for room. */
export class QueueFullError extends Error {
  constructor(n: number) {
    super(`${n} messages already wait for the gateway's acknowledgement`);
    this.name = 'QueueFullError';
  }
}

/**
 * SessionCore is the state of one version 2 session on the client: the
 * messages sent and not yet acknowledged (resent after a resume), those
 * waiting for room in the window (max_unacked), and every stream's position
 * (duplicates dropped by seq, acknowledgements due).
 */
export class SessionCore {
  readonly account: string;
  readonly session: Session;
  private readonly ackEvery: number;
  private readonly ackDelayMs: number;
  private readonly maxQueued: number;
  private readonly window: number;

  private next = 1; // the next message's seq
  private floor = 0; // every message through this one is acknowledged
  private attempts = 0; // resumes presented so far (ClientResume.attempt)
  private pending: Uint8Array[] = []; // encoded messages floor+1 … next-1
  private backlog: Queued[] = []; // not numbered yet: wait for room in the window
  private readonly streams = new Map<number, StreamState>();
  private unackedPushes = 0;
  private firstUnackedAt = 0;

  constructor(account: string, session: Session, cfg: CoreConfig = {}) {
    this.account = account;
    this.session = session;
    this.ackEvery = cfg.ackEvery && cfg.ackEvery > 0 ? cfg.ackEvery : 32;
    this.ackDelayMs = cfg.ackDelayMs && cfg.ackDelayMs > 0 ? cfg.ackDelayMs : 100;
    this.maxQueued = cfg.maxQueued && cfg.maxQueued > 0 ? cfg.maxQueued : 10_000;
    this.window = Math.max(1, session.maxUnacked);
  }

  /** Messages sent and not yet acknowledged. */
  get unacked(): number {
    return this.pending.length;
  }

  /** Messages waiting for room in the window (not sent yet). */
  get queued(): number {
    return this.backlog.length;
  }

  /** The last message the gateway acknowledged. */
  get msgAck(): number {
    return this.floor;
  }

  /** The seq the next message sent will get. */
  get nextSeq(): number {
    return this.next + this.backlog.length;
  }

  /**
   * send numbers and encodes a message and keeps it until acknowledged. It
   * returns the frame to write now, or undefined when the window is full:
   * the message then waits and comes out of onMsgAck, in order.
   */
  send(cmd: Cmd, data?: Uint8Array | string): Uint8Array | undefined {
    const m: Queued = { cmd: toU64(cmd), data: toBytes(data) };
    if (this.backlog.length > 0 || this.pending.length >= this.window) {
      if (this.backlog.length >= this.maxQueued) throw new QueueFullError(this.backlog.length);
      this.backlog.push({ cmd: m.cmd, data: m.data.slice() });
      return undefined;
    }
    return this.number(m);
  }

  private number(m: Queued): Uint8Array {
    if (this.next > 0xffffffff) throw new RangeError('the session numbered 2^32-1 messages: log in again');
    const f = encodeMsg(this.next, m.cmd, m.data);
    this.pending.push(f);
    this.next++;
    return f;
  }

  // fill moves waiting messages into the window and returns their frames.
  private fill(): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (this.backlog.length > 0 && this.pending.length < this.window) {
      out.push(this.number(this.backlog.shift() as Queued));
    }
    return out;
  }

  /** onMsgAck drops the messages acknowledged through seq and returns waiting messages that now fit, to write. */
  onMsgAck(seq: number): Uint8Array[] {
    if (seq >= this.next) seq = this.next - 1;
    if (seq > this.floor) {
      this.pending.splice(0, seq - this.floor);
      this.floor = seq;
    }
    return this.fill();
  }

  /**
   * onStream records a stream announcement; a known stream number is
   * replaced. A stream is its (node, epoch): one announced again, under its
   * number or another, keeps what was received of it, so what comes again
   * is dropped (PROTOCOL.md §3.10.2).
   */
  onStream(s: StreamOpen): void {
    for (const [id, st] of this.streams) {
      if (st.epoch === s.epoch && sameBytes(st.node, s.node)) {
        this.streams.delete(id);
        this.streams.set(s.stream, st);
        return;
      }
    }
    this.streams.set(s.stream, { node: s.node, epoch: s.epoch, last: 0, acked: 0 });
  }

  /** onStreamEnd forgets a stream. */
  onStreamEnd(stream: number): void {
    this.streams.delete(stream);
  }

  /**
   * onPush reports whether a push is new (deliver it) or a duplicate (drop
   * it). A push on a stream never announced is a ProtocolError.
   */
  onPush(now: number, stream: number, seq: number): boolean {
    const s = this.streams.get(stream);
    if (!s) throw new ProtocolError(`push on stream ${stream}, never announced`);
    if (seq <= s.last) return false;
    s.last = seq;
    if (stream !== 0) {
      if (this.unackedPushes === 0) this.firstUnackedAt = now;
      this.unackedPushes++;
    }
    return true;
  }

  /**
   * onShed records that broadcasts on stream up to seq through will not
   * come, so a later one is delivered (through 0: nothing to skip).
   */
  onShed(stream: number, through: number): void {
    const s = this.streams.get(stream);
    if (s && through > s.last) s.last = through;
  }

  /** ackDue returns a ClientAck when one is due (ackEvery pushes, or ackDelayMs since the first unacknowledged one). */
  ackDue(now: number): Uint8Array | undefined {
    if (this.unackedPushes === 0) return undefined;
    if (this.unackedPushes < this.ackEvery && now - this.firstUnackedAt < this.ackDelayMs) return undefined;
    return this.ackNow();
  }

  /** ackNow returns a ClientAck for every stream (but 0) received beyond its last acknowledgement, or undefined. */
  ackNow(): Uint8Array | undefined {
    const acks: StreamAck[] = [];
    for (const [id, s] of this.streams) {
      if (id !== 0 && s.last > s.acked) {
        s.acked = s.last;
        acks.push({ stream: id, seq: s.last });
      }
    }
    this.unackedPushes = 0;
    return acks.length > 0 ? encodeAck(acks) : undefined;
  }

  /** nextAckAt is when ackDue will next return a frame (undefined: nothing to acknowledge). */
  nextAckAt(): number | undefined {
    return this.unackedPushes === 0 ? undefined : this.firstUnackedAt + this.ackDelayMs;
  }

  /** positions lists every stream with the last seq received (what a ClientResume carries). */
  positions(): StreamPos[] {
    return [...this.streams].map(([stream, s]) => ({ stream, node: s.node, epoch: s.epoch, last: s.last }));
  }

  /**
   * resumeFrames returns what to write first on a new connection: the
   * ClientResume, then every unacknowledged message again, in order (the
   * same seq, cmd and data). New messages may follow at once. The resume
   * acknowledges every stream position it lists.
   */
  resumeFrames(): Uint8Array[] {
    this.attempts++;
    const r = encodeResume({
      account: this.account, sid: this.session.sid, secret: this.session.secret, msgAck: this.floor,
      attempt: this.attempts, streams: this.positions(),
    });
    for (const s of this.streams.values()) s.acked = s.last;
    this.unackedPushes = 0;
    return [r, ...this.pending];
  }

  /** onResumed takes a ClientResumed code 0 and returns waiting messages that now fit, to write. */
  onResumed(msgAck: number): Uint8Array[] {
    return this.onMsgAck(msgAck);
  }
}

/**
 * backoff is the wait before reconnect attempt n (0 for the first retry):
 * min doubling up to max, times a random factor in [0.75, 1.25).
 */
export function backoff(n: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(n, 30));
  return base * (0.75 + 0.5 * random());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
