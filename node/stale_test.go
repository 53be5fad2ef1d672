package node

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	pb "github.com/xserver/xserver/proto"
)

// A node whose process did not run for longer than the gateway's
// heartbeat allows (SIGSTOP) finds frames from before the pause in its
// socket. The gateway has declared the link dead meanwhile and rerouted
// what the node had not acknowledged, perhaps to another instance, so the
// node drops the link instead of handling them: an account is never served
// twice.
func TestStaleLinkDroppedUnhandled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	c := newTestCluster(t)
	gw := c.config(common.Gateway)
	gw.Ports = []int32{0, 0, int32(ln.Addr().(*net.TCPAddr).Port)}
	c.start(gw, nil)
	var handled atomic.Int64
	c.start(c.config(common.FirstGameType), func(n *Node) {
		n.RegisterFuncOnRelayMsg(func(_ common.NodeType, _ common.Member, account string, _ uint64, _ []byte) {
			handled.Add(1)
		})
		n.EnableMessageRelay(true)
	})
	var conn net.Conn
	select {
	case conn = <-conns:
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not link")
	}
	defer conn.Close()
	hello, _ := wire.Frame(wire.KindHello, &pb.Hello{Nonce: make([]byte, 32), PingIntervalMs: 1000, PingMisses: 3})
	conn.Write(hello)
	r := wire.NewReader(conn, 1<<20, 0)
	if _, _, err := r.ReadFrame(); err != nil { // Register
		t.Fatal(err)
	}
	conn.Write(wire.AppendHeader(nil, wire.KindAccepted, 0))
	closed := make(chan struct{})
	go func() { // the gateway's reader: answers pings, sees the close
		defer close(closed)
		for {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			if k == wire.KindPing {
				var m pb.Ping
				_ = m.Unmarshal(p)
				f, _ := wire.Frame(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
				conn.Write(f)
			}
		}
	}()
	conn.Write(wire.AppendDeliver(nil, "player", 1, 0, 7, []byte("before")))
	waitUntil(t, 10*time.Second, "the first message handled", func() bool { return handled.Load() == 1 })

	linkSkew.Store(int64(10 * time.Second)) // the node "slept" past the heartbeat
	defer linkSkew.Store(0)
	conn.Write(wire.AppendDeliver(nil, "player", 1, 0, 7, []byte("stale")))
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the node kept a link it had not read for longer than the heartbeat allows")
	}
	if n := handled.Load(); n != 1 {
		t.Fatalf("%d messages handled, want 1: the stale one was served", n)
	}
}
