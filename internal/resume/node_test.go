package resume

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// pushes decodes the Push frames in b as "cmd@seq" tokens.
func pushes(t *testing.T, b []byte) []wire.PushFrame {
	t.Helper()
	var out []wire.PushFrame
	r := wire.NewReader(bytes.NewReader(b), 1<<20, 0)
	for {
		k, p, err := r.ReadFrame()
		if err != nil {
			return out
		}
		if k != wire.KindPush {
			continue
		}
		f, err := wire.DecodePushFrame(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Data = append([]byte(nil), f.Data...)
		f.Account = append([]byte(nil), f.Account...)
		out = append(out, f)
	}
}

func seqs(fs []wire.PushFrame) []uint32 {
	var s []uint32
	for _, f := range fs {
		s = append(s, f.Seq)
	}
	return s
}

func eqSeqs(a []uint32, b ...uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOutStream(t *testing.T) {
	var s OutStream
	s.Append("a", 0, 1, []byte("one"))
	if s.Unsent() != nil {
		t.Fatal("an unnumbered stream sent frames")
	}
	s.Rebase(9, 3)
	s.Append("a", 0, 2, []byte("two"))
	s.Append("a", 0, 3, []byte("three"))
	got := pushes(t, s.Unsent())
	if !eqSeqs(seqs(got), 1, 2, 3) || got[0].Sid != 9 || got[2].Epoch != 3 || string(got[2].Data) != "three" || got[0].Cmd != 1 {
		t.Fatalf("unsent %+v", got)
	}
	if s.Unsent() != nil {
		t.Fatal("sent twice")
	}
	if freed := s.Ack(2); freed == 0 || s.Len() != 1 || s.Acked() != 2 {
		t.Fatalf("ack: freed %d len %d", freed, s.Len())
	}
	if got := seqs(pushes(t, s.From(1))); !eqSeqs(got, 3) {
		t.Fatalf("from an acked seq: %v", got)
	}
	for i := 0; i < 100; i++ { // grows and compacts
		s.Append("a", 0, 9, bytes.Repeat([]byte{'x'}, i))
		if i%10 == 0 {
			s.Ack(s.Next() - 3)
		}
	}
	got = pushes(t, s.From(s.Next()-2))
	if !eqSeqs(seqs(got), s.Next()-2, s.Next()-1) || len(got[1].Data) != 99 {
		t.Fatalf("after compaction: %v", seqs(got))
	}
	s.Rebase(10, 4)
	got = pushes(t, s.Unsent())
	if got[0].Seq != 1 || got[0].Sid != 10 || len(got) != s.Len() {
		t.Fatalf("rebase: %v", seqs(got))
	}
	var cmds []uint64
	s.Drop("a", func(c uint64) { cmds = append(cmds, c) })
	if len(cmds) != len(got) || cmds[0] != 9 || s.Len() != 0 || s.Session() != 0 {
		t.Fatalf("drop: %v", cmds)
	}
}

var (
	gw1 = common.NodeID{1}
	gw2 = common.NodeID{2}
	t0  = time.Unix(1000, 0)
)

func newCore(cfg NodeConfig) *NodeCore {
	n := uint32(0)
	cfg.Rand = func() uint32 { n += 7; return n }
	return NewNodeCore(cfg)
}

func framesTo(t *testing.T, out *Output, gw common.NodeID) []wire.PushFrame {
	t.Helper()
	var b []byte
	for _, f := range out.Frames {
		if f.GW == gw {
			b = append(b, f.Bytes...)
		}
	}
	return pushes(t, b)
}

func kinds(out *Output) []wire.Kind {
	var ks []wire.Kind
	for _, f := range out.Frames {
		r := wire.NewReader(bytes.NewReader(f.Bytes), 1<<20, 0)
		for {
			k, _, err := r.ReadFrame()
			if err != nil {
				break
			}
			ks = append(ks, k)
		}
	}
	return ks
}

func events(out *Output) []EventKind {
	var ks []EventKind
	for _, e := range out.Events {
		ks = append(ks, e.Kind)
	}
	return ks
}

func TestNodeSendFindsHolder(t *testing.T) {
	c := newCore(NodeConfig{})
	c.LinkUp(t0, gw1)
	out, err := c.Send(t0, "alice", 1, []byte("a"))
	if err != nil || len(out.Lookups) != 1 || len(out.Frames) != 0 {
		t.Fatalf("first send: %+v %v", out, err)
	}
	out, _ = c.Send(t0, "alice", 2, []byte("b"))
	if len(out.Lookups) != 0 {
		t.Fatal("a second lookup while one runs")
	}
	out = c.LookupFailed(t0, "alice")
	if out = c.Tick(t0.Add(20 * time.Millisecond)); len(out.Lookups) != 0 {
		t.Fatal("retried before the backoff")
	}
	if out = c.Tick(t0.Add(time.Second)); len(out.Lookups) != 1 {
		t.Fatal("no retry after the backoff")
	}
	out = c.Holder(t0, "alice", gw1, 77)
	got := framesTo(t, out, gw1)
	if !eqSeqs(seqs(got), 1, 2) || got[0].Sid != 77 || got[0].Flags != 0 {
		t.Fatalf("after lookup: %+v", got)
	}
	out, _ = c.Send(t0, "alice", 3, nil)
	if got := framesTo(t, out, gw1); !eqSeqs(seqs(got), 3) {
		t.Fatalf("known holder: %v", seqs(got))
	}
	// The gateway no longer has the session: look it up again; the
	// account logged in again elsewhere, so the stream is renumbered.
	out = c.NotHere(t0, gw1, "alice", 77)
	if len(out.Lookups) != 1 {
		t.Fatal("no lookup after NotHere")
	}
	c.LinkUp(t0, gw2)
	out = c.Holder(t0, "alice", gw2, 78)
	got = framesTo(t, out, gw2)
	if !eqSeqs(seqs(got), 1, 2, 3) || got[0].Sid != 78 {
		t.Fatalf("rebased: %+v", got)
	}
	out = c.Delivered(t0, gw2, "alice", 78, got[0].Epoch, 3)
	if c.Bytes() != 0 {
		t.Fatalf("%d bytes kept after the ack", c.Bytes())
	}
}

func TestNodeOfflineReportsUndeliverable(t *testing.T) {
	c := newCore(NodeConfig{})
	c.Send(t0, "bob", 5, nil)
	c.Send(t0, "bob", 6, nil)
	out := c.Offline(t0, "bob")
	if len(out.Events) != 2 || out.Events[0].Cmd != 5 || out.Events[1].Kind != EvUndeliverable || out.Events[1].Code != wire.CodeNoNode || c.Bytes() != 0 {
		t.Fatalf("%+v", out.Events)
	}
}

func TestNodeLimits(t *testing.T) {
	c := newCore(NodeConfig{StreamLimit: 200, TotalLimit: 300})
	c.LinkUp(t0, gw1)
	c.SessionOnline(t0, gw1, "a", 1, 0)
	data := make([]byte, 60)
	var err error
	var out *Output
	for i := 0; i < 5 && err == nil; i++ {
		out, err = c.Send(t0, "a", 1, data)
	}
	if !errors.Is(err, ErrStreamFull) {
		t.Fatalf("err %v", err)
	}
	if ks := kinds(out); len(ks) != 1 || ks[0] != wire.KindKick {
		t.Fatalf("overflow did not kick: %v", ks)
	}
	if _, err := c.Send(t0, "b", 1, data); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(t0, "c", 1, data); !errors.Is(err, ErrNodeFull) {
		t.Fatalf("node limit: %v", err)
	}
}

func TestNodeOwnership(t *testing.T) {
	type step struct {
		do   func(c *NodeCore) *Output
		want []EventKind
	}
	online := func(gw common.NodeID, sid uint64) func(c *NodeCore) *Output {
		return func(c *NodeCore) *Output { return c.SessionOnline(t0, gw, "a", sid, 10*time.Second) }
	}
	paused := func(gw common.NodeID, sid uint64) func(c *NodeCore) *Output {
		return func(c *NodeCore) *Output { return c.SessionPaused(t0, gw, "a", sid) }
	}
	lose := func(gw common.NodeID, sid uint64, r uint8) func(c *NodeCore) *Output {
		return func(c *NodeCore) *Output { return c.Lose(t0, gw, "a", sid, r) }
	}
	down := func(gw common.NodeID) func(c *NodeCore) *Output {
		return func(c *NodeCore) *Output { return c.LinkDown(t0, gw) }
	}
	tick := func(d time.Duration) func(c *NodeCore) *Output {
		return func(c *NodeCore) *Output { return c.Tick(t0.Add(d)) }
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"lose once", []step{{online(gw1, 1), nil}, {lose(gw1, 1, wire.LoseEnded), []EventKind{EvLose}}, {lose(gw1, 1, wire.LoseEnded), nil}}},
		{"pause then resume", []step{{online(gw1, 1), nil}, {paused(gw1, 1), []EventKind{EvPaused}}, {online(gw1, 1), []EventKind{EvResumed}}}},
		{"ended from another gateway is ignored", []step{{online(gw1, 1), nil}, {lose(gw2, 1, wire.LoseEnded), nil}, {lose(gw1, 1, wire.LoseEnded), []EventKind{EvLose}}}},
		{"moved from any gateway", []step{{online(gw1, 1), nil}, {lose(gw2, 1, wire.LoseMoved), []EventKind{EvLose}}}},
		{"stale session ignored", []step{{online(gw1, 1), nil}, {online(gw2, 2), nil}, {lose(gw1, 1, wire.LoseEnded), nil}, {lose(gw2, 2, wire.LoseEnded), []EventKind{EvLose}}}},
		{"gateway died, nobody resumed", []step{{online(gw1, 1), nil}, {down(gw1), []EventKind{EvPaused}}, {tick(9 * time.Second), nil}, {tick(10 * time.Second), []EventKind{EvLose}}, {tick(time.Minute), nil}}},
		{"gateway died, resumed elsewhere", []step{{online(gw1, 1), nil}, {down(gw1), []EventKind{EvPaused}}, {online(gw2, 1), []EventKind{EvResumed}}, {tick(time.Minute), nil}, {lose(gw1, 1, wire.LoseEnded), nil}}},
		{"paused then link lost", []step{{online(gw1, 1), nil}, {paused(gw1, 1), []EventKind{EvPaused}}, {down(gw1), nil}, {tick(10 * time.Second), []EventKind{EvLose}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(NodeConfig{})
			c.LinkUp(t0, gw1)
			c.LinkUp(t0, gw2)
			for i, s := range tc.steps {
				got := events(s.do(c))
				if len(got) != len(s.want) {
					t.Fatalf("step %d: events %v, want %v", i, got, s.want)
				}
				for j := range got {
					if got[j] != s.want[j] {
						t.Fatalf("step %d: events %v, want %v", i, got, s.want)
					}
				}
			}
		})
	}
}

func TestNodeClaimAfterRelink(t *testing.T) {
	c := newCore(NodeConfig{})
	c.LinkUp(t0, gw1)
	c.SessionOnline(t0, gw1, "a", 1, 0)
	c.LinkDown(t0, gw1)
	out := c.LinkUp(t0.Add(time.Second), gw1)
	if ks := kinds(out); len(ks) != 1 || ks[0] != wire.KindClaim {
		t.Fatalf("relink sent %v", ks)
	}
	// The gateway rebound the account meanwhile.
	if ev := events(c.Lose(t0, gw1, "a", 1, wire.LoseMoved)); len(ev) != 1 || ev[0] != EvLose {
		t.Fatalf("claim answer: %v", ev)
	}
	if ev := events(c.Tick(t0.Add(time.Hour))); len(ev) != 0 {
		t.Fatalf("lose twice: %v", ev)
	}
}

func TestNodeOwnerFlagAndResume(t *testing.T) {
	c := newCore(NodeConfig{})
	c.LinkUp(t0, gw1)
	c.LinkUp(t0, gw2)
	c.SessionOnline(t0, gw1, "a", 5, 30*time.Second)
	var all []wire.PushFrame
	for i := 1; i <= 4; i++ {
		out, _ := c.Send(t0, "a", uint64(i), nil)
		all = append(all, framesTo(t, out, gw1)...)
	}
	if len(all) != 4 || all[0].Flags != wire.PushOwner {
		t.Fatalf("%+v", all)
	}
	epoch := all[0].Epoch
	c.Delivered(t0, gw1, "a", 5, epoch, 1)
	// The client got 1 and 2 before gw1 died; it resumes on gw2.
	c.LinkDown(t0, gw1)
	out := c.Resume(t0, gw2, "a", 5, []wire.EpochFrom{{Epoch: epoch, From: 3}, {Epoch: 12345, From: 1}})
	ks := kinds(out)
	if len(ks) < 1 || ks[0] != wire.KindResumeState {
		t.Fatalf("kinds %v", ks)
	}
	r := wire.NewReader(bytes.NewReader(out.Frames[0].Bytes), 1<<20, 0)
	_, p, _ := r.ReadFrame()
	st, err := wire.DecodeResumeState(p)
	if err != nil || len(st.Streams) != 2 || st.Streams[0].Status != wire.StreamOK || st.Streams[1].Status != wire.StreamLost {
		t.Fatalf("state %+v %v", st, err)
	}
	if got := seqs(framesTo(t, out, gw2)); !eqSeqs(got, 3, 4) {
		t.Fatalf("resent %v", got)
	}
	// A forgotten epoch of this core is reported as such.
	out = c.Resume(t0, gw2, "a", 5, []wire.EpochFrom{{Epoch: epoch - 1 + 0, From: 1}})
	_ = out
}

func TestNodeLinkDownResends(t *testing.T) {
	c := newCore(NodeConfig{})
	c.LinkUp(t0, gw1)
	c.Deliver(t0, gw1, "a", 3, 1)
	out, _ := c.Send(t0, "a", 1, nil)
	if len(framesTo(t, out, gw1)) != 1 {
		t.Fatal("not sent to the learned holder")
	}
	c.LinkDown(t0, gw1)
	out, _ = c.Send(t0, "a", 2, nil)
	if len(out.Frames) != 0 {
		t.Fatal("sent on a dead link")
	}
	out = c.LinkUp(t0, gw1)
	if got := seqs(framesTo(t, out, gw1)); !eqSeqs(got, 1, 2) {
		t.Fatalf("relink resent %v", got)
	}
}

func TestNodeDeliverDedupes(t *testing.T) {
	c := newCore(NodeConfig{})
	c.LinkUp(t0, gw1)
	for i, tc := range []struct {
		csq  uint32
		want bool
	}{{1, true}, {2, true}, {2, false}, {4, true}, {3, true}, {4, false}} {
		if _, ok := c.Deliver(t0, gw1, "a", 9, tc.csq); ok != tc.want {
			t.Fatalf("step %d: csq %d accepted %v", i, tc.csq, ok)
		}
	}
}

func TestNodeForgetsIdleAccounts(t *testing.T) {
	c := newCore(NodeConfig{ForgetAfter: time.Minute})
	c.LinkUp(t0, gw1)
	c.Deliver(t0, gw1, "a", 9, 1)
	c.SessionOnline(t0, gw1, "b", 9, 0)
	c.Tick(t0.Add(2 * time.Minute))
	if c.Accounts() != 1 || !c.Owned("b") {
		t.Fatalf("accounts %d", c.Accounts())
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// Acknowledgements may arrive out of order (a resume's implied ack, then a
// late ClientAck): an older one changes nothing, a newer one frees more.
func TestAcksOutOfOrder(t *testing.T) {
	c := newCore(NodeConfig{})
	c.LinkUp(t0, gw1)
	c.SessionOnline(t0, gw1, "a", 1, 0)
	var epoch uint32
	for i := 0; i < 6; i++ {
		out, _ := c.Send(t0, "a", uint64(i), []byte("xyz"))
		if f := framesTo(t, out, gw1); len(f) == 1 {
			epoch = f[0].Epoch
		}
	}
	full := c.Bytes()
	c.Delivered(t0, gw1, "a", 1, epoch, 4)
	after4 := c.Bytes()
	c.Delivered(t0, gw1, "a", 1, epoch, 2) // late, older
	if c.Bytes() != after4 || after4 >= full {
		t.Fatalf("bytes %d → %d → %d", full, after4, c.Bytes())
	}
	c.Delivered(t0, gw1, "a", 1, epoch+1, 6) // another epoch: ignored
	if c.Bytes() != after4 {
		t.Fatal("an ack of another epoch freed frames")
	}
	c.Delivered(t0, gw1, "a", 1, epoch, 99) // beyond what was sent: everything
	if c.Bytes() != 0 {
		t.Fatalf("%d bytes kept", c.Bytes())
	}
	cl := NewClient(ClientConfig{}, "a", wire.Session{ID: 1})
	for i := 0; i < 5; i++ {
		cl.Send(1, nil)
	}
	cl.OnMsgAck(4)
	cl.OnMsgAck(2)
	if cl.Unacked() != 1 || cl.Floor() != 4 {
		t.Fatalf("client: %d unacked, floor %d", cl.Unacked(), cl.Floor())
	}
}
