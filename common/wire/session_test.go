package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/xserver/xserver/common"
)

func TestLoginVersion(t *testing.T) {
	_, p := payloadOf(t, AppendLoginVersion(nil, "alice", "tok", ProtocolV2))
	l, err := DecodeLogin(p)
	if err != nil || l.Version != ProtocolV2 || l.Token != "tok" {
		t.Fatalf("%+v %v", l, err)
	}
	_, p = payloadOf(t, AppendLoginVersion(nil, "alice", "tok", 3))
	if _, err := DecodeLogin(p); !errors.Is(err, common.ErrBadInput) {
		t.Fatalf("unknown version accepted: %v", err)
	}
}

func TestSessionCodecs(t *testing.T) {
	s := Session{ID: 1<<63 | 5, WindowMs: 30000, MaxUnacked: MaxUnacked}
	s.Secret[0], s.Secret[31] = 1, 2
	_, p := payloadOf(t, AppendSession(nil, &s))
	if got, err := DecodeSession(p); err != nil || got != s {
		t.Fatalf("%+v %v", got, err)
	}
	_, p = payloadOf(t, AppendMsg(nil, 7, 4001, []byte("hi")))
	if seq, cmd, d, err := DecodeMsg(p); err != nil || seq != 7 || cmd != 4001 || string(d) != "hi" {
		t.Fatal(seq, cmd, d, err)
	}
	if _, _, _, err := DecodeMsg(AppendMsg(nil, 0, 1, nil)[HeaderSize:]); err == nil {
		t.Fatal("seq 0 accepted")
	}
	k, p := payloadOf(t, AppendPush(nil, 3, 9, 77, []byte("x")))
	if pu, err := DecodePush(p); k != KindClientPush || err != nil || pu.Stream != 3 || pu.Seq != 9 || pu.Cmd != 77 || string(pu.Data) != "x" {
		t.Fatal(pu, err)
	}
	n := common.NewNodeID()
	_, p = payloadOf(t, AppendStreamOpen(nil, 4, n, 99))
	if sp, err := DecodeStreamOpen(p); err != nil || sp.Stream != 4 || sp.Node != n || sp.Epoch != 99 {
		t.Fatal(sp, err)
	}
	_, p = payloadOf(t, AppendAck(nil, []Ack{{1, 2}, {3, 4}}))
	if acks, err := DecodeAck(nil, p); err != nil || len(acks) != 2 || acks[1] != (Ack{3, 4}) {
		t.Fatal(acks, err)
	}
	if _, err := DecodeAck(nil, []byte{0, 0}); err == nil {
		t.Fatal("empty ack accepted")
	}
	r := Resume{Account: "bob", ID: 8, MsgAck: 12, Streams: []StreamPos{{Stream: 0, Node: n, Epoch: 1, Last: 2}, {Stream: 5, Node: n, Epoch: 3, Last: 4}}}
	_, p = payloadOf(t, AppendResume(nil, &r))
	got, err := DecodeResume(p)
	if err != nil || got.Account != "bob" || got.ID != 8 || got.MsgAck != 12 || len(got.Streams) != 2 || got.Streams[1] != r.Streams[1] {
		t.Fatalf("%+v %v", got, err)
	}
	_, p = payloadOf(t, AppendResumed(nil, &Resumed{Code: CodeExpired, MsgAck: 3, Flags: ResumedBroadcastGap, Text: "gone"}))
	if rs, err := DecodeResumed(p); err != nil || rs.Code != CodeExpired || rs.MsgAck != 3 || rs.Flags != 1 || rs.Text != "gone" {
		t.Fatal(rs, err)
	}
}

func TestRelayV2Codecs(t *testing.T) {
	_, p := payloadOf(t, AppendDeliver(nil, "bob", 5, 6, 7, []byte("d")))
	if d, err := DecodeDeliver(p); err != nil || string(d.Account) != "bob" || d.Sid != 5 || d.Csq != 6 || d.Cmd != 7 || string(d.Data) != "d" {
		t.Fatal(d, err)
	}
	b := make([]byte, PushSizeFor("bob", 2))
	PutPushFrame(b, "bob", 5, 9, 1, PushOwner, 3, []byte("pp"))
	RestampPush(b, 6, 10, 2)
	_, p = payloadOf(t, b)
	if f, err := DecodePushFrame(p); err != nil || f.Sid != 6 || f.Epoch != 10 || f.Seq != 2 || f.Flags != PushOwner || f.Cmd != 3 || string(f.Data) != "pp" {
		t.Fatal(f, err)
	}
	_, p = payloadOf(t, AppendStreamSeq(nil, KindResend, "bob", 5, 9, 3))
	if r, e, s, err := DecodeStreamSeq(p); err != nil || r.Sid != 5 || e != 9 || s != 3 {
		t.Fatal(r, e, s, err)
	}
	_, p = payloadOf(t, AppendSessionOnline(nil, "bob", 5, 30000, OnlineResumed))
	if r, w, f, err := DecodeSessionOnline(p); err != nil || string(r.Account) != "bob" || w != 30000 || f != OnlineResumed {
		t.Fatal(r, w, f, err)
	}
	_, p = payloadOf(t, AppendLose(nil, "bob", 5, LoseMoved))
	if r, why, err := DecodeLose(p); err != nil || r.Sid != 5 || why != LoseMoved {
		t.Fatal(r, why, err)
	}
	_, p = payloadOf(t, AppendRef(nil, KindClaim, "bob", 5))
	if r, err := DecodeRef(p); err != nil || r.Sid != 5 {
		t.Fatal(r, err)
	}
	_, p = payloadOf(t, AppendLinkAck(nil, 1<<40))
	if n, err := DecodeLinkAck(p); err != nil || n != 1<<40 {
		t.Fatal(n, err)
	}
	st := ResumeState{SessRef: SessRef{Sid: 5}, Hi: 300, Streams: []EpochStatus{{9, StreamOK}, {8, StreamForgotten}}}
	st.Bitmap[0] = 0x81
	_, p = payloadOf(t, AppendResumeState(nil, "bob", &st))
	if got, err := DecodeResumeState(p); err != nil || got.Hi != 300 || got.Bitmap != st.Bitmap || len(got.Streams) != 2 || got.Streams[1] != st.Streams[1] {
		t.Fatal(got, err)
	}
}

// FuzzSessionFrame covers the version 2 client decoders (both directions).
func FuzzSessionFrame(f *testing.F) {
	n := common.NodeID{1, 2, 3}
	f.Add(AppendMsg(nil, 1, 4001, []byte("x")))
	f.Add(AppendAck(nil, []Ack{{1, 2}}))
	f.Add(AppendResume(nil, &Resume{Account: "a", ID: 3, Streams: []StreamPos{{Stream: 1, Node: n, Epoch: 2, Last: 3}}}))
	f.Add(AppendPush(nil, 1, 2, 3, []byte("y")))
	f.Add(AppendSession(nil, &Session{ID: 1}))
	f.Add(AppendResumed(nil, &Resumed{Code: 15, Text: "t"}))
	f.Add(AppendStreamOpen(nil, 2, n, 4))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 4096, 64)
		for i := 0; i < 100; i++ {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			switch k {
			case KindClientMsg:
				if seq, cmd, d, err := DecodeMsg(p); err == nil && !bytes.Equal(AppendMsg(nil, seq, cmd, d)[HeaderSize:], p) {
					t.Fatal("message does not round-trip")
				}
			case KindClientAck:
				if a, err := DecodeAck(nil, p); err == nil && !bytes.Equal(AppendAck(nil, a)[HeaderSize:], p) {
					t.Fatal("ack does not round-trip")
				}
			case KindClientResume:
				if rs, err := DecodeResume(p); err == nil && !bytes.Equal(AppendResume(nil, &rs)[HeaderSize:], p) {
					t.Fatal("resume does not round-trip")
				}
			case KindClientPush:
				if pu, err := DecodePush(p); err == nil && !bytes.Equal(AppendPush(nil, pu.Stream, pu.Seq, pu.Cmd, pu.Data)[HeaderSize:], p) {
					t.Fatal("push does not round-trip")
				}
			case KindClientSession:
				DecodeSession(p)
			case KindClientResumed:
				DecodeResumed(p)
			case KindClientStream:
				DecodeStreamOpen(p)
			case KindClientStreamEnd:
				DecodeStreamEnd(p)
			case KindClientMsgAck:
				DecodeMsgAck(p)
			}
		}
	})
}
