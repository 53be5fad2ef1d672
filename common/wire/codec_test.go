package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/xserver/xserver/common"
)

func payloadOf(t testing.TB, frame []byte) (Kind, []byte) {
	t.Helper()
	k, p, err := NewReader(bytes.NewReader(frame), 1<<20, 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

func TestLoginCodec(t *testing.T) {
	k, p := payloadOf(t, AppendLogin(nil, "alice", "tok-123"))
	if k != KindClientLogin {
		t.Fatal(k)
	}
	l, err := DecodeLogin(p)
	if err != nil || l.Account != "alice" || l.Token != "tok-123" {
		t.Fatalf("%+v %v", l, err)
	}
	bad := [][]byte{
		nil, {0}, {3, 'a', 'b'}, {1, 'a', 0, 0}, {1, 'a', 0, 3, 'x'},
		{1, 'a', 0, 1, 'x', 'y'}, {1, 0xff, 0, 1, 'x'}, {65},
	}
	for i, b := range bad {
		if _, err := DecodeLogin(b); !errors.Is(err, common.ErrBadInput) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestDataAndCoded(t *testing.T) {
	k, p := payloadOf(t, AppendData(nil, 4001, []byte("hi")))
	cmd, data, err := DecodeData(p)
	if k != KindClientData || err != nil || cmd != 4001 || string(data) != "hi" {
		t.Fatal(k, cmd, string(data), err)
	}
	b := make([]byte, DataSize(2))
	PutData(b, 4001, []byte("hi"))
	if !bytes.Equal(b, AppendData(nil, 4001, []byte("hi"))) {
		t.Fatal("PutData differs from AppendData")
	}
	_, p = payloadOf(t, AppendCoded(nil, KindClientKick, CodeDuplicate, "elsewhere"))
	code, text, err := DecodeCoded(p)
	if err != nil || code != CodeDuplicate || text != "elsewhere" {
		t.Fatal(code, text, err)
	}
	if _, _, err := DecodeData([]byte{1, 2}); err == nil {
		t.Fatal("short data accepted")
	}
}

func TestRelayCodecs(t *testing.T) {
	src, dst := common.NewNodeID(), common.NewNodeID()
	in := NodeMsg{Op: OpCall, SrcType: 5, Src: src, Dst: dst, Cmd: 9, ID: 77, Expire: 1234567, Data: []byte("yz")}
	_, p := payloadOf(t, AppendNodeMsg(nil, &in))
	m, err := DecodeNodeMsg(p)
	if err != nil || m.Op != OpCall || m.Src != src || m.Dst != dst || m.SrcType != 5 || m.Cmd != 9 || m.ID != 77 || m.Expire != 1234567 || string(m.Data) != "yz" {
		t.Fatalf("%+v %v", m, err)
	}
	if op, id, cmd, call, exp, ok := NodeMsgRoute(p); !ok || op != OpCall || id != dst || cmd != 9 || call != 77 || exp != 1234567 {
		t.Fatal("route")
	}
	bad := append([]byte(nil), p...)
	bad[0] = 9
	if _, err := DecodeNodeMsg(bad); err == nil {
		t.Fatal("unknown op accepted")
	}
	_, p = payloadOf(t, AppendUndeliverable(nil, &Undeliverable{To: dst, Cmd: 9, Code: CodeNoNode, Op: OpCall, ID: 77}))
	if u, err := DecodeUndeliverable(p); err != nil || u.To != dst || u.Cmd != 9 || u.Code != CodeNoNode || u.Op != OpCall || u.ID != 77 {
		t.Fatal(u, err)
	}
	_, p = payloadOf(t, AppendKick(nil, "bob", CodeKicked, "cheating"))
	if a, code, r, err := DecodeKick(p); err != nil || string(a) != "bob" || code != CodeKicked || r != "cheating" {
		t.Fatal(string(a), code, r, err)
	}
	_, p = payloadOf(t, AppendBroadcast(nil, 3, []byte("all")))
	if c, d, err := DecodeBroadcast(p); err != nil || c != 3 || string(d) != "all" {
		t.Fatal(c, d, err)
	}
}

// FuzzClientFrame feeds arbitrary bytes through the gateway's client-side
// decoding path: framing, then the decoder for whatever kind came out.
func FuzzClientFrame(f *testing.F) {
	f.Add(AppendLogin(nil, "alice", "token"))
	f.Add(AppendData(nil, 4001, []byte("payload")))
	f.Add(AppendData(AppendLogin(nil, "a", "t"), 1, nil))
	f.Add([]byte{0, 0, 0, 2, 0, 102})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 4096, 64)
		for i := 0; i < 100; i++ {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			switch k {
			case KindClientLogin:
				if l, err := DecodeLogin(p); err == nil {
					again := AppendLogin(nil, l.Account, l.Token)
					if !bytes.Equal(again[HeaderSize:], p) {
						t.Fatalf("login does not round-trip")
					}
				}
			case KindClientData:
				if cmd, d, err := DecodeData(p); err == nil {
					if !bytes.Equal(AppendData(nil, cmd, d)[HeaderSize:], p) {
						t.Fatalf("data does not round-trip")
					}
				}
			}
		}
	})
}

// FuzzLogin targets the login payload decoder directly.
func FuzzLogin(f *testing.F) {
	f.Add(AppendLogin(nil, "alice", "token")[HeaderSize:])
	f.Add([]byte{64})
	f.Add([]byte{1, 'a', 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		l, err := DecodeLogin(p)
		if err != nil {
			return
		}
		if len(l.Account) == 0 || len(l.Account) > MaxAccount || len(l.Token) == 0 || len(l.Token) > MaxToken {
			t.Fatalf("accepted out-of-bounds login %q", l.Account)
		}
	})
}

// FuzzRelayFrame covers the gateway's and node's relay-link decoders.
func FuzzRelayFrame(f *testing.F) {
	f.Add(AppendDeliver(nil, "bob", 1, 2, 7, []byte("x")))
	f.Add(AppendNodeMsg(nil, &NodeMsg{Cmd: 1}))
	f.Add(AppendKick(nil, "bob", 8, "r"))
	f.Add(AppendLose(nil, "bob", 9, LoseMoved))
	f.Add(AppendResumeReq(nil, "bob", 9, []EpochFrom{{1, 2}}))
	f.Add(AppendResumeState(nil, "bob", &ResumeState{SessRef: SessRef{Sid: 9}, Hi: 3, Streams: []EpochStatus{{1, StreamLost}}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 4096, 64)
		for i := 0; i < 100; i++ {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			switch k {
			case KindDeliver:
				if d, err := DecodeDeliver(p); err == nil {
					if !bytes.Equal(AppendDeliver(nil, string(d.Account), d.Sid, d.Csq, d.Cmd, d.Data)[HeaderSize:], p) {
						t.Fatal("deliver does not round-trip")
					}
				}
			case KindPush:
				if f, err := DecodePushFrame(p); err == nil {
					b := make([]byte, PushSizeFor(string(f.Account), len(f.Data)))
					PutPushFrame(b, string(f.Account), f.Sid, f.Epoch, f.Seq, f.Flags, f.Cmd, f.Data)
					if !bytes.Equal(b[HeaderSize:], p) {
						t.Fatal("push does not round-trip")
					}
				}
			case KindLinkAck:
				DecodeLinkAck(p)
			case KindDelivered, KindResend:
				DecodeStreamSeq(p)
			case KindNotHere, KindSessionPaused, KindClaim:
				DecodeRef(p)
			case KindSessionOnline:
				DecodeSessionOnline(p)
			case KindLoseAccount:
				DecodeLose(p)
			case KindResume:
				if r, req, err := DecodeResumeReq(nil, p); err == nil {
					if !bytes.Equal(AppendResumeReq(nil, string(r.Account), r.Sid, req)[HeaderSize:], p) {
						t.Fatal("resume does not round-trip")
					}
				}
			case KindResumeState:
				if st, err := DecodeResumeState(p); err == nil {
					if !bytes.Equal(AppendResumeState(nil, string(st.Account), &st)[HeaderSize:], p) {
						t.Fatal("resume state does not round-trip")
					}
				}
			case KindNodeMsg:
				DecodeNodeMsg(p)
			case KindKick:
				DecodeKick(p)
			case KindUndeliverable:
				DecodeUndeliverable(p)
			case KindBroadcast:
				DecodeBroadcast(p)
			}
		}
	})
}

func TestGroupCodecs(t *testing.T) {
	k, p := payloadOf(t, AppendGroupMember(nil, KindGroupJoin, "world", "alice"))
	g, a, err := DecodeGroupMember(p)
	if k != KindGroupJoin || err != nil || string(g) != "world" || string(a) != "alice" {
		t.Fatal(k, string(g), string(a), err)
	}
	_, p = payloadOf(t, AppendGroupBroadcast(nil, "room 1", 77, []byte("hi")))
	g, cmd, data, err := DecodeGroupBroadcast(p)
	if err != nil || string(g) != "room 1" || cmd != 77 || string(data) != "hi" {
		t.Fatal(string(g), cmd, string(data), err)
	}
	_, p = payloadOf(t, AppendGroupQuery(nil, 9, "guild"))
	id, g, err := DecodeGroupQuery(p)
	if err != nil || id != 9 || string(g) != "guild" {
		t.Fatal(id, string(g), err)
	}
	_, p = payloadOf(t, AppendGroupMembers(nil, 9, true, []string{"a", "bob"}))
	id, last, accts, err := DecodeGroupMembers(nil, p)
	if err != nil || id != 9 || !last || len(accts) != 2 || accts[1] != "bob" {
		t.Fatal(id, last, accts, err)
	}
	_, p = payloadOf(t, AppendShed(nil, Shed{Through: 5, Count: 3}))
	if s, err := DecodeShed(p); err != nil || s.Through != 5 || s.Count != 3 {
		t.Fatal(s, err)
	}
	bad := [][]byte{nil, {0}, {1, 'g'}, {1, 'g', 0}, {1, '\n', 1, 'a'}, {65}, {1, 'g', 1, 'a', 'x'}}
	for i, b := range bad {
		if _, _, err := DecodeGroupMember(b); !errors.Is(err, common.ErrBadInput) {
			t.Errorf("member case %d: %v", i, err)
		}
	}
	if _, _, _, err := DecodeGroupMembers(nil, []byte{0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0}); err == nil {
		t.Error("unknown flags accepted")
	}
	if _, _, _, err := DecodeGroupMembers(nil, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1}); err == nil {
		t.Error("missing member accepted")
	}
}

// FuzzGroupFrame covers the group decoders: whatever decodes must encode
// back to the same bytes.
func FuzzGroupFrame(f *testing.F) {
	f.Add(AppendGroupMember(nil, KindGroupJoin, "world", "alice"))
	f.Add(AppendGroupMember(nil, KindGroupLeave, "w", "b"))
	f.Add(AppendGroupBroadcast(nil, "world", 1, []byte("x")))
	f.Add(AppendGroupQuery(nil, 3, "world"))
	f.Add(AppendGroupMembers(nil, 3, true, []string{"a", "b"}))
	f.Add(AppendShed(nil, Shed{Through: 1, Count: 2}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 1<<16, 64)
		for i := 0; i < 100; i++ {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			var again []byte
			switch k {
			case KindGroupJoin, KindGroupLeave:
				g, a, err := DecodeGroupMember(p)
				if err != nil {
					continue
				}
				again = AppendGroupMember(nil, k, string(g), string(a))
			case KindGroupBroadcast:
				g, cmd, d, err := DecodeGroupBroadcast(p)
				if err != nil {
					continue
				}
				again = AppendGroupBroadcast(nil, string(g), cmd, d)
			case KindGroupQuery:
				id, g, err := DecodeGroupQuery(p)
				if err != nil {
					continue
				}
				again = AppendGroupQuery(nil, id, string(g))
			case KindGroupMembers:
				id, last, accts, err := DecodeGroupMembers(nil, p)
				if err != nil {
					continue
				}
				again = AppendGroupMembers(nil, id, last, accts)
			case KindClientShed:
				s, err := DecodeShed(p)
				if err != nil {
					continue
				}
				again = AppendShed(nil, s)
			default:
				continue
			}
			if !bytes.Equal(again[HeaderSize:], p) {
				t.Fatalf("%s does not round-trip", k)
			}
		}
	})
}
