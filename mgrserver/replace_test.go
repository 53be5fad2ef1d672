package mgrserver_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lease"
	"github.com/xserver/xserver/mgrserver"
	pb "github.com/xserver/xserver/proto"
)

// A node ID registering again (a restarted process whose old connection is
// still open) replaces the older session: the old one is closed with
// "replaced", and the others see an update, never a leave.
func TestSameIDReplacesSession(t *testing.T) {
	c := newCluster(t)
	m := c.startMgr(c.mgrConfig())
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	nodes := c.startNodes(3)
	waitFor(t, 10*time.Second, "converged", func() bool { return converged(m, nodes) })

	old := dialRaw(t, m.Addr())
	old.register()
	waitFor(t, 10*time.Second, "old session known", func() bool { return nodes[0].HaveNode(old.id) })

	cfg := c.nodeConfig(7)
	cfg.ID = old.id // the restarted process
	n := c.startNode(cfg)
	if code := old.expectClosed(); code != intranet.CodeReplaced {
		t.Fatalf("old session closed with %d, want replaced (%d)", code, intranet.CodeReplaced)
	}
	waitFor(t, 10*time.Second, "new session serving", n.Connected)
	want := append(nodes, n)
	waitFor(t, 10*time.Second, "converged with the new session", func() bool { return converged(m, want) })
	if k := c.leaves.Load(); k != 0 {
		t.Fatalf("%d leave callbacks for a replaced session", k)
	}
}

// A node that sees a gap in event sequence numbers asks for a full sync.
func TestGapForcesResync(t *testing.T) {
	c := newCluster(t)
	got := make(chan wire.Kind, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() { // a leader that skips event 2
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		hello, _ := wire.Frame(wire.KindHello, &pb.Hello{Nonce: make([]byte, 32), Epoch: 1, Cluster: "xserver", PingIntervalMs: 1000, PingMisses: 3})
		conn.Write(hello)
		r := wire.NewReader(conn, 1<<20, 0)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if k, _, err := r.ReadFrame(); err != nil || k != wire.KindRegister {
			return
		}
		snap, _ := wire.Frame(wire.KindSnapshot, &pb.Snapshot{Epoch: 1, Seq: 1, Complete: true})
		other := &pb.NodeInfo{Id: make([]byte, 16), Type: 4}
		other.Id[0] = 9
		ev, _ := wire.Frame(wire.KindMemberEvent, &pb.MemberEvent{Seq: 3, Kind: pb.MemberEvent_JOIN, Info: other})
		conn.Write(append(snap, ev...))
		for {
			k, _, err := r.ReadFrame()
			if err != nil {
				return
			}
			got <- k
		}
	}()
	if err := c.rdb.Set(context.Background(), lease.KeysFor("xserver").Leader, "1 "+ln.Addr().String()+" tok", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.startNode(c.nodeConfig(0))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case k := <-got:
			if k == wire.KindSyncRequest {
				return
			}
		case <-deadline:
			t.Fatal("no sync request after a sequence gap")
		}
	}
}
