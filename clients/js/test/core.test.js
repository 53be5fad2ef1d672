// The pure session core (PROTOCOL.md §3.10): numbering, the window of
// unacknowledged messages, duplicates by per-stream seq, acknowledgements
// and the frames of a resume. No sockets, time passed in.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { QueueFullError, SessionCore, backoff, wire } from '../dist/index.js';

const secret = new Uint8Array(32).fill(7);
const nodeA = new Uint8Array(16).fill(0xa);
const nodeB = new Uint8Array(16).fill(0xb);
const session = (maxUnacked = 256) => ({ sid: 99n, secret, windowMs: 30000, maxUnacked });
const seqOf = (f) => wire.decodeMsg(f.subarray(6)).seq;
const dataOf = (f) => new TextDecoder().decode(wire.decodeMsg(f.subarray(6)).data);

test('messages are numbered from 1 and kept until acknowledged', () => {
  const c = new SessionCore('a', session());
  assert.deepEqual([c.send(4001, 'x'), c.send(4001, 'y'), c.send(4001, 'z')].map(seqOf), [1, 2, 3]);
  assert.equal(c.unacked, 3);
  assert.deepEqual(c.onMsgAck(2), []);
  assert.equal(c.unacked, 1);
  assert.equal(c.msgAck, 2);
  c.onMsgAck(1); // an older acknowledgement changes nothing
  assert.equal(c.msgAck, 2);
  c.onMsgAck(50); // beyond what was sent: capped
  assert.equal(c.msgAck, 3);
  assert.equal(c.unacked, 0);
  assert.equal(seqOf(c.send(4001, 'w')), 4);
});

test('no more than max_unacked messages in flight; the rest wait, in order', () => {
  const c = new SessionCore('a', session(4), { maxQueued: 3 });
  const sent = [];
  for (let i = 1; i <= 7; i++) {
    const f = c.send(4001, String(i));
    if (f) sent.push(f);
  }
  assert.deepEqual(sent.map(dataOf), ['1', '2', '3', '4']);
  assert.equal(c.unacked, 4);
  assert.equal(c.queued, 3);
  assert.throws(() => c.send(4001, '8'), QueueFullError);
  const more = c.onMsgAck(2);
  assert.deepEqual(more.map(seqOf), [5, 6]);
  assert.deepEqual(more.map(dataOf), ['5', '6']);
  assert.equal(c.queued, 1);
  // A new message goes behind the one still waiting.
  assert.equal(c.send(4001, '8'), undefined);
  assert.deepEqual(c.onMsgAck(6).map(dataOf), ['7', '8']);
  assert.equal(c.queued, 0);
});

test('the data of a waiting message is copied', () => {
  const c = new SessionCore('a', session(1));
  c.send(4001, 'first');
  const buf = new TextEncoder().encode('mine');
  assert.equal(c.send(4001, buf), undefined);
  buf.fill(0x21);
  assert.deepEqual(c.onMsgAck(1).map(dataOf), ['mine']);
});

test('pushes: duplicates dropped by seq per stream, unknown streams refused', () => {
  const c = new SessionCore('a', session());
  assert.throws(() => c.onPush(0, 1, 1), wire.ProtocolError);
  c.onStream({ stream: 0, node: nodeA, epoch: 1 });
  c.onStream({ stream: 1, node: nodeB, epoch: 7 });
  assert.equal(c.onPush(0, 1, 1), true);
  assert.equal(c.onPush(0, 1, 2), true);
  assert.equal(c.onPush(0, 1, 2), false);
  assert.equal(c.onPush(0, 1, 1), false);
  assert.equal(c.onPush(0, 1, 5), true, 'numbers may be skipped');
  assert.equal(c.onPush(0, 1, 4), false);
  assert.equal(c.onPush(0, 0, 1), true, 'streams are independent');
  // A new announcement of a known stream number replaces it.
  c.onStream({ stream: 0, node: nodeB, epoch: 2 });
  assert.equal(c.onPush(0, 0, 1), true);
  c.onStreamEnd(1);
  assert.throws(() => c.onPush(0, 1, 6), wire.ProtocolError);
});

test('a stream announced again (same node and epoch) keeps what was received, under its new number too', () => {
  const c = new SessionCore('a', session());
  c.onStream({ stream: 1, node: nodeB, epoch: 7 });
  assert.equal(c.onPush(0, 1, 1), true);
  assert.equal(c.onPush(0, 1, 2), true);
  c.onStream({ stream: 1, node: nodeB, epoch: 7 }); // the same number again
  assert.equal(c.onPush(0, 1, 2), false, 'sent again: a duplicate');
  c.onStream({ stream: 3, node: nodeB, epoch: 7 }); // moved to another number
  assert.throws(() => c.onPush(0, 1, 3), wire.ProtocolError, 'the old number is gone');
  assert.equal(c.onPush(0, 3, 1), false, 'sent again under the new number: a duplicate');
  assert.equal(c.onPush(0, 3, 3), true);
  c.onStream({ stream: 3, node: nodeB, epoch: 8 }); // a new epoch: a new stream
  assert.equal(c.onPush(0, 3, 1), true);
});

test('acknowledgements: every 32 pushes or 100 ms after the first, never stream 0', () => {
  const c = new SessionCore('a', session());
  c.onStream({ stream: 0, node: nodeA, epoch: 1 });
  c.onStream({ stream: 1, node: nodeB, epoch: 7 });
  c.onStream({ stream: 2, node: nodeA, epoch: 3 });
  c.onPush(1000, 0, 1);
  assert.equal(c.nextAckAt(), undefined, 'broadcasts are not acknowledged');
  assert.equal(c.ackDue(5000), undefined);
  c.onPush(1000, 1, 1);
  assert.equal(c.nextAckAt(), 1100);
  assert.equal(c.ackDue(1099), undefined);
  c.onPush(1050, 2, 4);
  assert.deepEqual(wire.decodeAck(c.ackDue(1100).subarray(6)), [{ stream: 1, seq: 1 }, { stream: 2, seq: 4 }]);
  assert.equal(c.nextAckAt(), undefined);
  for (let i = 2; i <= 32; i++) assert.equal(c.onPush(2000, 1, i), true);
  assert.equal(c.ackDue(2000), undefined, '31 pushes');
  c.onPush(2000, 1, 33);
  assert.deepEqual(wire.decodeAck(c.ackDue(2000).subarray(6)), [{ stream: 1, seq: 33 }]);
  assert.equal(c.ackNow(), undefined, 'nothing moved');
});

test('resume: the ClientResume, then every unacknowledged message again, in order', () => {
  const c = new SessionCore('alice', session(3));
  c.onStream({ stream: 0, node: nodeA, epoch: 1 });
  c.onStream({ stream: 4, node: nodeB, epoch: 9 });
  c.onPush(0, 0, 10);
  c.onPush(0, 4, 2);
  for (const d of ['1', '2', '3', '4', '5']) c.send(4001, d);
  c.onMsgAck(1);
  const [resume, ...resent] = c.resumeFrames();
  const r = wire.decodeResume(resume.subarray(6));
  assert.equal(r.account, 'alice');
  assert.equal(r.sid, 99n);
  assert.deepEqual(r.secret, secret);
  assert.equal(r.msgAck, 1);
  assert.deepEqual(r.streams, [{ stream: 0, node: nodeA, epoch: 1, last: 10 }, { stream: 4, node: nodeB, epoch: 9, last: 2 }]);
  assert.deepEqual(resent.map(seqOf), [2, 3, 4]);
  assert.equal(c.ackNow(), undefined, 'the resume acknowledged what it lists');
  // The gateway's answer acknowledges more; waiting messages follow.
  assert.deepEqual(c.onResumed(3).map(dataOf), ['5']);
  assert.equal(c.unacked, 2);
  assert.deepEqual(c.resumeFrames().slice(1).map(seqOf), [4, 5], 'a second resume resends what is still unacknowledged');
});

test('encoders refuse what the gateway would kick for', () => {
  assert.throws(() => wire.encodeLogin('', 't'), RangeError);
  assert.throws(() => wire.encodeLogin('x'.repeat(65), 't'), RangeError);
  assert.throws(() => wire.encodeMsg(0, 4001), RangeError);
  assert.throws(() => wire.encodeMsg(1, -1), RangeError);
  assert.throws(() => wire.encodeMsg(1, 2 ** 64), RangeError);
  assert.throws(() => wire.encodeAck([]), RangeError);
  assert.equal(wire.decodeMsg(wire.encodeMsg(1, (1n << 64n) - 1n).subarray(6)).cmd, (1n << 64n) - 1n);
});

test('decoders refuse frames of the wrong size', () => {
  assert.throws(() => wire.decodeSession(new Uint8Array(45)), wire.ProtocolError);
  assert.throws(() => wire.decodeSession(new Uint8Array(46)), wire.ProtocolError, 'session id 0');
  assert.throws(() => wire.decodeStream(new Uint8Array(23)), wire.ProtocolError);
  assert.throws(() => wire.decodeMsgAck(new Uint8Array(5)), wire.ProtocolError);
  assert.throws(() => wire.decodeStreamEnd(new Uint8Array(3)), wire.ProtocolError);
  assert.throws(() => wire.decodeError(new Uint8Array(9)), wire.ProtocolError);
  assert.throws(() => wire.decodePush(new Uint8Array(13)), wire.ProtocolError);
  assert.throws(() => wire.decodeResumed(new Uint8Array(6)), wire.ProtocolError);
  assert.throws(() => new wire.FrameReader().push(Uint8Array.of(0, 0, 0, 1, 0, 0x66)), wire.ProtocolError);
  assert.throws(() => new wire.FrameReader(100).push(Uint8Array.of(0, 0, 0, 101, 0, 0x66)), wire.ProtocolError);
});

test('backoff doubles from min to max, jittered by [0.75, 1.25)', () => {
  assert.equal(backoff(0, 50, 2000, () => 0), 37.5);
  assert.equal(backoff(0, 50, 2000, () => 0.5), 50);
  assert.equal(backoff(3, 50, 2000, () => 0.5), 400);
  assert.equal(backoff(10, 50, 2000, () => 0.5), 2000);
  assert.equal(backoff(1000, 50, 2000, () => 0.999999) < 2500, true);
});
