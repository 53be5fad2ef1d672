package node

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/lease"
	"github.com/xserver/xserver/internal/redistest"
	pb "github.com/xserver/xserver/proto"
)

// A busy mgrserver that sends the registration snapshot well after the
// node's handshake timeout, while heartbeating the link, must not make the
// node give up and register again.
func TestLateSnapshotOnLiveLinkNoReregistration(t *testing.T) {
	r := redistest.Start(t)
	rdb := r.Client(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const late = 1500 * time.Millisecond // five times the handshake timeout below
	var registrations atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	cfg := DefaultConfig()
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
				var wmu sync.Mutex
				write := func(f []byte) { wmu.Lock(); c.Write(f); wmu.Unlock() }
				hello, _ := wire.Frame(wire.KindHello, &pb.Hello{Epoch: 1, Cluster: cfg.Cluster, Nonce: make([]byte, 32), PingIntervalMs: 100, PingMisses: 3})
				write(hello)
				rd := wire.NewReader(c, 1<<20, 0)
				if k, _, err := rd.ReadFrame(); err != nil || k != wire.KindRegister {
					return
				}
				registrations.Add(1)
				go func() { // heartbeats, then the late snapshot
					end := time.Now().Add(late)
					for time.Now().Before(end) {
						ping, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
						write(ping)
						time.Sleep(100 * time.Millisecond) // the fake leader's ping interval
					}
					snap, _ := wire.Frame(wire.KindSnapshot, &pb.Snapshot{Epoch: 1, Complete: true})
					write(snap)
					for {
						ping, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
						mu.Lock()
						done := conns == nil
						mu.Unlock()
						if done {
							return
						}
						write(ping)
						time.Sleep(100 * time.Millisecond)
					}
				}()
				for {
					if _, _, err := rd.ReadFrame(); err != nil {
						return
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
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	rec := lease.Record{Epoch: 1, Addr: ln.Addr().String(), Token: "t"}
	if err := rdb.Set(context.Background(), lease.KeysFor(cfg.Cluster).Leader, rec.String(), 0).Err(); err != nil {
		t.Fatal(err)
	}

	cfg.Redis = rdb
	cfg.Secret = testSecret
	cfg.Type = common.FirstGameType
	cfg.InnerIP = "127.0.0.1"
	cfg.Ports = []int32{7999}
	cfg.Logger = quietLogger()
	cfg.HandshakeTimeout = 300 * time.Millisecond
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v (registrations %d)", err, registrations.Load())
	}
	if got := registrations.Load(); got != 1 {
		t.Fatalf("registered %d times; want 1 (the node gave up on a live link)", got)
	}
}
