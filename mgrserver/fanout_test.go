package mgrserver

import (
	"bytes"
	"io"
	"math/rand"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	pb "github.com/xserver/xserver/proto"
)

func info(id common.NodeID) *pb.NodeInfo {
	return &pb.NodeInfo{Id: id.Bytes(), Type: uint32(common.FirstGameType), Addrs: []string{"10.0.0.1", "1.2.3.4"}}
}

// frames splits a buffer of frames into kinds and payloads.
func frames(t *testing.T, b []byte) (kinds []wire.Kind, payloads [][]byte) {
	t.Helper()
	r := wire.NewReader(bytes.NewReader(b), 1<<20, 0)
	for {
		k, p, err := r.ReadFrame()
		if err == io.EOF {
			return kinds, payloads
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds, payloads = append(kinds, k), append(payloads, append([]byte(nil), p...))
	}
}

// Joins arriving together go out as one batch: the newcomers share one
// snapshot and skip the batch; the members already there get every join,
// numbered in order, in one buffer.
func TestFanoutBatchesJoins(t *testing.T) {
	f := newFanout[int]()
	f.reset(3)
	f.join(common.NewNodeID(), 0, info(common.NewNodeID()))
	p := f.flush()
	if len(p.FirstTo) != 1 || p.FirstTo[0] != 0 || len(p.EventsTo) != 0 {
		t.Fatalf("first flush: snapshot to %v, events to %v", p.FirstTo, p.EventsTo)
	}
	for i := 1; i <= 50; i++ {
		id := common.NewNodeID()
		f.join(id, i, info(id))
	}
	p = f.flush()
	if len(p.FirstTo) != 50 || len(p.EventsTo) != 1 || p.EventsTo[0] != 0 {
		t.Fatalf("snapshot to %d peers, events to %v", len(p.FirstTo), p.EventsTo)
	}
	if s := decodeSnapshot(t, p.Snapshot); len(s.Nodes) != 51 || s.Seq != 51 || s.Epoch != 3 {
		t.Fatalf("snapshot: %d nodes, seq %d, epoch %d", len(s.Nodes), s.Seq, s.Epoch)
	}
	kinds, payloads := frames(t, p.Events)
	if len(kinds) != 50 {
		t.Fatalf("%d events in the batch, want 50", len(kinds))
	}
	for i, pl := range payloads {
		var e pb.MemberEvent
		if kinds[i] != wire.KindMemberEvent || e.Unmarshal(pl) != nil || e.Seq != uint64(i+2) || e.Kind != pb.MemberEvent_JOIN {
			t.Fatalf("event %d: %s %+v", i, kinds[i], e)
		}
	}
	if p := f.flush(); p.Snapshot != nil || p.Events != nil {
		t.Fatal("an idle flush sends something")
	}
}

// A restarted node replaces its old session: the old peer is returned (to
// be closed) and gets nothing more; the others see an UPDATE.
func TestFanoutReplace(t *testing.T) {
	f := newFanout[int]()
	f.reset(1)
	a, b := common.NewNodeID(), common.NewNodeID()
	f.join(a, 1, info(a))
	f.join(b, 2, info(b))
	f.flush()
	old, replaced := f.join(a, 3, info(a))
	if !replaced || old != 1 {
		t.Fatalf("replaced %v old %v", replaced, old)
	}
	p := f.flush()
	if len(p.EventsTo) != 1 || p.EventsTo[0] != 2 || len(p.FirstTo) != 1 || p.FirstTo[0] != 3 {
		t.Fatalf("events to %v, snapshot to %v", p.EventsTo, p.FirstTo)
	}
	if _, ok := f.leave(a, 1, true); ok {
		t.Fatal("the replaced session removed the member")
	}
}

// A member that asks for a resync gets the batch and then a snapshot; one
// that leaves before its first snapshot is owed nothing.
func TestFanoutResyncAndEarlyLeave(t *testing.T) {
	f := newFanout[int]()
	f.reset(1)
	a, b, c := common.NewNodeID(), common.NewNodeID(), common.NewNodeID()
	f.join(a, 1, info(a))
	f.join(b, 2, info(b))
	f.flush()
	f.want(1)
	f.join(c, 3, info(c))
	f.leave(c, 3, false)
	p := f.flush()
	if len(p.ResyncTo) != 1 || p.ResyncTo[0] != 1 || len(p.FirstTo) != 0 || len(p.EventsTo) != 2 {
		t.Fatalf("resync to %v, first to %v, events to %v", p.ResyncTo, p.FirstTo, p.EventsTo)
	}
	if s := decodeSnapshot(t, p.Snapshot); len(s.Nodes) != 2 || s.Seq != 4 {
		t.Fatalf("snapshot: %d nodes, seq %d", len(s.Nodes), s.Seq)
	}
}

// Whatever the changes and however they fall into flushes, every member's
// view (a discovery.View fed what the flushes hand it, in order) ends equal
// to the leader's list, and no gap is ever seen.
func TestFanoutViewsConverge(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	f := newFanout[int]()
	f.reset(9)
	views := map[int]*discovery.View{}
	ids := map[int]common.NodeID{}
	next := 0
	snapshot := func(p flushPlan[int], peer int) {
		var s pb.Snapshot
		_, pl := frames(t, p.Snapshot)
		if err := s.Unmarshal(pl[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := views[peer].ApplySnapshot(&s); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(p flushPlan[int]) {
		for _, peer := range p.FirstTo {
			snapshot(p, peer)
		}
		if p.Events != nil {
			_, pls := frames(t, p.Events)
			for _, peer := range p.EventsTo {
				for _, pl := range pls {
					var e pb.MemberEvent
					if err := e.Unmarshal(pl); err != nil {
						t.Fatal(err)
					}
					if _, gap, err := views[peer].ApplyEvent(&e); err != nil || gap {
						t.Fatalf("peer %d: event %d: gap %v, err %v", peer, e.Seq, gap, err)
					}
				}
			}
		}
		for _, peer := range p.ResyncTo {
			snapshot(p, peer)
		}
	}
	for step := 0; step < 600; step++ {
		switch r := rnd.Intn(10); {
		case r < 5 || len(ids) == 0: // join
			id := common.NewNodeID()
			ids[next], views[next] = id, discovery.NewView()
			_ = views[next].Begin(9)
			f.join(id, next, info(id))
			next++
		case r < 7: // leave
			for peer, id := range ids {
				f.leave(id, peer, rnd.Intn(2) == 0)
				delete(ids, peer)
				delete(views, peer)
				break
			}
		case r < 8: // update
			for peer, id := range ids {
				f.update(id, peer, &pb.UpdateSelf{SetOverload: true, Overload: []uint32{uint32(step)}})
				break
			}
		case r < 9: // resync
			for peer := range ids {
				f.want(peer)
				break
			}
		default:
			deliver(f.flush())
		}
	}
	deliver(f.flush())
	for peer, v := range views {
		if v.Len() != f.len() {
			t.Fatalf("peer %d sees %d members, the leader has %d", peer, v.Len(), f.len())
		}
		f.each(func(id common.NodeID, _ int, in *pb.NodeInfo) {
			got, ok := v.Get(id)
			if !ok || !discovery.SameInfo(got, in) {
				t.Fatalf("peer %d: member %s differs", peer, id)
			}
		})
	}
}

// The gathering time grows with the cluster, within its bounds.
func TestBatchDelay(t *testing.T) {
	for _, c := range []struct {
		members int
		min     time.Duration
		want    time.Duration
	}{
		{0, 10 * time.Millisecond, 10 * time.Millisecond},
		{100, 10 * time.Millisecond, 10 * time.Millisecond},
		{2000, 10 * time.Millisecond, 40 * time.Millisecond},
		{100000, 10 * time.Millisecond, maxBatchDelay},
		{100000, time.Second, time.Second},
	} {
		if got := batchDelay(c.members, c.min); got != c.want {
			t.Errorf("batchDelay(%d, %v) = %v, want %v", c.members, c.min, got, c.want)
		}
	}
}
