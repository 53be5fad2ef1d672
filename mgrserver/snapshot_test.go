package mgrserver

import (
	"bytes"
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	pb "github.com/xserver/xserver/proto"
)

// The hand-assembled snapshot decodes to what gogo/protobuf would encode.
func TestSnapshotAssembly(t *testing.T) {
	for _, warm := range []bool{true, false} {
		s := &Server{members: map[common.NodeID]*member{}, warm: warm, seq: 300}
		s.rec.Epoch = 7
		for i := 0; i < 3; i++ {
			id := common.NewNodeID()
			s.members[id] = newMember(nil, &pb.NodeInfo{Id: id.Bytes(), Type: uint32(4 + i), Addrs: []string{"10.0.0.1", "1.2.3.4"}, Ports: []int32{7000, 7001}, Overload: []uint32{uint32(i)}, Version: "v1"})
		}
		f := s.snapshotLocked()
		k, p, err := wire.NewReader(bytes.NewReader(f), 1<<20, 0).ReadFrame()
		if err != nil || k != wire.KindSnapshot {
			t.Fatalf("frame: %s %v", k, err)
		}
		var got pb.Snapshot
		if err := got.Unmarshal(p); err != nil {
			t.Fatal(err)
		}
		if got.Epoch != 7 || got.Seq != 300 || got.Complete == warm || len(got.Nodes) != 3 {
			t.Fatalf("decoded %+v", got)
		}
		for _, n := range got.Nodes {
			id, _ := common.NodeIDFromBytes(n.Id)
			want := s.members[id].info
			if !bytes.Equal(mustMarshal(t, n), mustMarshal(t, want)) {
				t.Fatalf("node %s differs", id)
			}
		}
	}
}

func mustMarshal(t *testing.T, m *pb.NodeInfo) []byte {
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
