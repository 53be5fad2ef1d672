package mgrserver_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/faultproxy"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/mgrserver"
	pb "github.com/xserver/xserver/proto"
)

// firstFrame dials addr and returns the first frame the server sends.
func firstFrame(t *testing.T, addr string) (wire.Kind, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, p, err := wire.NewReader(c, 1<<20, 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

// A leader that wakes from a pause longer than its lease, before any
// renewal has been confirmed, neither registers a node nor sends events:
// its lease is not provably valid. Once a renewal is confirmed it serves
// again, and the changes it held go out.
func TestLeaderServesOnlyWhileLeaseProvablyValid(t *testing.T) {
	c := newCluster(t)
	proxy, err := faultproxy.New(c.redis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })

	cfg := c.mgrConfig()
	cfg.Redis = rdb
	cfg.RedisGrace = time.Minute // it must not simply step down meanwhile
	var skew atomic.Int64        // the pause, as seen by the monotonic clock
	m, err := mgrserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	nodes := c.startNodes(2)
	waitFor(t, 10*time.Second, "converged", func() bool { return converged(m, nodes) })

	// The pause: renewals do not get through, and the clock jumps by a TTL.
	proxy.Set(faultproxy.Blackhole)
	skew.Store(int64(cfg.LeaseTTL))
	if !m.IsLeader() {
		t.Fatal("stepped down within the grace period")
	}
	k, p := firstFrame(t, m.Addr())
	if k != wire.KindError {
		t.Fatalf("a registration attempt got %s first, want an error: a leader without a valid lease must not register", k)
	}
	var e pb.Error
	if err := e.Unmarshal(p); err != nil || e.Code != intranet.CodeNotLeader {
		t.Fatalf("refusal %+v (%v), want code %d", &e, err, intranet.CodeNotLeader)
	}
	// A member leaving is not announced while the lease is unconfirmed.
	gone := nodes[0].GetID()
	_ = nodes[0].Close()
	waitFor(t, 10*time.Second, "the leader saw the leave", func() bool {
		for _, n := range m.Status().Nodes {
			if n.ID == gone {
				return false
			}
		}
		return true
	})
	time.Sleep(20 * cfg.EventDelay) // a sampling window for the negative check
	if !nodes[1].HaveNode(gone) {
		t.Fatal("the leave was sent while the lease was not provably valid")
	}

	// Redis answers again: the next renewal is confirmed, the held leave is
	// sent and registrations are accepted.
	proxy.Set(faultproxy.Forward)
	waitFor(t, 10*time.Second, "the held leave delivered", func() bool { return !nodes[1].HaveNode(gone) })
	n := c.startNode(c.nodeConfig(7))
	waitFor(t, 10*time.Second, "a newcomer registered", func() bool { return converged(m, append(nodes[1:], n)) })
}
