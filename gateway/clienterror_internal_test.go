package gateway

import (
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// A client that sends messages no node can take and never reads its
// ClientErrors is disconnected as too slow once its queue is full: a
// ClientError is never dropped silently (the client would take the
// message for delivered). (Over real sockets a client that never reads
// can stall its own sending in TCP before the gateway's queue fills, so
// the queue is filled here without them.)
func TestUnreadClientErrorsDisconnect(t *testing.T) {
	g := fanGateway(t, 1<<10)
	s, c, read := fanSession(t, g, "deaf", false, 256)      // the connection takes nothing
	cmd := uint64(common.FirstGameType+5) * g.cfg.CmdOffset // no node of that type
	for i := 0; i < 100 && !c.kicked.Load(); i++ {
		if !c.relay(s, 0, cmd, []byte("x")) {
			break
		}
	}
	if why, fate := c.ending(); why != wire.CodeText(wire.CodeSlow) || fate != fateEnd {
		t.Fatalf("after 100 undeliverable messages the client ends with %q (fate %d), want %q: ClientErrors dropped silently", why, fate, wire.CodeText(wire.CodeSlow))
	}
	kinds := read()
	if n := len(kinds); n == 0 || kinds[n-1] != wire.KindClientKick {
		t.Fatalf("client got %v, want ClientErrors then a kick", kinds)
	}
}
