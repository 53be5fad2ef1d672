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
	for _, complete := range []bool{false, true} {
		f := newFanout[int]()
		f.reset(7)
		for i := 0; i < 3; i++ {
			id := common.NewNodeID()
			f.join(id, i, &pb.NodeInfo{Id: id.Bytes(), Type: uint32(4 + i), Addrs: []string{"10.0.0.1", "1.2.3.4"}, Ports: []int32{7000, 7001}, Overload: []uint32{uint32(i)}, Version: "v1"})
		}
		if complete {
			f.setComplete()
		}
		got := decodeSnapshot(t, f.snapshot())
		if got.Epoch != 7 || got.Seq != 3 || got.Complete != complete || len(got.Nodes) != 3 {
			t.Fatalf("decoded %+v", got)
		}
		for _, n := range got.Nodes {
			id, _ := common.NodeIDFromBytes(n.Id)
			_, want, _ := f.get(id)
			if !bytes.Equal(mustMarshal(t, n), mustMarshal(t, want)) {
				t.Fatalf("node %s differs", id)
			}
		}
	}
}

func decodeSnapshot(t *testing.T, f []byte) *pb.Snapshot {
	t.Helper()
	k, p, err := wire.NewReader(bytes.NewReader(f), 1<<20, 0).ReadFrame()
	if err != nil || k != wire.KindSnapshot {
		t.Fatalf("frame: %s %v", k, err)
	}
	var got pb.Snapshot
	if err := got.Unmarshal(p); err != nil {
		t.Fatal(err)
	}
	return &got
}

func mustMarshal(t *testing.T, m *pb.NodeInfo) []byte {
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
