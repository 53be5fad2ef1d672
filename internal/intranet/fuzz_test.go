package intranet

import (
	"bytes"
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	pb "github.com/xserver/xserver/proto"
)

// FuzzIntranetFrame decodes arbitrary bytes the way the mgrserver and a
// node do: frame, protobuf by kind, registration validation, and view
// application of snapshots and events. Nothing may panic, and a view must
// stay consistent.
func FuzzIntranetFrame(f *testing.F) {
	id := common.NewNodeID()
	info := &pb.NodeInfo{Id: id.Bytes(), Type: 4, Addrs: []string{"127.0.0.1"}, Ports: []int32{1}}
	for _, m := range []struct {
		k wire.Kind
		m wire.Marshaler
	}{
		{wire.KindRegister, &pb.Register{Mac: MAC("s", []byte("n"), id.Bytes()), Info: info}},
		{wire.KindSnapshot, &pb.Snapshot{Epoch: 2, Seq: 3, Complete: true, Nodes: []*pb.NodeInfo{info}}},
		{wire.KindMemberEvent, &pb.MemberEvent{Seq: 4, Kind: pb.MemberEvent_LEAVE, Info: info}},
		{wire.KindUpdateSelf, &pb.UpdateSelf{Overload: []uint32{1}, SetOverload: true}},
		{wire.KindHello, &pb.Hello{Nonce: []byte("n"), Epoch: 1, PingIntervalMs: 1000, PingMisses: 3}},
	} {
		fr, err := wire.Frame(m.k, m.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v := discovery.NewView()
		r := wire.NewReader(bytes.NewReader(in), 1<<16, 64)
		for i := 0; i < 50; i++ {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			switch k {
			case wire.KindRegister:
				var m pb.Register
				if m.Unmarshal(p) == nil && ValidateInfo(m.Info) == nil {
					_ = CheckMAC("s", []byte("n"), m.Info.Id, m.Mac)
				}
			case wire.KindSnapshot:
				var m pb.Snapshot
				if m.Unmarshal(p) == nil {
					_, _ = v.ApplySnapshot(&m)
				}
			case wire.KindMemberEvent:
				var m pb.MemberEvent
				if m.Unmarshal(p) == nil {
					_, _, _ = v.ApplyEvent(&m)
				}
			case wire.KindUpdateSelf:
				var m pb.UpdateSelf
				_ = m.Unmarshal(p)
			case wire.KindHello:
				var m pb.Hello
				_ = m.Unmarshal(p)
			}
			n := 0
			v.Each(func(common.NodeID, *pb.NodeInfo) { n++ })
			if n != v.Len() {
				t.Fatalf("view length %d, %d members", v.Len(), n)
			}
		}
	})
}
