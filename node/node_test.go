package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/mgrserver"
)

const testSecret = "node-test-secret"

// Member types used by the tests.
const (
	lobby = common.FirstGameType
	chat  = common.FirstGameType + 1
	match = common.FirstGameType + 2
)

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.WarnLevel)
	return l
}

// offlineRedis is a client that is never dialled: enough for validation.
func offlineRedis(t *testing.T) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // sampling period, not synchronisation
	}
}

func TestConfigValidate(t *testing.T) {
	rdb := offlineRedis(t)
	valid := func() Config { return Config{Redis: rdb, Secret: testSecret, Type: lobby} }
	cases := []struct {
		name  string
		edit  func(*Config)
		bad   bool
		check func(t *testing.T, c Config)
	}{
		{name: "missing Redis", edit: func(c *Config) { c.Redis = nil }, bad: true},
		{name: "missing Secret", edit: func(c *Config) { c.Secret = "" }, bad: true},
		{name: "type Client", edit: func(c *Config) { c.Type = common.Client }, bad: true},
		{name: "type unset (Client)", edit: func(c *Config) { c.Type = 0 }, bad: true},
		{name: "type MgrServer", edit: func(c *Config) { c.Type = common.MgrServer }, bad: true},
		{name: "BackoffMax below BackoffMin", edit: func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, 100*time.Millisecond }, bad: true},
		{name: "unknown selector mode", edit: func(c *Config) { c.Selector = discovery.ConsistentHash + 1 }, bad: true},
		{name: "negative selector mode", edit: func(c *Config) { c.Selector = -1 }, bad: true},
		{name: "consistent-hash selector has no key", edit: func(c *Config) { c.Selector = discovery.ConsistentHash }, bad: true},
		{name: "reserved type Gateway allowed", edit: func(c *Config) { c.Type = common.Gateway }},
		{name: "defaults filled", edit: func(*Config) {}, check: func(t *testing.T, c Config) {
			d := DefaultConfig()
			if c.Cluster != "xserver" {
				t.Errorf("Cluster %q, want xserver", c.Cluster)
			}
			if c.ID.IsZero() {
				t.Error("ID not set")
			}
			if c.InnerIP == "" {
				t.Error("InnerIP not set")
			}
			if c.OuterIP != c.InnerIP {
				t.Errorf("OuterIP %q, want InnerIP %q", c.OuterIP, c.InnerIP)
			}
			if c.ResyncInterval != d.ResyncInterval || c.DialTimeout != d.DialTimeout || c.HandshakeTimeout != d.HandshakeTimeout ||
				c.BackoffMin != d.BackoffMin || c.BackoffMax != d.BackoffMax || c.LeaderCheck != d.LeaderCheck {
				t.Errorf("durations not defaulted: %+v", c)
			}
			if c.QueueBytes != d.QueueBytes || c.MaxFrame != d.MaxFrame {
				t.Errorf("sizes not defaulted: queue %d frame %d", c.QueueBytes, c.MaxFrame)
			}
			if c.Selector != discovery.Random || c.Logger == nil || c.Rand == nil {
				t.Errorf("selector %v logger %v rand %v", c.Selector, c.Logger, c.Rand)
			}
		}},
		{name: "explicit values kept", edit: func(c *Config) {
			c.Cluster, c.InnerIP, c.OuterIP = "blue", "10.0.0.5", "203.0.113.5"
			c.ID = common.NewNodeID()
			c.BackoffMin, c.BackoffMax = time.Second, time.Second
			c.Selector = discovery.LeastLoad
		}, check: func(t *testing.T, c Config) {
			if c.Cluster != "blue" || c.InnerIP != "10.0.0.5" || c.OuterIP != "203.0.113.5" || c.Selector != discovery.LeastLoad {
				t.Errorf("explicit values changed: %+v", c)
			}
			if c.BackoffMin != time.Second || c.BackoffMax != time.Second {
				t.Errorf("backoff %v..%v", c.BackoffMin, c.BackoffMax)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			_, newErr := New(c) // New validates its own copy
			err := c.validate()
			if tc.bad {
				if !errors.Is(err, ErrConfig) || !errors.Is(newErr, ErrConfig) {
					t.Fatalf("validate: %v; New: %v; want ErrConfig", err, newErr)
				}
				return
			}
			if err != nil || newErr != nil {
				t.Fatalf("validate: %v; New: %v", err, newErr)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
	t.Run("random IDs differ", func(t *testing.T) {
		a, b := valid(), valid()
		if err := a.validate(); err != nil {
			t.Fatal(err)
		}
		if err := b.validate(); err != nil {
			t.Fatal(err)
		}
		if a.ID == b.ID {
			t.Fatalf("two nodes got the same ID %s", a.ID)
		}
	})
}

func TestLifecycle(t *testing.T) {
	r := redistest.Start(t) // no mgrserver: a started node keeps looking
	rdb := r.Client(t)
	newNode := func(t *testing.T) *Node {
		t.Helper()
		n, err := New(Config{Redis: rdb, Secret: testSecret, Type: lobby, InnerIP: "127.0.0.1", Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx := context.Background()

	t.Run("start twice", func(t *testing.T) {
		n := newNode(t)
		defer n.Close()
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); !errors.Is(err, ErrStarted) {
			t.Fatalf("second Start: %v, want ErrStarted", err)
		}
	})
	t.Run("close twice", func(t *testing.T) {
		n := newNode(t)
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("close without start", func(t *testing.T) {
		n := newNode(t)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); !errors.Is(err, ErrStarted) {
			t.Fatalf("Start after Close: %v, want ErrStarted", err)
		}
	})
	t.Run("start with a cancelled context", func(t *testing.T) {
		n := newNode(t)
		defer n.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := n.Start(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Start: %v, want context.Canceled", err)
		}
	})
	t.Run("wait ready bounded by ctx", func(t *testing.T) {
		n := newNode(t)
		defer n.Close()
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := n.WaitReady(wctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReady without a leader: %v, want DeadlineExceeded", err)
		}
	})
	t.Run("wait ready after close", func(t *testing.T) {
		// Nodes that never became ready, started or not.
		for _, start := range []bool{false, true} {
			n := newNode(t)
			if start {
				if err := n.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
			n.Close()
			if err := n.WaitReady(ctx); !errors.Is(err, common.ErrClosed) {
				t.Fatalf("started=%v: WaitReady after Close: %v, want ErrClosed", start, err)
			}
		}
	})
}

// testCluster is one real redis-server and one in-process mgrserver.
type testCluster struct {
	t    *testing.T
	rdb  redis.UniversalClient
	mgr  *mgrserver.Server
	seed int64
}

func newTestCluster(t *testing.T) *testCluster {
	r := redistest.Start(t)
	rdb := r.Client(t)
	cfg := mgrserver.DefaultConfig()
	cfg.Redis = rdb
	cfg.Secret = testSecret
	cfg.Listen = "127.0.0.1:0"
	cfg.LeaseTTL = 600 * time.Millisecond
	cfg.CampaignInterval = 50 * time.Millisecond
	cfg.SettleWindow = time.Millisecond // snapshots are complete from the start
	cfg.Logger = quietLogger()
	m, err := mgrserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	waitUntil(t, 10*time.Second, "mgrserver settled as leader", m.Settled)
	return &testCluster{t: t, rdb: rdb, mgr: m}
}

func (c *testCluster) config(typ common.NodeType) Config {
	c.seed++
	cfg := DefaultConfig()
	cfg.Redis = c.rdb
	cfg.Secret = testSecret
	cfg.Type = typ
	cfg.InnerIP = "127.0.0.1"
	cfg.Ports = []int32{int32(7000 + c.seed)}
	cfg.Version = "v1"
	cfg.Logger = quietLogger()
	cfg.Rand = rand.New(rand.NewSource(c.seed))
	return cfg
}

// start starts a node (Close registered as a cleanup) and waits until it
// has its first member list; before runs between New and Start.
func (c *testCluster) start(cfg Config, before func(*Node)) *Node {
	c.t.Helper()
	n, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if before != nil {
		before(n)
	}
	if err := n.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		c.t.Fatalf("WaitReady: %v", err)
	}
	return n
}

// waitKnown waits until every observer knows every node in ns.
func waitKnown(t *testing.T, observers []*Node, ns ...*Node) {
	t.Helper()
	waitUntil(t, 10*time.Second, "members known", func() bool {
		for _, o := range observers {
			for _, n := range ns {
				if !o.HaveNode(n.GetID()) {
					return false
				}
			}
		}
		return true
	})
}

type memberEvent struct {
	kind string
	m    common.Member
}

func TestMemberCallbacks(t *testing.T) {
	c := newTestCluster(t)
	events := make(chan memberEvent, 64)
	obs := c.start(c.config(lobby), func(n *Node) {
		n.RegisterFuncOnJoin(func(m common.Member) { events <- memberEvent{"join", m} })
		n.RegisterFuncOnUpdate(func(m common.Member) { events <- memberEvent{"update", m} })
		n.RegisterFuncOnLeave(func(m common.Member) { events <- memberEvent{"leave", m} })
	})
	next := func(what string) memberEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s callback within 10s", what)
			return memberEvent{}
		}
	}
	expect := func(kind string, id common.NodeID) common.Member {
		t.Helper()
		ev := next(kind)
		if ev.kind != kind || ev.m.GetID() != id {
			t.Fatalf("callback %s %s, want %s %s", ev.kind, ev.m.GetID(), kind, id)
		}
		return ev.m
	}

	peerCfg := c.config(chat)
	peerCfg.Version = "v7"
	peer := c.start(peerCfg, nil)
	m := expect("join", peer.GetID())
	if m.GetType() != chat || m.GetVersion() != "v7" || m.GetPort(0) != peerCfg.Ports[0] {
		t.Fatalf("joined member %s/%s port %d", m.GetType(), m.GetVersion(), m.GetPort(0))
	}

	peer.SetOverload(0, 5)
	if m := expect("update", peer.GetID()); m.GetOverload(0) != 5 {
		t.Fatalf("updated member overload %d, want 5", m.GetOverload(0))
	}

	if err := peer.Close(); err != nil {
		t.Fatal(err)
	}
	expect("leave", peer.GetID())
	if obs.HaveNode(peer.GetID()) {
		t.Fatal("left member still known")
	}

	// Callbacks run in event order on one goroutine: once a later member's
	// join is seen, no duplicate for the first one is pending.
	barrier := c.start(c.config(match), nil)
	expect("join", barrier.GetID())
	select {
	case ev := <-events:
		t.Fatalf("unexpected extra callback %s %s", ev.kind, ev.m.GetID())
	default:
	}
}

func TestSelection(t *testing.T) {
	c := newTestCluster(t)
	var targets []*Node
	for range 3 {
		targets = append(targets, c.start(c.config(chat), nil))
	}
	rrCfg := c.config(lobby)
	rrCfg.Selector = discovery.RoundRobin
	llCfg := c.config(lobby)
	llCfg.Selector = discovery.LeastLoad
	rr := c.start(rrCfg, nil)
	ll := c.start(llCfg, nil)
	rnd := c.start(c.config(lobby), nil)
	observers := []*Node{rr, ll, rnd}
	waitKnown(t, observers, targets...)
	ids := make([]common.NodeID, len(targets))
	for i, n := range targets {
		ids[i] = n.GetID()
	}

	t.Run("round robin visits every member once per n calls", func(t *testing.T) {
		for round := range 4 {
			seen := map[common.NodeID]int{}
			for range len(targets) {
				m := rr.GetNodeOne(chat)
				if m == nil {
					t.Fatal("GetNodeOne returned nil")
				}
				seen[m.GetID()]++
			}
			for _, id := range ids {
				if seen[id] != 1 {
					t.Fatalf("round %d: visits %v, want each of %v once", round, seen, ids)
				}
			}
		}
	})

	t.Run("least load follows SetOverload", func(t *testing.T) {
		loads := []uint32{50, 10, 30}
		for i, n := range targets {
			n.SetOverload(0, loads[i])
		}
		waitLoads := func(loads []uint32) {
			t.Helper()
			waitUntil(t, 10*time.Second, "overloads propagated", func() bool {
				for i, id := range ids {
					m := ll.GetNode(id)
					if m == nil || m.GetOverload(0) != loads[i] {
						return false
					}
				}
				return true
			})
		}
		waitLoads(loads)
		for range 10 {
			if got := ll.GetNodeOne(chat).GetID(); got != ids[1] {
				t.Fatalf("least load picked %s, want %s (load 10)", got, ids[1])
			}
		}
		loads[1] = 90
		targets[1].SetOverload(0, loads[1])
		waitLoads(loads)
		for range 10 {
			if got := ll.GetNodeOne(chat).GetID(); got != ids[2] {
				t.Fatalf("least load picked %s, want %s (load 30)", got, ids[2])
			}
		}
	})

	t.Run("random picks a member of the type", func(t *testing.T) {
		for range 20 {
			m := rnd.GetNodeOne(chat)
			if m == nil || m.GetType() != chat || !slices.Contains(ids, m.GetID()) {
				t.Fatalf("GetNodeOne(chat) = %v", m)
			}
		}
	})

	t.Run("by key is stable and agrees across nodes", func(t *testing.T) {
		owners := map[common.NodeID]int{}
		for i := range 60 {
			key := fmt.Sprintf("account-%d", i)
			m := rr.GetNodeByKey(chat, key)
			if m == nil || m.GetType() != chat {
				t.Fatalf("GetNodeByKey(%q) = %v", key, m)
			}
			for _, o := range observers {
				if again := o.GetNodeByKey(chat, key); again == nil || again.GetID() != m.GetID() {
					t.Fatalf("key %q: %v then %v", key, m.GetID(), again)
				}
			}
			owners[m.GetID()]++
		}
		if len(owners) < 2 {
			t.Fatalf("60 keys all mapped to %v", owners)
		}
	})

	t.Run("unknown type", func(t *testing.T) {
		const none = common.FirstGameType + 40
		if m := rr.GetNodeOne(none); m != nil {
			t.Fatalf("GetNodeOne(unknown type) = %v", m)
		}
		if m := rr.GetNodeByKey(none, "k"); m != nil {
			t.Fatalf("GetNodeByKey(unknown type) = %v", m)
		}
		if l := rr.GetNodeList(none); len(l) != 0 {
			t.Fatalf("GetNodeList(unknown type) = %v", l)
		}
	})
}

// lineLogger records what PrintNodeInfo writes.
type lineLogger struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (l *lineLogger) Infof(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

var _ common.ILogger = (*lineLogger)(nil)

func TestQueries(t *testing.T) {
	c := newTestCluster(t)
	a := c.start(c.config(lobby), nil)
	bCfg := c.config(lobby)
	bCfg.OuterIP = "203.0.113.9"
	b := c.start(bCfg, nil)
	x := c.start(c.config(chat), nil)
	y := c.start(c.config(chat), nil)
	all := []*Node{a, b, x, y}
	waitKnown(t, all, all...)

	t.Run("GetNodeAll sorted with self", func(t *testing.T) {
		got := a.GetNodeAll()
		if len(got) != len(all) {
			t.Fatalf("%d members, want %d", len(got), len(all))
		}
		if !slices.IsSortedFunc(got, func(p, q common.Member) int {
			if p.GetType() != q.GetType() {
				return int(p.GetType()) - int(q.GetType())
			}
			return strings.Compare(p.GetID().String(), q.GetID().String())
		}) {
			t.Fatalf("not sorted by type then ID: %v", ids(got))
		}
		if !slices.Contains(ids(got), a.GetID()) {
			t.Fatal("self missing")
		}
	})

	t.Run("GetNodeList sorted with self", func(t *testing.T) {
		got := a.GetNodeList(lobby)
		want := []common.NodeID{a.GetID(), b.GetID()}
		slices.SortFunc(want, func(p, q common.NodeID) int { return strings.Compare(p.String(), q.String()) })
		if !slices.Equal(ids(got), want) {
			t.Fatalf("GetNodeList(lobby) = %v, want %v", ids(got), want)
		}
		chats := a.GetNodeList(chat)
		if len(chats) != 2 || !slices.IsSortedFunc(chats, func(p, q common.Member) int {
			return strings.Compare(p.GetID().String(), q.GetID().String())
		}) {
			t.Fatalf("GetNodeList(chat) = %v", ids(chats))
		}
		for _, m := range chats {
			if m.GetType() != chat {
				t.Fatalf("member of type %s in the chat list", m.GetType())
			}
		}
	})

	t.Run("GetNode and HaveNode", func(t *testing.T) {
		unknown := common.NewNodeID()
		if m := a.GetNode(unknown); m != nil {
			t.Fatalf("GetNode(unknown) = %v", m)
		}
		if a.HaveNode(unknown) {
			t.Fatal("HaveNode(unknown) = true")
		}
		if !a.HaveNode(a.GetID()) || a.GetNode(a.GetID()) == nil {
			t.Fatal("self not found")
		}
		m := a.GetNode(b.GetID())
		if m == nil {
			t.Fatal("peer not found")
		}
		if m.GetType() != lobby || m.GetIP(common.IPInner) != "127.0.0.1" || m.GetIP(common.IPOuter) != "203.0.113.9" ||
			m.GetPort(0) != bCfg.Ports[0] || m.GetPort(5) != 0 || m.GetVersion() != "v1" {
			t.Fatalf("peer seen as %s %s/%s port %d version %q", m.GetType(), m.GetIP(common.IPInner), m.GetIP(common.IPOuter), m.GetPort(0), m.GetVersion())
		}
		if got := a.GetNode(x.GetID()).GetIP(common.IPOuter); got != "127.0.0.1" {
			t.Fatalf("outer IP defaulted to %q, want the inner IP", got)
		}
	})

	t.Run("PrintAllNodeInfo one line per member", func(t *testing.T) {
		var l lineLogger
		a.PrintAllNodeInfo(&l)
		if len(l.lines) != len(all) {
			t.Fatalf("%d lines, want %d:\n%s", len(l.lines), len(all), strings.Join(l.lines, "\n"))
		}
		for _, n := range all {
			k := 0
			for _, line := range l.lines {
				if strings.Contains(line, n.GetID().String()) {
					k++
				}
			}
			if k != 1 {
				t.Fatalf("member %s on %d lines:\n%s", n.GetID(), k, strings.Join(l.lines, "\n"))
			}
		}
		var lt lineLogger
		a.PrintNodeInfo(&lt, chat)
		if len(lt.lines) != 2 {
			t.Fatalf("PrintNodeInfo(chat): %d lines, want 2", len(lt.lines))
		}
	})

	t.Run("SetOverload and SetVersion propagate", func(t *testing.T) {
		b.SetOverload(2, 99)
		b.SetVersion("v9")
		if b.GetOverload(2) != 99 || b.GetOverload(0) != 0 || b.GetVersion() != "v9" {
			t.Fatalf("local view: overload %d/%d version %q", b.GetOverload(0), b.GetOverload(2), b.GetVersion())
		}
		b.SetOverload(-1, 1) // out of range: ignored
		b.SetOverload(16, 1)
		for _, o := range []*Node{a, x, y} {
			waitUntil(t, 10*time.Second, "update seen", func() bool {
				m := o.GetNode(b.GetID())
				return m != nil && m.GetOverload(2) == 99 && m.GetVersion() == "v9"
			})
		}
		if m := a.GetNode(b.GetID()); m.GetOverload(0) != 0 || m.GetOverload(16) != 0 {
			t.Fatalf("other slots changed: %d %d", m.GetOverload(0), m.GetOverload(16))
		}
	})
}

func ids(ms []common.Member) []common.NodeID {
	out := make([]common.NodeID, len(ms))
	for i, m := range ms {
		out[i] = m.GetID()
	}
	return out
}
