package discovery

import (
	"errors"
	"testing"

	"github.com/xserver/xserver/common"
	pb "github.com/xserver/xserver/proto"
)

func info(n byte, typ uint32, version string) *pb.NodeInfo {
	id := make([]byte, 16)
	id[15] = n
	return &pb.NodeInfo{Id: id, Type: typ, Version: version}
}

func kinds(ch []Change) map[ChangeKind]int {
	m := map[ChangeKind]int{}
	for _, c := range ch {
		m[c.Kind]++
	}
	return m
}

func TestViewSnapshots(t *testing.T) {
	cases := []struct {
		name     string
		complete bool
		second   []*pb.NodeInfo
		want     map[ChangeKind]int
		wantLen  int
	}{
		{"complete removes absent", true, []*pb.NodeInfo{info(1, 4, "a")}, map[ChangeKind]int{Left: 2}, 1},
		{"partial removes nothing", false, []*pb.NodeInfo{info(1, 4, "a")}, map[ChangeKind]int{}, 3},
		{"partial adds and updates", false, []*pb.NodeInfo{info(1, 4, "b"), info(9, 5, "")}, map[ChangeKind]int{Updated: 1, Joined: 1}, 4},
		// Three entries for a view of three, but 3 is absent.
		{"complete listing an ID twice removes absent", true, []*pb.NodeInfo{info(1, 4, "a"), info(2, 4, "a"), info(1, 4, "a")}, map[ChangeKind]int{Left: 1}, 2},
		{"complete identical is silent", true, []*pb.NodeInfo{info(1, 4, "a"), info(2, 4, "a"), info(3, 5, "a")}, map[ChangeKind]int{}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := NewView()
			ch, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 1, Complete: true, Nodes: []*pb.NodeInfo{info(1, 4, "a"), info(2, 4, "a"), info(3, 5, "a")}})
			if err != nil || len(ch) != 3 {
				t.Fatalf("first snapshot: %v, %d changes", err, len(ch))
			}
			if err := v.Begin(2); err != nil {
				t.Fatal(err)
			}
			ch, err = v.ApplySnapshot(&pb.Snapshot{Epoch: 2, Complete: c.complete, Nodes: c.second})
			if err != nil {
				t.Fatal(err)
			}
			got := kinds(ch)
			for k, n := range c.want {
				if got[k] != n {
					t.Errorf("%s: %d, want %d", k, got[k], n)
				}
			}
			if len(ch) != func() int {
				s := 0
				for _, n := range c.want {
					s += n
				}
				return s
			}() {
				t.Errorf("changes %v, want %v", got, c.want)
			}
			if v.Len() != c.wantLen {
				t.Errorf("len %d, want %d", v.Len(), c.wantLen)
			}
		})
	}
}

func TestViewEvents(t *testing.T) {
	v := NewView()
	if _, gap, _ := v.ApplyEvent(&pb.MemberEvent{Seq: 1, Info: info(1, 4, "")}); !gap {
		t.Fatal("event before any snapshot must ask for a sync")
	}
	if _, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 3, Seq: 10, Complete: true}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		ev      *pb.MemberEvent
		gap     bool
		changes int
		kind    ChangeKind
	}{
		{&pb.MemberEvent{Seq: 11, Kind: pb.MemberEvent_JOIN, Info: info(1, 4, "")}, false, 1, Joined},
		{&pb.MemberEvent{Seq: 11, Kind: pb.MemberEvent_LEAVE, Info: info(1, 4, "")}, false, 0, 0}, // duplicate
		{&pb.MemberEvent{Seq: 12, Kind: pb.MemberEvent_UPDATE, Info: info(1, 4, "v2")}, false, 1, Updated},
		{&pb.MemberEvent{Seq: 13, Kind: pb.MemberEvent_UPDATE, Info: info(1, 4, "v2")}, false, 0, 0}, // no-op update
		{&pb.MemberEvent{Seq: 15, Kind: pb.MemberEvent_JOIN, Info: info(2, 4, "")}, true, 1, Joined},
		{&pb.MemberEvent{Seq: 16, Kind: pb.MemberEvent_LEAVE, Info: info(1, 0, ""), Failed: true}, false, 1, Left},
		{&pb.MemberEvent{Seq: 17, Kind: pb.MemberEvent_LEAVE, Info: info(7, 0, "")}, false, 0, 0}, // unknown member
	}
	for i, s := range steps {
		ch, gap, err := v.ApplyEvent(s.ev)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if gap != s.gap || len(ch) != s.changes {
			t.Fatalf("step %d: gap %v changes %d, want %v %d", i, gap, len(ch), s.gap, s.changes)
		}
		if len(ch) == 1 && ch[0].Kind != s.kind {
			t.Fatalf("step %d: kind %s, want %s", i, ch[0].Kind, s.kind)
		}
	}
	if v.Len() != 1 || v.Seq() != 17 {
		t.Fatalf("len %d seq %d", v.Len(), v.Seq())
	}
	if _, _, err := v.ApplyEvent(&pb.MemberEvent{Seq: 18, Info: &pb.NodeInfo{Id: []byte{1}}}); !errors.Is(err, common.ErrBadInput) {
		t.Fatalf("short id: %v", err)
	}
}

func TestViewEpochs(t *testing.T) {
	v := NewView()
	if _, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 5, Complete: true, Nodes: []*pb.NodeInfo{info(1, 4, "")}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Begin(4); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("begin older epoch: %v", err)
	}
	if _, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 4, Complete: true}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("older snapshot: %v", err)
	}
	if v.Len() != 1 {
		t.Fatal("stale snapshot must not change the view")
	}
	if !v.Accept(5) || !v.Accept(6) || v.Accept(4) {
		t.Fatal("accept")
	}
	if err := v.Begin(6); err != nil {
		t.Fatal(err)
	}
	if _, gap, _ := v.ApplyEvent(&pb.MemberEvent{Seq: 1, Info: info(2, 4, "")}); !gap {
		t.Fatal("events of a new epoch before its snapshot must ask for a sync")
	}
	if v.Len() != 1 {
		t.Fatal("members are kept across a leader change")
	}
}

// Once a newer leader is known, the old one's events and snapshots are
// never applied, whatever arrives on the old connection.
func TestViewFenceRefusesTheOldLeader(t *testing.T) {
	v := NewView()
	a := &pb.NodeInfo{Id: common.NewNodeID().Bytes(), Type: uint32(common.FirstGameType)}
	if _, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 3, Complete: true, Nodes: []*pb.NodeInfo{a}}); err != nil {
		t.Fatal(err)
	}
	if !v.Fence(4) || v.Fence(4) || v.Fence(2) {
		t.Fatal("Fence must report only a rise")
	}
	ch, gap, err := v.ApplyEvent(&pb.MemberEvent{Seq: 1, Kind: pb.MemberEvent_LEAVE, Info: a})
	if len(ch) != 0 || !gap || err != nil {
		t.Fatalf("old leader's event after the fence: %v %v %v, want ignored", ch, gap, err)
	}
	if _, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 3, Complete: true}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("old leader's snapshot after the fence: %v, want ErrStaleEpoch", err)
	}
	if v.Len() != 1 {
		t.Fatal("the fence must not change the members")
	}
	if _, err := v.ApplySnapshot(&pb.Snapshot{Epoch: 4, Complete: true, Nodes: []*pb.NodeInfo{a}}); err != nil {
		t.Fatalf("new leader's snapshot: %v", err)
	}
}
