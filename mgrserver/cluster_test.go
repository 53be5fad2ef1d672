package mgrserver_test

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
)

const testSecret = "test-secret"

// cluster is a test fixture: one real redis-server, mgrservers and nodes.
type cluster struct {
	tb    testing.TB
	redis *redistest.Server
	rdb   redis.UniversalClient
	log   *logrus.Logger
	ttl   time.Duration
	ping  time.Duration

	mu     sync.Mutex
	mgrs   []*mgrserver.Server
	nodes  []*node.Node
	leaves atomic.Int64 // leave callbacks seen by all nodes
}

func newCluster(tb testing.TB) *cluster {
	r := redistest.Start(tb)
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	l.SetOutput(io.Discard)
	if path := os.Getenv("XSERVER_TEST_LOG"); path != "" { // debugging aid
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			tb.Cleanup(func() { f.Close() })
			l.SetOutput(f)
			l.SetLevel(logrus.InfoLevel)
		}
	}
	c := &cluster{tb: tb, redis: r, rdb: r.Client(tb), log: l, ttl: 3 * time.Second, ping: time.Second}
	tb.Cleanup(c.closeAll)
	return c
}

func (c *cluster) closeAll() {
	c.mu.Lock()
	nodes, mgrs := c.nodes, c.mgrs
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
	for _, m := range mgrs {
		m.Close()
	}
}

func (c *cluster) mgrConfig() mgrserver.Config {
	cfg := mgrserver.DefaultConfig()
	cfg.Redis = c.rdb
	cfg.Secret = testSecret
	cfg.Listen = "127.0.0.1:0"
	cfg.LeaseTTL = c.ttl
	cfg.PingInterval = c.ping
	cfg.Logger = c.log
	return cfg
}

func (c *cluster) startMgr(cfg mgrserver.Config) *mgrserver.Server {
	c.tb.Helper()
	m, err := mgrserver.New(cfg)
	if err != nil {
		c.tb.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		c.tb.Fatal(err)
	}
	c.mu.Lock()
	c.mgrs = append(c.mgrs, m)
	c.mu.Unlock()
	return m
}

func (c *cluster) nodeConfig(i int) node.Config {
	cfg := node.DefaultConfig()
	cfg.Redis = c.rdb
	cfg.Secret = testSecret
	cfg.Type = common.FirstGameType + common.NodeType(i%3)
	cfg.InnerIP = "127.0.0.1"
	cfg.Ports = []int32{int32(7000 + i)}
	cfg.Version = "v1"
	cfg.Logger = c.log
	cfg.Rand = rand.New(rand.NewSource(int64(i)))
	return cfg
}

func (c *cluster) startNode(cfg node.Config) *node.Node {
	c.tb.Helper()
	n, err := node.New(cfg)
	if err != nil {
		c.tb.Fatal(err)
	}
	n.RegisterFuncOnLeave(func(m common.Member) { c.leaves.Add(1) })
	if err := n.Start(context.Background()); err != nil {
		c.tb.Fatal(err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

func (c *cluster) startNodes(k int) []*node.Node { return c.startNodesWith(k, nil) }

type nodeCfg = node.Config

// startNodesWith starts k nodes, letting opt adjust each config.
func (c *cluster) startNodesWith(k int, opt func(i int, cfg *nodeCfg)) []*node.Node {
	out := make([]*node.Node, k)
	for i := range out {
		cfg := c.nodeConfig(i)
		if opt != nil {
			opt(i, &cfg)
		}
		out[i] = c.startNode(cfg)
	}
	return out
}

// leader waits for exactly one leading mgrserver among ms and returns it.
func (c *cluster) leader(ms []*mgrserver.Server, d time.Duration) *mgrserver.Server {
	c.tb.Helper()
	var l *mgrserver.Server
	waitFor(c.tb, d, "one leader", func() bool {
		l = nil
		k := 0
		for _, m := range ms {
			if m.IsLeader() {
				l = m
				k++
			}
		}
		return k == 1
	})
	return l
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// viewOf is a node's membership as a sorted list of IDs.
func viewOf(n *node.Node) string {
	var ids []string
	for _, m := range n.GetNodeAll() {
		ids = append(ids, m.GetID().String()+"/"+m.GetType().String()+"/"+m.GetVersion())
	}
	sort.Strings(ids)
	return fmt.Sprint(ids)
}

func statusView(s mgrserver.Status) string {
	var ids []string
	for _, n := range s.Nodes {
		ids = append(ids, n.ID.String()+"/"+n.Type.String()+"/"+n.Version)
	}
	sort.Strings(ids)
	return fmt.Sprint(ids)
}

// converged: the leader has all nodes registered at its epoch and every
// node's view equals the leader's.
func converged(l *mgrserver.Server, nodes []*node.Node) bool {
	st := l.Status()
	if !st.Leader || len(st.Nodes) != len(nodes) {
		return false
	}
	want := statusView(st)
	for _, n := range nodes {
		if !n.Connected() || n.LeaderEpoch() != st.Epoch || viewOf(n) != want {
			return false
		}
	}
	return true
}

func TestConvergence(t *testing.T) {
	c := newCluster(t)
	ms := []*mgrserver.Server{c.startMgr(c.mgrConfig()), c.startMgr(c.mgrConfig()), c.startMgr(c.mgrConfig())}
	nodes := c.startNodes(50)
	l := c.leader(ms, 10*time.Second)
	waitFor(t, 20*time.Second, "50 nodes converged", func() bool { return converged(l, nodes) })
	if c.leaves.Load() != 0 {
		t.Fatalf("%d leave callbacks during a clean start", c.leaves.Load())
	}
	// Lists by type agree with the view, and GetNodeOne picks from it.
	n0 := nodes[0]
	for typ := common.FirstGameType; typ < common.FirstGameType+3; typ++ {
		list := n0.GetNodeList(typ)
		if len(list) < 16 {
			t.Fatalf("type %s: %d members", typ, len(list))
		}
		one := n0.GetNodeOne(typ)
		if one == nil || one.GetType() != typ || !n0.HaveNode(one.GetID()) {
			t.Fatalf("GetNodeOne(%s) = %v", typ, one)
		}
	}
	// An update propagates to every node.
	nodes[7].SetOverload(0, 42)
	nodes[7].SetVersion("v2")
	id := nodes[7].GetID()
	waitFor(t, 10*time.Second, "update seen everywhere", func() bool {
		for _, n := range nodes {
			m := n.GetNode(id)
			if m == nil || m.GetOverload(0) != 42 || m.GetVersion() != "v2" {
				return false
			}
		}
		return true
	})
	// A graceful leave is a leave everywhere, not a failure.
	nodes[9].Close()
	gone := nodes[9].GetID()
	waitFor(t, 10*time.Second, "leave seen everywhere", func() bool {
		for i, n := range nodes {
			if i != 9 && n.HaveNode(gone) {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "49 leave callbacks", func() bool { return c.leaves.Load() >= 49 })
	if g, f := counter(t, l, "xserver_mgr_leaves_total", "graceful"), counter(t, l, "xserver_mgr_leaves_total", "failed"); g != 1 || f != 0 {
		t.Fatalf("mgrserver recorded %v graceful and %v failed leaves, want 1 and 0", g, f)
	}
	if got := c.leaves.Load(); got != 49 {
		t.Fatalf("leave callbacks %d, want 49", got)
	}
}

func TestLeaderFailover(t *testing.T) {
	for _, mode := range []string{"crash", "graceful"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t)
			ms := []*mgrserver.Server{c.startMgr(c.mgrConfig()), c.startMgr(c.mgrConfig()), c.startMgr(c.mgrConfig())}
			nodes := c.startNodes(50)
			old := c.leader(ms, 10*time.Second)
			waitFor(t, 20*time.Second, "converged", func() bool { return converged(old, nodes) })
			epoch := old.Epoch()
			if mode == "crash" {
				old.Crash()
			} else {
				old.Close()
			}
			var rest []*mgrserver.Server
			for _, m := range ms {
				if m != old {
					rest = append(rest, m)
				}
			}
			l := c.leader(rest, 10*time.Second)
			waitFor(t, 20*time.Second, "re-registered with the new leader", func() bool { return converged(l, nodes) })
			if l.Epoch() <= epoch {
				t.Fatalf("new epoch %d not above %d", l.Epoch(), epoch)
			}
			if c.leaves.Load() != 0 {
				t.Fatalf("%d members lost across a failover", c.leaves.Load())
			}
			// The settle window ends with a complete snapshot: still no loss.
			waitFor(t, 20*time.Second, "settle window over", l.Settled)
			waitFor(t, 10*time.Second, "converged after the settle window", func() bool { return converged(l, nodes) })
			if c.leaves.Load() != 0 {
				t.Fatalf("%d members lost after the complete snapshot", c.leaves.Load())
			}
		})
	}
}
