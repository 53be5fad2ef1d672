package mgrserver_test

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
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
