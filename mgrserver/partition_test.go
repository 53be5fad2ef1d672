package mgrserver_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/internal/faultproxy"
	"github.com/xserver/xserver/mgrserver"
)

// A one-sided partition: the leader loses Redis, the standby and the nodes
// do not. For a while two mgrservers believe they lead (the old one keeps
// its connections for the Redis grace period). The guarantee is the nodes'
// epoch fencing: they move to the newer epoch within a bound, and nothing
// the old leader sends is applied afterwards (no member is lost on any
// node, though the old leader sees every node go).
func TestOneSidedPartitionNodesFenceTheOldLeader(t *testing.T) {
	c := newCluster(t)
	proxy, err := faultproxy.New(c.redis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })

	acfg := c.mgrConfig()
	acfg.Redis = rdb
	acfg.RedisGrace = time.Minute // the old leader believes it leads throughout
	a := c.startMgr(acfg)
	c.leader([]*mgrserver.Server{a}, 10*time.Second)
	b := c.startMgr(c.mgrConfig())
	// One node re-reads the leader record rarely: it stays with the old
	// leader while the others move, and is the one the old leader's
	// events could reach.
	const laggard = 5 * time.Second
	nodes := c.startNodesWith(5, func(i int, n *nodeCfg) {
		if i == 0 {
			n.LeaderCheck = laggard
		}
	})
	waitFor(t, 10*time.Second, "converged on the first leader", func() bool { return converged(a, nodes) })
	old := a.Epoch()

	start := time.Now()
	proxy.Set(faultproxy.Blackhole)
	// Bound: the lease lapses within a TTL, the standby campaigns every
	// CampaignInterval, nodes re-read the record every LeaderCheck; the
	// rest is slack for a loaded machine.
	bound := c.ttl + laggard + 10*time.Second
	waitFor(t, bound, "every node registered at the newer epoch", func() bool {
		if !b.IsLeader() || b.Epoch() <= old {
			return false
		}
		for _, n := range nodes {
			if !n.Connected() || n.LeaderEpoch() != b.Epoch() {
				return false
			}
		}
		return true
	})
	t.Logf("nodes moved from epoch %d to %d in %v", old, b.Epoch(), time.Since(start).Round(time.Millisecond))
	if !a.IsLeader() {
		t.Log("the old leader stepped down already") // allowed, but the grace is a minute
	}
	waitFor(t, 20*time.Second, "converged on the new leader", func() bool { return converged(b, nodes) })
	waitFor(t, 20*time.Second, "settle window over", b.Settled)
	waitFor(t, 10*time.Second, "converged after the settle window", func() bool { return converged(b, nodes) })
	if n := c.leaves.Load(); n != 0 {
		t.Fatalf("%d leave callbacks: a node applied the old leader's events after moving on", n)
	}

	// The partition heals: the old leader finds its lease taken and steps
	// down; the nodes stay where they are.
	proxy.Set(faultproxy.Forward)
	waitFor(t, 20*time.Second, "the old leader stepped down", func() bool { return !a.IsLeader() })
	if n := c.leaves.Load(); n != 0 {
		t.Fatalf("%d leave callbacks after the heal", n)
	}
	for _, n := range nodes {
		if n.LeaderEpoch() != b.Epoch() {
			t.Fatalf("a node is at epoch %d, want %d", n.LeaderEpoch(), b.Epoch())
		}
	}
}
