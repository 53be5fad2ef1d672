// Every hex dump of the client protocol in docs/PROTOCOL.md (§2, §3.7,
// §3.10.4, §3.10.5) goes through the SDK's encoders, decoders, frame reader
// and session core: the document and the SDK must agree byte for byte.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { SessionCore, wire } from '../dist/index.js';

const doc = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const enc = new TextEncoder();

// section returns the text of the section whose heading starts with title,
// up to the next heading of the same or a higher level.
function section(title) {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => /^#{2,4} /.test(l) && l.replace(/^#+ /, '').startsWith(title));
  assert.ok(start >= 0, `PROTOCOL.md has no section "${title}"`);
  const level = lines[start].match(/^#+/)[0].length;
  let end = start + 1;
  while (end < lines.length && !(lines[end].match(/^#+ /) && lines[end].match(/^#+/)[0].length <= level)) end++;
  return lines.slice(start + 1, end).join('\n');
}

function codeBlocks(text) {
  return [...text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]);
}

const isByte = (t) => /^[0-9a-f]{2}$/.test(t);

// bytesOf reads the hex bytes of one line: parenthesised comments are
// skipped, "a b … z" is the run from a to z, and anything else ends the
// bytes (a trailing comment).
function bytesOf(text) {
  const tokens = text.replace(/\([^)]*\)/g, ' ').trim().split(/\s+/).filter(Boolean);
  const out = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (isByte(t)) out.push(parseInt(t, 16));
    else if (t === '…' && out.length > 0 && isByte(tokens[i + 1] ?? '')) {
      for (let v = out[out.length - 1] + 1; v < parseInt(tokens[i + 1], 16); v++) out.push(v);
    } else if (out.length > 0) break;
  }
  return out;
}

// blockFrame reads a block holding one frame, one field per line with a comment.
function blockFrame(block) {
  return Uint8Array.from(block.split('\n').flatMap((l) => bytesOf(l)));
}

// exchange reads a block of "C→G Name  bytes" lines, continuation lines
// holding more bytes of the same frame.
function exchange(block) {
  const frames = [];
  for (const line of block.split('\n')) {
    const m = line.match(/^([CG]→[CG]) (\S+(?: [^\s0-9a-f]\S*| [0-9])*)\s{2,}(.*)$/);
    if (m) frames.push({ dir: m[1], name: m[2].trim(), bytes: bytesOf(m[3]) });
    else if (line.trim() && frames.length > 0) frames[frames.length - 1].bytes.push(...bytesOf(line));
  }
  return frames.map((f) => ({ ...f, bytes: Uint8Array.from(f.bytes) }));
}

// inline reads `xx xx …` code spans, with `"text"` when "followed by" it.
function inline(text) {
  return [...text.matchAll(/`((?:[0-9a-f]{2} )+[0-9a-f]{2})`(?: followed by\s+`"([^"`]*)"`)?/g)]
    .map((m) => Uint8Array.from([...bytesOf(m[1]), ...enc.encode(m[2] ?? '')]));
}

// read splits bytes into frames with the SDK's reader, checking the length field.
function read(bytes) {
  const frames = new wire.FrameReader().push(bytes);
  assert.equal(frames.length, 1, `one frame in ${wire.hex(bytes)}`);
  return frames[0];
}

const hex = wire.hex;
const uuid = (s) => Uint8Array.from(s.replace(/-/g, '').match(/../g).map((x) => parseInt(x, 16)));
const node = uuid('00112233-4455-6677-8899-aabbccddeeff');
const gateway = uuid('ffeeddcc-bbaa-9988-7766-554433221100');
const secret = Uint8Array.from({ length: 32 }, (_, i) => i);

test('§2 framing: the worked ClientLoginAck', () => {
  const blocks = codeBlocks(section('2. Framing'));
  assert.equal(blocks.length, 1);
  const f = read(blockFrame(blocks[0]));
  assert.equal(f.kind, wire.Kind.LoginAck);
  assert.deepEqual(wire.decodeCoded(f.payload), { code: 0, text: 'ok' });
  assert.equal(hex(wire.frame(wire.Kind.LoginAck, f.payload)), hex(blockFrame(blocks[0])));
});

test('§3.7 hex dumps: login, data, error and kick', () => {
  const s = section('3.7 Hex dumps');
  const blocks = codeBlocks(s);
  assert.equal(blocks.length, 2, '§3.7 has two blocks');
  const login = blockFrame(blocks[0]);
  assert.equal(hex(wire.encodeLogin('alice', 'tok123')), hex(login));
  assert.deepEqual(wire.decodeLogin(read(login).payload), { account: 'alice', token: 'tok123' });

  const data = blockFrame(blocks[1]);
  assert.equal(hex(wire.encodeData(4001, 'hi')), hex(data));
  assert.equal(hex(wire.encodeData(4001n, enc.encode('hi'))), hex(data));
  const d = wire.decodeData(read(data).payload);
  assert.equal(d.cmd, 4001n);
  assert.equal(new TextDecoder().decode(d.data), 'hi');

  const [err, kick, ...rest] = inline(s.slice(s.indexOf('Other examples')));
  assert.equal(rest.length, 0);
  const e = read(err);
  assert.equal(e.kind, wire.Kind.Error);
  assert.deepEqual(wire.decodeError(e.payload), { code: wire.Code.NoNode, cmd: 4001n });
  const k = read(kick);
  assert.equal(k.kind, wire.Kind.Kick);
  assert.deepEqual(wire.decodeCoded(k.payload), { code: wire.Code.Idle, text: 'idle timeout' });
});

test('§3.10.4 worked example: a version 2 session through the SDK', () => {
  const frames = exchange(codeBlocks(section('3.10.4 Worked example'))[0]);
  assert.deepEqual(frames.map((f) => `${f.dir} ${f.name}`), [
    'C→G ClientLogin v2', 'G→C ClientLoginAck', 'G→C ClientSession', 'G→C ClientStream 0', 'C→G ClientMsg 1',
    'G→C ClientStream 1', 'G→C ClientPush', 'G→C ClientMsgAck', 'C→G ClientAck',
  ]);
  const [login, ack, session, stream0, msg, stream1, push, msgAck, clientAck] = frames.map((f) => f.bytes);

  assert.equal(hex(wire.encodeLogin('alice', 'tok123', wire.PROTOCOL_V2)), hex(login));
  assert.deepEqual(wire.decodeLogin(read(login).payload), { account: 'alice', token: 'tok123', version: 2 });

  // The gateway's frames, as one stream cut at every offset.
  const g2c = Uint8Array.from([...ack, ...session, ...stream0, ...stream1, ...push, ...msgAck]);
  for (let cut = 0; cut <= g2c.length; cut++) {
    const r = new wire.FrameReader();
    const fs = [...r.push(g2c.subarray(0, cut)), ...r.push(g2c.subarray(cut))];
    assert.deepEqual(fs.map((f) => f.kind), [101, 107, 110, 110, 109, 112], `cut at ${cut}`);
  }

  assert.deepEqual(wire.decodeCoded(read(ack).payload), { code: 0, text: 'ok' });
  const sess = wire.decodeSession(read(session).payload);
  assert.deepEqual(sess, { sid: 0x0123456789abcdefn, secret, windowMs: 30000, maxUnacked: 256 });
  const s0 = wire.decodeStream(read(stream0).payload);
  assert.deepEqual(s0, { stream: 0, node: gateway, epoch: 0x5eed0001 });
  const s1 = wire.decodeStream(read(stream1).payload);
  assert.deepEqual(s1, { stream: 1, node, epoch: 42 });
  const p = wire.decodePush(read(push).payload);
  assert.deepEqual({ ...p, data: new TextDecoder().decode(p.data) }, { stream: 1, seq: 1, cmd: 4001n, data: 'ok' });
  assert.equal(wire.decodeMsgAck(read(msgAck).payload), 1);

  // The session core produces the client's frames of the example.
  const core = new SessionCore('alice', sess);
  core.onStream(s0);
  assert.equal(hex(core.send(4001, 'hi')), hex(msg));
  assert.deepEqual(wire.decodeMsg(read(msg).payload), { seq: 1, cmd: 4001n, data: enc.encode('hi') });
  core.onStream(s1);
  assert.equal(core.onPush(0, p.stream, p.seq), true);
  assert.equal(core.onPush(0, p.stream, p.seq), false, 'the same push again is a duplicate');
  assert.deepEqual(core.onMsgAck(1), []);
  assert.equal(core.unacked, 0);
  assert.equal(hex(core.ackNow()), hex(clientAck));
  assert.deepEqual(wire.decodeAck(read(clientAck).payload), [{ stream: 1, seq: 1 }]);
});

test('§3.10.5 resuming: the ClientResume, ClientResumed and a refusal', () => {
  const s = section('3.10.5 Resuming');
  const frames = exchange(codeBlocks(s)[0]);
  assert.deepEqual(frames.map((f) => `${f.dir} ${f.name}`), ['C→G ClientResume', 'G→C ClientResumed']);
  const [resume, resumed] = frames.map((f) => f.bytes);

  // "alice resumes having received stream 0 through 3 and stream 1 through
  // 1, with message 1 acknowledged": the core in that state writes exactly
  // the document's frame.
  const core = new SessionCore('alice', { sid: 0x0123456789abcdefn, secret, windowMs: 30000, maxUnacked: 256 });
  core.onStream({ stream: 0, node: gateway, epoch: 0x5eed0001 });
  core.onStream({ stream: 1, node, epoch: 42 });
  for (const seq of [1, 2, 3]) assert.equal(core.onPush(0, 0, seq), true);
  assert.equal(core.onPush(0, 1, 1), true);
  core.send(4001, 'hi');
  core.onMsgAck(1);
  const out = core.resumeFrames();
  assert.equal(out.length, 1, 'nothing to resend');
  assert.equal(hex(out[0]), hex(resume));
  assert.deepEqual(wire.decodeResume(read(resume).payload), {
    account: 'alice', sid: 0x0123456789abcdefn, secret, msgAck: 1, attempt: 1,
    streams: [{ stream: 0, node: gateway, epoch: 0x5eed0001, last: 3 }, { stream: 1, node, epoch: 42, last: 1 }],
  });
  assert.equal(hex(wire.encodeResume(wire.decodeResume(read(resume).payload))), hex(resume));

  assert.deepEqual(wire.decodeResumed(read(resumed).payload), { code: 0, msgAck: 1, flags: 0, text: '' });
  const refusals = inline(s.slice(s.indexOf('and a refusal')));
  assert.equal(refusals.length, 1);
  assert.deepEqual(wire.decodeResumed(read(refusals[0]).payload), { code: wire.Code.Expired, msgAck: 0, flags: 0, text: 'session expired' });
});

test('§3.2 kinds and §3.3 codes match the SDK', () => {
  const kinds = [...section('3.2 Client kinds').matchAll(/^\| (\d+) \| `Client(\w+)` \|/gm)].map((m) => [m[2], Number(m[1])]);
  assert.equal(kinds.length, 18);
  for (const [name, kind] of kinds) assert.equal(wire.Kind[name], kind, `kind ${name}`);
  const codes = [...section('3.3 Codes').matchAll(/^\| (\d+) \| (\w+) \|/gm)].map((m) => [m[2], Number(m[1])]);
  assert.equal(codes.length, 20);
  for (const [name, code] of codes) assert.equal(wire.Code[name], code, `code ${name}`);
});

test('§3.2 ClientShed hex dump', () => {
  const s = section('3.2 Client kinds');
  const dumps = inline(s.slice(s.indexOf('**117 `ClientShed`**')));
  assert.ok(dumps.length >= 1);
  const f = read(dumps[0]);
  assert.equal(f.kind, wire.Kind.Shed);
  assert.deepEqual(wire.decodeShed(f.payload), { stream: 0, through: 300, count: 12 });
  assert.throws(() => wire.decodeShed(f.payload.subarray(0, 9)), wire.ProtocolError);
});
