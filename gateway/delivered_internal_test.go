package gateway

import (
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
)

// A version 1 session's pushes share their Delivered acknowledgement to
// the node: the tick sends none while fewer than deliveredEvery pushes
// are owed (for at most deliveredDelay), then one for all of them.
func TestVersion1DeliveredShared(t *testing.T) {
	g := fanGateway(t, 1<<20)
	s, _, read := fanSession(t, g, "p", false, 1<<20)
	l := &link{g: g, id: common.NodeID{1}, typ: common.FirstGameType, out: intranet.NewOutbox(1 << 20)}
	g.links[l.id] = l
	push := func(seq uint32) {
		s.push(l, &wire.PushFrame{SessRef: wire.SessRef{Account: []byte("p"), Sid: 1}, Epoch: 1, Seq: seq, Cmd: 1, Data: []byte("x")})
	}
	for seq := uint32(1); seq <= 3; seq++ {
		push(seq)
	}
	if !s.tick() {
		t.Fatal("the tick is done with the session while an acknowledgement is owed")
	}
	if n := l.out.Len(); n != 0 {
		t.Fatalf("%d bytes sent to the node for 3 pushes, want none yet", n)
	}
	for seq := uint32(4); seq <= deliveredEvery; seq++ {
		push(seq)
	}
	s.tick()
	one := len(wire.AppendStreamSeq(nil, wire.KindDelivered, "p", 1, 1, deliveredEvery))
	if n := l.out.Len(); n != one {
		t.Fatalf("%d bytes sent to the node for %d pushes, want one Delivered (%d bytes)", n, deliveredEvery, one)
	}
	if got := len(read()); got != deliveredEvery {
		t.Fatalf("client got %d frames, want %d", got, deliveredEvery)
	}
}
