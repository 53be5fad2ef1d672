package mgrserver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lease"
	"github.com/xserver/xserver/mgrserver"
	pb "github.com/xserver/xserver/proto"
)

// Redis down for 10 s: nobody can take the lease, so the leader keeps
// leading; no node loses a member or its connection; afterwards the leader
// re-asserts its lease with the same epoch.
func TestRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s outage")
	}
	c := newCluster(t)
	ms := []*mgrserver.Server{c.startMgr(c.mgrConfig()), c.startMgr(c.mgrConfig()), c.startMgr(c.mgrConfig())}
	nodes := c.startNodes(50)
	l := c.leader(ms, 10*time.Second)
	waitFor(t, 20*time.Second, "converged", func() bool { return converged(l, nodes) })
	epoch := l.Epoch()

	c.redis.Stop()
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		if !l.IsLeader() {
			t.Fatal("leader stepped down while Redis was unreachable")
		}
		for i, n := range nodes {
			if !n.Connected() {
				t.Fatalf("node %d lost its mgrserver connection during the outage", i)
			}
		}
		if k := c.leaves.Load(); k != 0 {
			t.Fatalf("%d leave callbacks during the outage", k)
		}
		time.Sleep(100 * time.Millisecond) // sampling period of the check, not synchronisation
	}
	c.redis.Restart()
	waitFor(t, 10*time.Second, "lease re-asserted", func() bool {
		rec, err := lease.Read(context.Background(), c.rdb, "xserver")
		return err == nil && rec.Epoch == epoch && rec.Addr == l.Addr()
	})
	for _, m := range ms {
		if m != l && m.IsLeader() {
			t.Fatal("a standby took over after the outage")
		}
	}
	if !converged(l, nodes) || c.leaves.Load() != 0 {
		t.Fatalf("cluster changed across the outage (leaves %d)", c.leaves.Load())
	}
}

// A peer that stops answering is declared failed within the miss budget,
// and every node sees it leave as a failure.
func TestSilentPeerDeclaredFailed(t *testing.T) {
	c := newCluster(t)
	c.ping = 200 * time.Millisecond
	m := c.startMgr(c.mgrConfig())
	nodes := c.startNodes(5)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	waitFor(t, 10*time.Second, "converged", func() bool { return converged(m, nodes) })

	p := dialRaw(t, m.Addr())
	p.register()
	waitFor(t, 10*time.Second, "silent peer known to all", func() bool {
		for _, n := range nodes {
			if !n.HaveNode(p.id) {
				return false
			}
		}
		return true
	})
	start := time.Now()
	// The peer now says nothing; the server's pings go unanswered.
	if code := p.expectClosed(); code != intranet.CodeHeartbeat {
		t.Fatalf("close code %d, want heartbeat (%d)", code, intranet.CodeHeartbeat)
	}
	waitFor(t, 10*time.Second, "silent peer gone everywhere", func() bool {
		for _, n := range nodes {
			if n.HaveNode(p.id) {
				return false
			}
		}
		return true
	})
	t.Logf("silent peer failed after %v (budget 3 x %v)", time.Since(start), c.ping)
	waitFor(t, 10*time.Second, "leave callbacks", func() bool { return c.leaves.Load() >= int64(len(nodes)) })
	if got := c.leaves.Load(); got != int64(len(nodes)) {
		t.Fatalf("leave callbacks %d, want %d", got, len(nodes))
	}
}

// fakeLeader publishes itself in Redis under epoch rec and greets
// connections with hello; it records what each peer sent.
type fakeLeader struct {
	ln    net.Listener
	got   chan string
	hello *pb.Hello
}

func startFakeLeader(t *testing.T, hello *pb.Hello, afterHello func(net.Conn)) *fakeLeader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLeader{ln: ln, got: make(chan string, 16), hello: hello}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fr, _ := wire.Frame(wire.KindHello, hello)
			conn.Write(fr)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, _, err := wire.NewReader(conn, 1<<20, 0).ReadFrame()
			switch {
			case err == io.EOF:
				f.got <- "closed"
			case err != nil:
				f.got <- "error: " + err.Error()
			default:
				f.got <- k.String()
				if afterHello != nil {
					afterHello(conn)
				}
			}
			conn.Close()
		}
	}()
	return f
}

// Epoch fencing: a node never follows a leader older than one it has seen.
func TestEpochFencing(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	keys := lease.KeysFor("xserver")
	if err := c.rdb.Set(ctx, keys.Epoch, 10, 0).Err(); err != nil {
		t.Fatal(err)
	}
	m := c.startMgr(c.mgrConfig())
	n := c.startNode(c.nodeConfig(0))
	waitFor(t, 10*time.Second, "registered at epoch 11", func() bool { return n.Connected() && n.LeaderEpoch() == 11 })
	m.Crash()
	waitFor(t, 10*time.Second, "node notices the crash", func() bool { return !n.Connected() })

	// A server published under a newer epoch whose Hello claims an older
	// one: the node must hang up without registering.
	f := startFakeLeader(t, &pb.Hello{Nonce: make([]byte, 32), Epoch: 5, Cluster: "xserver", PingIntervalMs: 1000, PingMisses: 3}, nil)
	if err := c.rdb.Set(ctx, keys.Leader, fmt.Sprintf("20 %s tok", f.ln.Addr()), 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-f.got:
		if got != "closed" {
			t.Fatalf("node answered a stale hello with %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node never contacted the published leader")
	}
	// A real leader again: its epoch is raised past every epoch it has seen.
	if err := c.rdb.Del(ctx, keys.Leader).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.rdb.Set(ctx, keys.Epoch, 1, 0).Err(); err != nil { // counter lost, as after a Redis reset
		t.Fatal(err)
	}
	cfg := c.mgrConfig()
	m2 := c.startMgr(cfg)
	waitFor(t, 10*time.Second, "node follows the new leader", func() bool { return n.Connected() && n.LeaderEpoch() == m2.Epoch() })
	if m2.Epoch() <= 11 {
		t.Fatalf("new leader epoch %d, want > 11 (the node has seen 11)", m2.Epoch())
	}
}

// A leader that stops talking is left within the miss budget.
func TestNodeLeavesSilentLeader(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	f := startFakeLeader(t, &pb.Hello{Nonce: make([]byte, 32), Epoch: 1, Cluster: "xserver", PingIntervalMs: 100, PingMisses: 3}, func(conn net.Conn) {
		fr, _ := wire.Frame(wire.KindSnapshot, &pb.Snapshot{Epoch: 1, Complete: true})
		conn.Write(fr)
		// then silence: read and discard until the node hangs up
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, conn)
	})
	if err := c.rdb.Set(ctx, lease.KeysFor("xserver").Leader, "1 "+f.ln.Addr().String()+" tok", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n := c.startNode(c.nodeConfig(0))
	if got := <-f.got; got != wire.KindRegister.String() {
		t.Fatalf("node sent %q, want register", got)
	}
	waitFor(t, 5*time.Second, "registered", n.Connected)
	start := time.Now()
	waitFor(t, 5*time.Second, "node drops the silent leader", func() bool { return !n.Connected() })
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("silent leader dropped after %v, budget 300ms", d)
	}
}
