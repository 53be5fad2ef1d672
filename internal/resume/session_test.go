package resume

import (
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

func TestSessionMessages(t *testing.T) {
	s := NewSession(1, true)
	steps := []struct {
		csq  uint32
		want MsgVerdict
	}{{1, MsgForward}, {2, MsgForward}, {2, MsgDuplicate}, {4, MsgBad}, {3, MsgForward}, {1, MsgDuplicate}}
	for i, st := range steps {
		if got := s.OnMsg(st.csq); got != st.want {
			t.Fatalf("step %d: OnMsg(%d) = %v, want %v", i, st.csq, got, st.want)
		}
	}
	if s.Floor() != 0 || s.InFlight() != 3 {
		t.Fatalf("floor %d in flight %d", s.Floor(), s.InFlight())
	}
	s.Done(2) // processed out of order (two nodes)
	if s.Floor() != 0 {
		t.Fatalf("floor %d", s.Floor())
	}
	if _, ok := s.AckDue(1, true); ok {
		t.Fatal("ack with nothing new")
	}
	s.Done(1)
	if s.Floor() != 2 {
		t.Fatalf("floor %d", s.Floor())
	}
	if f, ok := s.AckDue(16, false); ok {
		t.Fatalf("ack before 16 messages: %d", f)
	}
	if f, ok := s.AckDue(16, true); !ok || f != 2 {
		t.Fatalf("forced ack %d %v", f, ok)
	}
	s.Done(3)
	if s.Floor() != 3 {
		t.Fatal(s.Floor())
	}
}

func TestSessionPushes(t *testing.T) {
	n := common.NodeID{7}
	s := NewSession(1, true)
	type step struct {
		epoch, seq      uint32
		owner, attached bool
		want            PushVerdict
		expected        uint32
	}
	steps := []step{
		{1, 1, true, true, PushAnnounce, 2},
		{1, 1, true, true, PushDuplicate, 2},
		{1, 3, true, true, PushGap, 2},
		{1, 4, true, true, PushDuplicate, 2}, // gap already reported
		{1, 2, true, true, PushDeliver, 3},
		{1, 3, false, true, PushRefuse, 4}, // the sender lost the account
		{1, 4, true, false, PushHold, 4},   // client away
		{2, 2, true, true, PushGap, 1},     // a stream seen first mid-way
		{2, 1, true, true, PushAnnounce, 2},
	}
	for i, st := range steps {
		v, str := s.OnPush(n, st.epoch, st.seq, st.owner, st.attached)
		if v != st.want || str.Expected != st.expected {
			t.Fatalf("step %d: verdict %v expected %d, want %v %d", i, v, str.Expected, st.want, st.expected)
		}
	}
	if ids := []uint16{s.streams[0].ID, s.streams[1].ID}; ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("stream ids %v", ids)
	}
	// The client's queue was full: undo, then ask again when it drains.
	v, st := s.OnPush(n, 1, 4, true, true)
	if v != PushDeliver {
		t.Fatal(v)
	}
	s.Unqueued(st)
	if v, _ := s.OnPush(n, 1, 5, true, true); v != PushDuplicate {
		t.Fatalf("a frame after a stall: %v", v)
	}
	if stalled := s.Stalled(nil); len(stalled) != 1 || stalled[0].Expected != 4 {
		t.Fatalf("stalled %v", stalled)
	}
	if got := s.OnClientAck(1, 3); got == nil || got.Acked != 3 {
		t.Fatal("ack not recorded")
	}
	if got := s.OnClientAck(1, 9); got != nil {
		t.Fatal("ack beyond what was delivered")
	}
}

func TestSessionResumeHere(t *testing.T) {
	n1, n2 := common.NodeID{1}, common.NodeID{2}
	s := NewSession(1, true)
	for seq := uint32(1); seq <= 5; seq++ {
		s.OnPush(n1, 10, seq, true, true)
	}
	s.OnPush(n2, 20, 1, true, true) // announced, but the client never saw it
	s.OnMsg(1)
	s.OnMsg(2)
	s.Done(1)
	pos := []wire.StreamPos{{Stream: 1, Node: n1, Epoch: 10, Last: 3}, {Stream: 9, Node: n2, Epoch: 99, Last: 4}}
	req, acked := s.ResumeHere(pos, 1, nil)
	if r := req[n1]; len(r) != 1 || r[0].From != 4 {
		t.Fatalf("n1 resend %v", r)
	}
	if r := req[n2]; len(r) != 1 || r[0].From != 1 || s.streams[1].Announced {
		t.Fatalf("n2 resend %v", r)
	}
	if len(acked) != 1 || acked[0].Acked != 3 {
		t.Fatalf("acked %v", acked)
	}
	// Resent messages up to the last forwarded one are duplicates.
	if v := s.OnMsg(2); v != MsgDuplicate {
		t.Fatal(v)
	}
	if v, _ := s.OnPush(n1, 10, 4, true, true); v != PushDeliver {
		t.Fatal(v)
	}
}

func TestAdoptResume(t *testing.T) {
	n1, old := common.NodeID{1}, common.NodeID{9}
	pos := []wire.StreamPos{{Stream: 0, Node: old, Epoch: 1, Last: 40}, {Stream: 3, Node: n1, Epoch: 10, Last: 7}}
	s, req := AdoptResume(5, pos, 2, old)
	if len(s.streams) != 1 || s.nextID != 4 || len(req[n1]) != 1 || req[n1][0].From != 8 {
		t.Fatalf("%+v %v", s.streams, req)
	}
	// Node states: 3 and 5 were processed (4 was lost with the gateway).
	var a Inbound
	a.Accept(5, 1)
	a.Accept(5, 3)
	a.Accept(5, 5)
	var p Processed
	p.Add(a.State())
	s.SetProcessed(&p)
	for i, tc := range []struct {
		csq  uint32
		want MsgVerdict
	}{{2, MsgDuplicate}, {3, MsgDuplicate}, {4, MsgForward}, {5, MsgSkip}, {6, MsgForward}} {
		if got := s.OnMsg(tc.csq); got != tc.want {
			t.Fatalf("step %d: OnMsg(%d) = %v, want %v", i, tc.csq, got, tc.want)
		}
	}
	if f, ok := s.AckDue(1, true); !ok || f != 3 {
		t.Fatalf("ack %d %v", f, ok)
	}
}

func TestClient(t *testing.T) {
	c := NewClient(ClientConfig{AckEvery: 3, AckDelay: 100 * time.Millisecond}, "a", wire.Session{ID: 4})
	for i := 0; i < wire.MaxUnacked; i++ {
		if _, err := c.Send(1, nil); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, err := c.Send(1, nil); err != ErrWindowFull {
		t.Fatalf("window: %v", err)
	}
	c.OnMsgAck(250)
	if c.Unacked() != 6 || c.Floor() != 250 {
		t.Fatalf("unacked %d", c.Unacked())
	}
	c.OnMsgAck(1000) // beyond what was sent: clamp
	if c.Unacked() != 0 {
		t.Fatal(c.Unacked())
	}
	c.OnStream(wire.StreamPos{Stream: 1, Node: common.NodeID{1}, Epoch: 2})
	if _, err := c.OnPush(t0, 2, 1); err == nil {
		t.Fatal("push on an unknown stream")
	}
	for i, tc := range []struct {
		seq  uint32
		want bool
	}{{1, true}, {1, false}, {3, true}, {2, false}} {
		if got, _ := c.OnPush(t0, 1, tc.seq); got != tc.want {
			t.Fatalf("step %d: %v", i, got)
		}
	}
	if c.AckDue(t0.Add(50*time.Millisecond)) != nil {
		t.Fatal("ack too early")
	}
	if c.AckDue(t0.Add(100*time.Millisecond)) == nil {
		t.Fatal("ack not due after the delay")
	}
	c.OnPush(t0, 1, 4)
	c.OnPush(t0, 1, 5)
	c.OnPush(t0, 1, 6)
	b := c.AckDue(t0)
	if b == nil {
		t.Fatal("ack not due after AckEvery frames")
	}
	_, p := decodeOne(t, b)
	acks, err := wire.DecodeAck(nil, p)
	if err != nil || len(acks) != 1 || acks[0].Seq != 6 {
		t.Fatalf("%v %v", acks, err)
	}
	c.Send(7, []byte("x"))
	b = c.ResumeFrames()
	_, p = decodeOne(t, b)
	r, err := wire.DecodeResume(p)
	if err != nil || r.ID != 4 || r.MsgAck != c.Floor() || len(r.Streams) != 1 || r.Streams[0].Last != 6 {
		t.Fatalf("resume %+v %v", r, err)
	}
	if want := len(wire.AppendResume(nil, &r)) + wire.MsgSize(1); len(b) != want {
		t.Fatalf("resume frames: %d bytes, want %d (resume + one message)", len(b), want)
	}
}

func decodeOne(t *testing.T, b []byte) (wire.Kind, []byte) {
	t.Helper()
	k, p, err := wire.NewReader(bytesReader(b), 1<<20, 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

// A stream is its (node, epoch): announced again, under its number or
// another (a resume that did not list it), it keeps what was received,
// so the frames that come again are dropped; a new epoch is a new stream.
func TestClientStreamAnnouncedAgain(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewClient(ClientConfig{}, "a", wire.Session{ID: 4})
	node := common.NodeID{1}
	c.OnStream(wire.StreamPos{Stream: 1, Node: node, Epoch: 7})
	for _, seq := range []uint32{1, 2} {
		if fresh, err := c.OnPush(t0, 1, seq); !fresh || err != nil {
			t.Fatalf("seq %d: %v %v", seq, fresh, err)
		}
	}
	c.OnStream(wire.StreamPos{Stream: 1, Node: node, Epoch: 7})
	if fresh, _ := c.OnPush(t0, 1, 2); fresh {
		t.Fatal("seq 2 again after the same announcement: delivered twice")
	}
	c.OnStream(wire.StreamPos{Stream: 3, Node: node, Epoch: 7})
	if _, err := c.OnPush(t0, 1, 3); err == nil {
		t.Fatal("the stream's old number still accepted")
	}
	if fresh, _ := c.OnPush(t0, 3, 1); fresh {
		t.Fatal("seq 1 again under the new number: delivered twice")
	}
	if fresh, _ := c.OnPush(t0, 3, 3); !fresh {
		t.Fatal("seq 3 under the new number dropped")
	}
	c.OnStream(wire.StreamPos{Stream: 3, Node: node, Epoch: 8})
	if fresh, _ := c.OnPush(t0, 3, 1); !fresh {
		t.Fatal("a new epoch is a new stream: seq 1 dropped")
	}
}
