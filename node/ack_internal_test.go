package node

import (
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/resume"
)

// Read batches that follow each other closely share one LinkAck: a
// LinkAck per batch would cost the gateway a wake-up per round trip when
// one message is in flight.
func TestLinkAckCoversSeveralBatches(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	l := &gwLink{conn: a, out: intranet.NewOutbox(1 << 20), stop: make(chan struct{})}
	defer l.close()
	for i := 0; i < 10; i++ { // ten batches of one Deliver each
		l.processed.Add(1)
		l.ackLater()
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.out.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no LinkAck within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	if got, want := l.out.Len(), len(wire.AppendLinkAck(nil, 10)); got != want {
		t.Fatalf("%d bytes queued, want one LinkAck (%d bytes)", got, want)
	}
	l.ackMu.Lock()
	sent, armed := l.ackedSent, l.ackArmed
	l.ackMu.Unlock()
	if sent != 10 || armed {
		t.Fatalf("acknowledged %d (armed %v), want 10 and nothing owed", sent, armed)
	}
}

// A lane's goroutine waits for more work after its queue empties, so a
// steady trickle of messages does not start a goroutine per message; close
// still ends it.
func TestLaneGoroutineStaysForMoreWork(t *testing.T) {
	q := newLanes()
	ran := make(chan struct{}, 2)
	q.post("alice", func() { ran <- struct{}{} })
	<-ran
	l := &q.ls[0]
	for i := range q.ls {
		q.ls[i].mu.Lock()
		if q.ls[i].running {
			l = &q.ls[i]
		}
		q.ls[i].mu.Unlock()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		running, idle := l.running, l.idle
		l.mu.Unlock()
		if running && idle {
			break
		}
		if !running || time.Now().After(deadline) {
			t.Fatalf("lane running %v idle %v after its queue emptied, want a parked goroutine", running, idle)
		}
		time.Sleep(time.Millisecond)
	}
	q.post("alice", func() { ran <- struct{}{} })
	<-ran
	q.close() // goleak (TestMain) checks the goroutine ended
}

// What a callback sends (here a push) goes out after the LinkAck of the
// Delivers handed to the callbacks so far, on the same link: a gateway
// that sees an answer never gives the message answered to another node
// (a node paused right after answering, then declared dead, had its
// message answered twice).
func TestAnswerFollowsItsLinkAck(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	l := &gwLink{conn: a, out: intranet.NewOutbox(1 << 20), stop: make(chan struct{})}
	defer l.close()
	go func() { _ = l.out.WriteLoop(a, time.Second, l.stop) }()
	var id common.NodeID
	id[0] = 1
	r := &relay{links: map[common.NodeID]*gwLink{id: l}}
	l.processed.Add(1)                                              // the reader handed a Deliver to the callbacks
	push := wire.AppendRef(nil, wire.KindSessionPaused, "alice", 7) // any frame
	r.do(func() *resume.Output { return &resume.Output{Frames: []resume.Frame{{GW: id, Bytes: push}}} })
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := wire.NewReader(b, 1<<10, 0)
	kind, p, err := rd.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if kind != wire.KindLinkAck {
		t.Fatalf("first frame %s, want the LinkAck before the push", kind)
	}
	if n, err := wire.DecodeLinkAck(p); err != nil || n != 1 {
		t.Fatalf("LinkAck %d, %v; want 1", n, err)
	}
	if kind, _, err := rd.ReadFrame(); err != nil || kind != wire.KindSessionPaused {
		t.Fatalf("second frame %s, %v; want the push", kind, err)
	}
}
