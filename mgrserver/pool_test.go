package mgrserver_test

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/mgrserver"
	pb "github.com/xserver/xserver/proto"
)

// Plain-TCP sessions are written by the server's few pool workers, not
// by a writer goroutine each: a membership flush to N members must not
// make N goroutines runnable at once, or accepting, greeting newcomers and
// reading heartbeats wait behind them (at 5,000 members, for seconds).
// Each registered session costs one goroutine (its reader).
func TestSessionsHaveNoWriterGoroutine(t *testing.T) {
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.PingMisses = 60 // the raw peers do not ping
	m := c.startMgr(cfg)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	const n = 200
	before := runtime.NumGoroutine()
	peers := make([]*rawPeer, n)
	for i := range peers {
		peers[i] = dialRaw(t, m.Addr())
		peers[i].register()
	}
	if grown := runtime.NumGoroutine() - before; grown > n+n/4 {
		t.Fatalf("%d registered sessions run %d goroutines; want about one each", n, grown)
	}
	// And they are written: every peer hears of the last one's join.
	last := peers[n-1].id.Bytes()
	for _, p := range peers[:n-1] {
		for {
			k, b := p.read()
			var e pb.MemberEvent
			if k == wire.KindMemberEvent && e.Unmarshal(b) == nil && e.Info != nil && bytes.Equal(e.Info.Id, last) {
				break
			}
		}
	}
}

// A node that accepts early heartbeats gets a Ping as soon as its
// registration is read, before a slow snapshot: its wait for the snapshot
// is extended then, not only after its own first ping an interval later.
func TestRegistrationAcknowledgedByPing(t *testing.T) {
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.EventDelay = 3 * time.Second // the snapshot goes out 3 s after the registration
	m := c.startMgr(cfg)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	p := dialRaw(t, m.Addr())
	reg, err := wire.Frame(wire.KindRegister, &pb.Register{
		Mac:             intranet.MAC(testSecret, p.hello.Nonce, p.id.Bytes()),
		Info:            &pb.NodeInfo{Id: p.id.Bytes(), Type: uint32(common.FirstGameType), Addrs: []string{"127.0.0.1", "127.0.0.1"}},
		EarlyHeartbeats: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.write(reg)
	k, _ := p.read()
	if k != wire.KindPing { // the server's own pings start after the snapshot
		t.Fatalf("first frame after Register: %s, want a ping", k)
	}
	for k != wire.KindSnapshot {
		k, _ = p.read()
	}
}
