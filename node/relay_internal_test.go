package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/internal/intranet"
)

// A send whose head gateway stopped accepting reports it failed once and
// goes out through the next gateway; the list rotates for later sends.
func TestSendViaFailsOverOnce(t *testing.T) {
	cfg := DefaultConfig()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { rdb.Close() })
	cfg.Redis, cfg.Secret, cfg.Type = rdb, "s", common.FirstGameType
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := n.rl
	mk := func() *gwLink {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &gwLink{r: r, id: common.NewNodeID(), conn: a, out: intranet.NewOutbox(1 << 10), stop: make(chan struct{}), pong: make(chan struct{}, 1)}
	}
	dead, live := mk(), mk()
	r.mgr.AddServer(dead)
	r.mgr.AddServer(live)
	dead.out.Close() // its writer has failed: nothing more is accepted

	if err := r.sendVia(8, func(b []byte) { copy(b, "12345678") }); err != nil {
		t.Fatalf("send with a live second gateway: %v", err)
	}
	if live.out.Len() != 8 {
		t.Fatalf("live gateway holds %d bytes, want 8", live.out.Len())
	}
	if head, _ := r.mgr.FindServer(); head != live {
		t.Fatal("failed head was not rotated away")
	}
	live.out.Close()
	if err := r.sendVia(8, func(b []byte) {}); !errors.Is(err, common.ErrNoGateway) {
		t.Fatalf("no gateway accepting: %v, want ErrNoGateway", err)
	}
	r.mgr.RemoveServer(dead)
	r.mgr.RemoveServer(live)
	if err := r.sendVia(8, func(b []byte) {}); !errors.Is(err, common.ErrNoGateway) {
		t.Fatalf("no gateway at all: %v", err)
	}
}

// Learned account holders age out: a stale entry is neither trusted nor
// kept.
func TestHolderCacheAgesOut(t *testing.T) {
	cfg := DefaultConfig()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	cfg.Redis, cfg.Secret, cfg.Type = rdb, "s", common.FirstGameType
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := n.rl
	gw := common.NewNodeID()
	r.learn([]byte("alice"), gw)
	r.learn([]byte("bob"), gw)
	r.sweep(time.Now())
	if len(r.accounts) != 2 {
		t.Fatalf("fresh entries swept: %d left", len(r.accounts))
	}
	r.mu.Lock()
	h := r.accounts["bob"]
	h.seen = time.Now().Add(-2 * holderTTL).UnixNano()
	r.accounts["bob"] = h
	r.mu.Unlock()
	r.sweep(time.Now())
	if _, ok := r.accounts["bob"]; ok || len(r.accounts) != 1 {
		t.Fatalf("stale entry kept: %v", r.accounts)
	}
}
