package node

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	pb "github.com/xserver/xserver/proto"
)

// stalledGateway accepts node links like a gateway, keeps them alive
// (pongs) but never forwards nor acknowledges a node message: a frozen
// gateway process, as seen from a node.
func stalledGateway(t *testing.T) (port int32, got *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got = new(atomic.Int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				hello, _ := wire.Frame(wire.KindHello, &pb.Hello{Nonce: make([]byte, 32), PingIntervalMs: 1000, PingMisses: 3})
				c.Write(hello)
				r := wire.NewReader(c, 1<<20, 0)
				if _, _, err := r.ReadFrame(); err != nil { // Register
					return
				}
				c.Write(wire.AppendHeader(nil, wire.KindAccepted, 0))
				for {
					k, p, err := r.ReadFrame()
					if err != nil {
						return
					}
					switch k {
					case wire.KindPing:
						var m pb.Ping
						_ = m.Unmarshal(p)
						f, _ := wire.Frame(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
						c.Write(f)
					case wire.KindNodeMsg:
						got.Add(1) // swallowed: no NodeAck, no forward
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return int32(ln.Addr().(*net.TCPAddr).Port), got
}

// A node message sent into a gateway that stops forwarding is reported
// undeliverable once its time to live passes, the node turns to another
// gateway for new messages, and the sender's counter says so: no silent
// loss.
func TestStalledGatewayReported(t *testing.T) {
	c := newTestCluster(t)
	port, swallowed := stalledGateway(t)
	gw := c.config(common.Gateway)
	gw.Ports = []int32{0, 0, port}
	c.start(gw, nil) // publishes the stalled gateway's address
	peer := c.start(c.config(common.FirstGameType), nil)
	cfg := c.config(common.FirstGameType)
	cfg.MessageTTL = 400 * time.Millisecond
	var undelivered atomic.Int64
	sender := c.start(cfg, func(n *Node) {
		n.RegisterFuncOnUndeliverable(func(u common.Undeliverable) {
			if u.To == peer.GetID() && u.Code == wire.CodeExpired {
				undelivered.Add(1)
			}
		})
		n.EnableMessageRelay(true)
	})
	waitKnown(t, []*Node{sender}, peer)
	waitUntil(t, 10*time.Second, "linked to the gateway", func() bool { return sender.GatewayLinks() == 1 })
	msg := common.Raw("lost in a frozen gateway")
	for i := 0; i < 5; i++ {
		if err := sender.SendByID(peer.GetID(), 1, &msg); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 5*time.Second, "the gateway swallowed them", func() bool { return swallowed.Load() == 5 })
	waitUntil(t, 5*time.Second, "all five reported undeliverable", func() bool { return undelivered.Load() == 5 })
	if sender.Undeliverable() != 5 {
		t.Fatalf("counter %d, want 5", sender.Undeliverable())
	}
}
