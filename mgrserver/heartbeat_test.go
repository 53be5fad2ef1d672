package mgrserver_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/mgrserver"
	pb "github.com/xserver/xserver/proto"
)

// A heartbeat is answered ahead of a large backlog of membership events
// queued to the same peer: the pong arrives after at most what was already
// in flight, not after the whole backlog. Without the priority lane the
// peer would read every queued event first, and a peer slower than the
// event rate would be declared silent while alive.
func TestHeartbeatJumpsEventBacklog(t *testing.T) {
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.QueueBytes = 64 << 20 // hold the whole backlog: nothing dropped
	cfg.PingMisses = 30       // the slow peer does not ping while it waits
	m := c.startMgr(cfg)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)

	slow := dialRaw(t, m.Addr())
	slow.register()

	// The flood peer's description is large, so each update event is too.
	flood := dialRaw(t, m.Addr())
	addrs := make([]string, 8)
	for i := range addrs {
		addrs[i] = strings.Repeat("a", 250)
	}
	reg, _ := wire.Frame(wire.KindRegister, &pb.Register{
		Mac:  intranet.MAC(testSecret, flood.hello.Nonce, flood.id.Bytes()),
		Info: &pb.NodeInfo{Id: flood.id.Bytes(), Type: uint32(common.FirstGameType), Addrs: addrs},
	})
	flood.write(reg)
	for k, _ := flood.read(); k != wire.KindSnapshot; k, _ = flood.read() {
	}

	// The flood peer drains its own copy of the events; once it has seen
	// its last update, every batch is queued to the slow peer too.
	const updates = 16000
	seen := make(chan error, 1)
	go func() {
		n := 0
		for n < updates {
			_ = flood.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			k, p, err := flood.r.ReadFrame()
			if err != nil {
				seen <- err
				return
			}
			var e pb.MemberEvent
			if k == wire.KindMemberEvent && e.Unmarshal(p) == nil && e.Kind == pb.MemberEvent_UPDATE {
				n++
			}
		}
		seen <- nil
	}()
	var buf []byte
	for i := range updates {
		buf, _ = wire.AppendMessage(buf, wire.KindUpdateSelf, &pb.UpdateSelf{SetOverload: true, Overload: []uint32{uint32(i)}})
	}
	flood.write(buf)
	if err := <-seen; err != nil {
		t.Fatalf("flood peer: %v", err)
	}

	ping, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: 42})
	slow.write(ping)
	var before, total int
	deadline := time.Now().Add(60 * time.Second)
	for {
		_ = slow.conn.SetReadDeadline(deadline)
		k, p, err := slow.r.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no pong after %d bytes of events", total)
			}
			t.Fatalf("slow peer: %v after %d bytes of events", err, total)
		}
		if k == wire.KindMemberEvent {
			total += wire.HeaderSize + len(p)
			continue
		}
		var pong pb.Pong
		if k == wire.KindPong && pong.Unmarshal(p) == nil && pong.UnixNano == 42 {
			before = total
			break
		}
	}
	backlog := updates * (wire.HeaderSize + 2100)
	t.Logf("pong after %d bytes of a backlog of about %d", before, backlog)
	if before > backlog/2 {
		t.Fatalf("the pong came after %d bytes of events (backlog about %d): it waited behind the backlog", before, backlog)
	}
}
