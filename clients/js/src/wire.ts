// The client protocol's frames (docs/PROTOCOL.md §2, §3 and §3.10): kinds,
// codes, encoders, decoders and the frame reader. Pure: no IO, no timers.

/** Frame kinds of the client protocol (PROTOCOL.md §3.2). */
export const Kind = Object.freeze({
  Login: 100,
  LoginAck: 101,
  Data: 102,
  Kick: 103,
  Ping: 104,
  Pong: 105,
  Error: 106,
  Session: 107,
  Msg: 108,
  Push: 109,
  Stream: 110,
  Ack: 111,
  MsgAck: 112,
  Resume: 113,
  Resumed: 114,
  StreamEnd: 115,
  Logout: 116,
  Shed: 117,
} as const);

/** Codes carried by ClientLoginAck, ClientKick, ClientError and ClientResumed (PROTOCOL.md §3.3). */
export const Code = Object.freeze({
  OK: 0,
  BadToken: 1,
  BadFrame: 2,
  TooLarge: 3,
  LoginTimeout: 4,
  BadCmd: 5,
  NoNode: 6,
  Duplicate: 7,
  Kicked: 8,
  Idle: 9,
  Slow: 10,
  Shutdown: 11,
  Full: 12,
  Unavailable: 13,
  TakenOver: 14,
  Expired: 15,
  Lost: 16,
  BadResume: 17,
  LinkLost: 18,
  RateLimited: 19,
} as const);

const codeTexts: readonly string[] = [
  'ok', 'bad token', 'bad frame', 'frame too large', 'login timeout', 'cmd names no node type',
  'no node available', 'logged in elsewhere', 'kicked', 'idle timeout', 'too slow to read',
  'gateway shutting down', 'gateway full', 'login service unavailable',
  'session resumed on another connection', 'session expired', 'session lost messages', 'resume refused',
  'gateway link lost', 'rate limited',
];

/** A code's short description, the gateway's own words ("logged in elsewhere"). */
export function codeText(code: number): string {
  return codeTexts[code] ?? `code ${code}`;
}

/** The name of a code ("Duplicate"), or "code N" for a code this SDK does not know. */
export function codeName(code: number): string {
  for (const [name, c] of Object.entries(Code)) if (c === code) return name;
  return `code ${code}`;
}

/** The version byte a ClientLogin ends with to ask for a resumable session. */
export const PROTOCOL_V2 = 2;
/** Size of the frame header: u32 length, u16 kind. */
export const HEADER_SIZE = 6;
/** Size of a resume secret. */
export const SECRET_SIZE = 32;
/** Size of a node id on the wire. */
export const NODE_ID_SIZE = 16;
/** Longest account name, in UTF-8 bytes. */
export const MAX_ACCOUNT = 64;
/** Longest token, in bytes. */
export const MAX_TOKEN = 256;
/** Longest text of a kick, login answer or resume answer. */
export const MAX_REASON = 256;
/** Most streams a ClientResume may list. */
export const MAX_RESUME_STREAMS = 1024;
/** ClientResumed flag: broadcasts sent while the client was away may be missing. */
export const RESUMED_BROADCAST_GAP = 1;

const MAX_U64 = (1n << 64n) - 1n;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Thrown by the decoders and the frame reader for bytes that break the protocol. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** A cmd as the application gives it: a non-negative integer below 2^64. */
export type Cmd = number | bigint;

/** toU64 checks and converts a cmd. */
export function toU64(cmd: Cmd): bigint {
  const v = typeof cmd === 'bigint' ? cmd : Number.isSafeInteger(cmd) ? BigInt(cmd) : -1n;
  if (v < 0n || v > MAX_U64) throw new RangeError(`cmd ${String(cmd)} is not an integer in 0 … 2^64-1`);
  return v;
}

/** fromU64 is a cmd as a number when it is exactly representable, else as a bigint. */
export function fromU64(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Bytes of a string (UTF-8) or the bytes themselves. */
export function toBytes(data: Uint8Array | string | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return typeof data === 'string' ? enc.encode(data) : data;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** frame encodes one frame: u32 length (2 + payload size), u16 kind, payload. */
export function frame(kind: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE + payload.length);
  const v = view(b);
  v.setUint32(0, 2 + payload.length);
  v.setUint16(4, kind);
  b.set(payload, HEADER_SIZE);
  return b;
}

// Writer builds one payload; sizes are known up front.
class Writer {
  readonly b: Uint8Array;
  readonly v: DataView;
  off = 0;
  constructor(size: number) {
    this.b = new Uint8Array(size);
    this.v = view(this.b);
  }
  u8(x: number): this { this.v.setUint8(this.off, x); this.off += 1; return this; }
  u16(x: number): this { this.v.setUint16(this.off, x); this.off += 2; return this; }
  u32(x: number): this { this.v.setUint32(this.off, x); this.off += 4; return this; }
  u64(x: bigint): this { this.v.setBigUint64(this.off, x); this.off += 8; return this; }
  bytes(x: Uint8Array): this { this.b.set(x, this.off); this.off += x.length; return this; }
}

function account(name: string): Uint8Array {
  const a = enc.encode(name);
  if (a.length < 1 || a.length > MAX_ACCOUNT) throw new RangeError(`account must be 1–${MAX_ACCOUNT} UTF-8 bytes, got ${a.length}`);
  return a;
}

function fixed(what: string, b: Uint8Array, size: number): Uint8Array {
  if (b.length !== size) throw new RangeError(`${what} must be ${size} bytes, got ${b.length}`);
  return b;
}

/** ClientLogin (100): u8 alen, account, u16 tlen, token [, u8 version]. version 2 asks for a resumable session. */
export function encodeLogin(acct: string, token: string, version?: number): Uint8Array {
  const a = account(acct), t = enc.encode(token);
  if (t.length < 1 || t.length > MAX_TOKEN) throw new RangeError(`token must be 1–${MAX_TOKEN} bytes, got ${t.length}`);
  const w = new Writer(3 + a.length + t.length + (version === undefined ? 0 : 1));
  w.u8(a.length).bytes(a).u16(t.length).bytes(t);
  if (version !== undefined) w.u8(version);
  return frame(Kind.Login, w.b);
}

/** ClientData (102): u64 cmd, data. Version 1 only; a version 2 session sends ClientMsg. */
export function encodeData(cmd: Cmd, data?: Uint8Array | string): Uint8Array {
  const d = toBytes(data);
  return frame(Kind.Data, new Writer(8 + d.length).u64(toU64(cmd)).bytes(d).b);
}

/** ClientPing (104): exactly 8 opaque bytes, echoed by the pong. */
export function encodePing(token: bigint): Uint8Array {
  return frame(Kind.Ping, new Writer(8).u64(BigInt.asUintN(64, token)).b);
}

/** ClientMsg (108): u32 seq, u64 cmd, data. */
export function encodeMsg(seq: number, cmd: Cmd, data?: Uint8Array | string): Uint8Array {
  if (!Number.isInteger(seq) || seq < 1 || seq > 0xffffffff) throw new RangeError(`message seq ${seq} out of range`);
  const d = toBytes(data);
  return frame(Kind.Msg, new Writer(12 + d.length).u32(seq).u64(toU64(cmd)).bytes(d).b);
}

/** One stream's acknowledgement in a ClientAck. */
export interface StreamAck {
  stream: number;
  seq: number;
}

/** ClientAck (111): u16 n (at least 1), n × (u16 stream, u32 seq). */
export function encodeAck(acks: readonly StreamAck[]): Uint8Array {
  if (acks.length < 1 || acks.length > 0xffff) throw new RangeError(`a ClientAck holds 1–65535 streams, got ${acks.length}`);
  const w = new Writer(2 + 6 * acks.length).u16(acks.length);
  for (const a of acks) w.u16(a.stream).u32(a.seq);
  return frame(Kind.Ack, w.b);
}

/** A stream as the client knows it: its number, sender, epoch and the last seq received. */
export interface StreamPos {
  stream: number;
  node: Uint8Array; // 16 bytes
  epoch: number;
  last: number;
}

/** What a ClientResume presents. */
export interface Resume {
  account: string;
  sid: bigint;
  secret: Uint8Array; // 32 bytes
  msgAck: number;
  /** 1 for the session's first resume, +1 for every one after: a stale one (from an abandoned connection) is refused. */
  attempt: number;
  streams: readonly StreamPos[];
}

/** ClientResume (113): u8 alen, account, u64 sid, 32 secret, u32 msg_ack, u32 attempt, u16 n, n × (u16 stream, 16 node, u32 epoch, u32 last). */
export function encodeResume(r: Resume): Uint8Array {
  const a = account(r.account);
  if (r.streams.length > MAX_RESUME_STREAMS) throw new RangeError(`a ClientResume lists at most ${MAX_RESUME_STREAMS} streams`);
  const w = new Writer(1 + a.length + 8 + SECRET_SIZE + 4 + 4 + 2 + 26 * r.streams.length);
  w.u8(a.length).bytes(a).u64(r.sid).bytes(fixed('secret', r.secret, SECRET_SIZE)).u32(r.msgAck).u32(r.attempt).u16(r.streams.length);
  for (const s of r.streams) w.u16(s.stream).bytes(fixed('node id', s.node, NODE_ID_SIZE)).u32(s.epoch).u32(s.last);
  return frame(Kind.Resume, w.b);
}

// ---- Decoders of the gateway's frames ---------------------------------

/** A ClientLoginAck (101) or ClientKick (103): a code and a text for people. */
export interface Coded {
  code: number;
  text: string;
}

/** decodeCoded parses ClientLoginAck and ClientKick payloads: u16 code, text (0–256 bytes). */
export function decodeCoded(p: Uint8Array): Coded {
  if (p.length < 2 || p.length > 2 + MAX_REASON) throw new ProtocolError(`coded frame of ${p.length} bytes`);
  return { code: view(p).getUint16(0), text: dec.decode(p.subarray(2)) };
}

/** A ClientData (102) or a ClientPush's cmd and data. */
export interface Data {
  cmd: bigint;
  data: Uint8Array;
}

/** decodeData parses a ClientData payload: u64 cmd, data. */
export function decodeData(p: Uint8Array): Data {
  if (p.length < 8) throw new ProtocolError(`data frame of ${p.length} bytes`);
  return { cmd: view(p).getBigUint64(0), data: p.subarray(8) };
}

/** A ClientError (106): a message that was not delivered. */
export interface NotDelivered {
  code: number;
  cmd: bigint;
}

/** decodeError parses a ClientError payload: exactly u16 code, u64 cmd. */
export function decodeError(p: Uint8Array): NotDelivered {
  if (p.length !== 10) throw new ProtocolError(`error frame of ${p.length} bytes`);
  const v = view(p);
  return { code: v.getUint16(0), cmd: v.getBigUint64(2) };
}

/** decodePong parses a ClientPong payload: the ping's 8 bytes. */
export function decodePong(p: Uint8Array): bigint {
  if (p.length !== 8) throw new ProtocolError(`pong frame of ${p.length} bytes`);
  return view(p).getBigUint64(0);
}

/** A ClientSession (107): the session the gateway opened. */
export interface Session {
  sid: bigint;
  secret: Uint8Array;
  windowMs: number;
  maxUnacked: number;
}

/** decodeSession parses a ClientSession payload: exactly u64 sid, 32 secret, u32 window_ms, u16 max_unacked. */
export function decodeSession(p: Uint8Array): Session {
  if (p.length !== 8 + SECRET_SIZE + 4 + 2) throw new ProtocolError(`session frame of ${p.length} bytes`);
  const v = view(p);
  const sid = v.getBigUint64(0);
  if (sid === 0n) throw new ProtocolError('session id 0');
  return {
    sid,
    secret: p.slice(8, 8 + SECRET_SIZE),
    windowMs: v.getUint32(8 + SECRET_SIZE),
    maxUnacked: v.getUint16(12 + SECRET_SIZE),
  };
}

/** A ClientPush (109): one message of a stream. */
export interface Push {
  stream: number;
  seq: number;
  cmd: bigint;
  data: Uint8Array;
}

/** decodePush parses a ClientPush payload: u16 stream, u32 seq, u64 cmd, data. */
export function decodePush(p: Uint8Array): Push {
  if (p.length < 14) throw new ProtocolError(`push frame of ${p.length} bytes`);
  const v = view(p);
  return { stream: v.getUint16(0), seq: v.getUint32(2), cmd: v.getBigUint64(6), data: p.subarray(14) };
}

/** A ClientShed (117): broadcasts for this client dropped because it read too slowly. */
export interface Shed {
  stream: number;
  through: number;
  count: number;
}

/** decodeShed parses a ClientShed payload: exactly u16 stream, u32 through, u32 count. */
export function decodeShed(p: Uint8Array): Shed {
  if (p.length !== 10) throw new ProtocolError(`shed frame of ${p.length} bytes`);
  const v = view(p);
  return { stream: v.getUint16(0), through: v.getUint32(2), count: v.getUint32(6) };
}

/** A ClientStream (110): a stream announcement. */
export interface StreamOpen {
  stream: number;
  node: Uint8Array;
  epoch: number;
}

/** decodeStream parses a ClientStream payload: exactly u16 stream, 16 node, u32 epoch. */
export function decodeStream(p: Uint8Array): StreamOpen {
  if (p.length !== 22) throw new ProtocolError(`stream frame of ${p.length} bytes`);
  const v = view(p);
  return { stream: v.getUint16(0), node: p.slice(2, 18), epoch: v.getUint32(18) };
}

/** decodeMsgAck parses a ClientMsgAck payload: exactly u32 seq. */
export function decodeMsgAck(p: Uint8Array): number {
  if (p.length !== 4) throw new ProtocolError(`message ack of ${p.length} bytes`);
  return view(p).getUint32(0);
}

/** A ClientResumed (114): the answer to a ClientResume. */
export interface Resumed {
  code: number;
  msgAck: number;
  flags: number;
  text: string;
}

/** decodeResumed parses a ClientResumed payload: u16 code, u32 msg_ack, u8 flags, text. */
export function decodeResumed(p: Uint8Array): Resumed {
  if (p.length < 7 || p.length > 7 + MAX_REASON) throw new ProtocolError(`resumed frame of ${p.length} bytes`);
  const v = view(p);
  return { code: v.getUint16(0), msgAck: v.getUint32(2), flags: v.getUint8(6), text: dec.decode(p.subarray(7)) };
}

/** decodeStreamEnd parses a ClientStreamEnd payload: exactly u16 stream. */
export function decodeStreamEnd(p: Uint8Array): number {
  if (p.length !== 2) throw new ProtocolError(`stream end of ${p.length} bytes`);
  return view(p).getUint16(0);
}

// ---- Decoders of the client's frames (for tests and tools) -------------

/** A decoded ClientLogin. */
export interface Login {
  account: string;
  token: string;
  version?: number;
}

/** decodeLogin parses a ClientLogin payload. */
export function decodeLogin(p: Uint8Array): Login {
  const n = p[0] ?? 0;
  if (n < 1 || n > MAX_ACCOUNT || p.length < 1 + n + 2) throw new ProtocolError(`login frame of ${p.length} bytes`);
  const t = view(p).getUint16(1 + n);
  const rest = p.length - (3 + n + t);
  if (t < 1 || t > MAX_TOKEN || rest < 0 || rest > 1) throw new ProtocolError(`login frame of ${p.length} bytes`);
  const out: Login = { account: dec.decode(p.subarray(1, 1 + n)), token: dec.decode(p.subarray(3 + n, 3 + n + t)) };
  if (rest === 1) out.version = p[p.length - 1];
  return out;
}

/** A decoded ClientMsg. */
export interface Msg {
  seq: number;
  cmd: bigint;
  data: Uint8Array;
}

/** decodeMsg parses a ClientMsg payload. */
export function decodeMsg(p: Uint8Array): Msg {
  if (p.length < 12) throw new ProtocolError(`message frame of ${p.length} bytes`);
  const v = view(p);
  return { seq: v.getUint32(0), cmd: v.getBigUint64(4), data: p.subarray(12) };
}

/** decodeAck parses a ClientAck payload. */
export function decodeAck(p: Uint8Array): StreamAck[] {
  if (p.length < 2) throw new ProtocolError(`ack frame of ${p.length} bytes`);
  const v = view(p), n = v.getUint16(0);
  if (n === 0 || p.length !== 2 + 6 * n) throw new ProtocolError(`ack frame of ${p.length} bytes for ${n} streams`);
  const out: StreamAck[] = [];
  for (let o = 2; o < p.length; o += 6) out.push({ stream: v.getUint16(o), seq: v.getUint32(o + 2) });
  return out;
}

/** decodeResume parses a ClientResume payload. */
export function decodeResume(p: Uint8Array): Resume {
  const n = p[0] ?? 0;
  if (n < 1 || n > MAX_ACCOUNT || p.length < 1 + n + 8 + SECRET_SIZE + 4 + 4 + 2) throw new ProtocolError(`resume frame of ${p.length} bytes`);
  const v = view(p);
  let o = 1 + n;
  const acct = dec.decode(p.subarray(1, o));
  const sid = v.getBigUint64(o);
  const secret = p.slice(o + 8, o + 8 + SECRET_SIZE);
  o += 8 + SECRET_SIZE;
  const msgAck = v.getUint32(o);
  const attempt = v.getUint32(o + 4);
  const count = v.getUint16(o + 8);
  o += 10;
  if (count > MAX_RESUME_STREAMS || p.length - o !== 26 * count) throw new ProtocolError(`resume lists ${count} streams in ${p.length - o} bytes`);
  const streams: StreamPos[] = [];
  for (; o < p.length; o += 26) {
    streams.push({ stream: v.getUint16(o), node: p.slice(o + 2, o + 18), epoch: v.getUint32(o + 18), last: v.getUint32(o + 22) });
  }
  return { account: acct, sid, secret, msgAck, attempt, streams };
}

// ---- Reading frames -----------------------------------------------------

/** One frame read from a stream. */
export interface Frame {
  kind: number;
  payload: Uint8Array;
}

/**
 * FrameReader splits a byte stream into frames. TCP reads and WebSocket
 * messages are one stream: a chunk may hold several frames, and a frame may
 * span chunks (PROTOCOL.md §3.6).
 */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0);
  /** maxFrame bounds a frame's length field; a longer frame is a ProtocolError. */
  constructor(readonly maxFrame = 1 << 20) {}

  /** push adds a chunk and returns the frames it completed; it throws a ProtocolError on a length no stream can recover from. */
  push(chunk: Uint8Array): Frame[] {
    if (this.buf.length === 0) {
      this.buf = chunk;
    } else {
      const joined = new Uint8Array(this.buf.length + chunk.length);
      joined.set(this.buf);
      joined.set(chunk, this.buf.length);
      this.buf = joined;
    }
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= HEADER_SIZE) {
      const v = view(this.buf.subarray(off));
      const len = v.getUint32(0);
      if (len < 2) throw new ProtocolError(`frame length ${len} is below 2`);
      if (len > this.maxFrame) throw new ProtocolError(`frame length ${len} is above the limit ${this.maxFrame}`);
      if (this.buf.length - off < 4 + len) break;
      frames.push({ kind: v.getUint16(4), payload: this.buf.slice(off + HEADER_SIZE, off + 4 + len) });
      off += 4 + len;
    }
    this.buf = off === this.buf.length ? new Uint8Array(0) : this.buf.slice(off);
    return frames;
  }

  /** buffered is the number of bytes waiting for the rest of their frame. */
  get buffered(): number {
    return this.buf.length;
  }
}

/** hex formats bytes as "00 01 ff" (for logs and tests). */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** nodeIdText formats a 16-byte node id as a UUID. */
export function nodeIdText(id: Uint8Array): string {
  const h = Array.from(id, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
