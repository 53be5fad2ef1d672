package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
)

// A send whose head gateway stopped accepting reports it failed once and
// goes out through the next gateway; the list rotates for later sends.
func TestSendFailsOverOnce(t *testing.T) {
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

	msg := &wire.NodeMsg{Dst: common.NewNodeID(), Cmd: 1, Data: []byte("12345678")}
	size := wire.NodeMsgSize(8)
	if err := r.sendTracked(msg, time.Now().Add(time.Second)); err != nil {
		t.Fatalf("send with a live second gateway: %v", err)
	}
	if live.out.Len() != size || len(live.pending) != 1 || len(dead.pending) != 0 {
		t.Fatalf("live gateway holds %d bytes (want %d) and %d pending", live.out.Len(), size, len(live.pending))
	}
	if head, _ := r.mgr.FindServer(); head != live {
		t.Fatal("failed head was not rotated away")
	}
	live.out.Close()
	if err := r.sendTracked(msg, time.Now().Add(time.Second)); !errors.Is(err, common.ErrNoGateway) {
		t.Fatalf("no gateway accepting: %v, want ErrNoGateway", err)
	}
	r.mgr.RemoveServer(dead)
	r.mgr.RemoveServer(live)
	if err := r.sendTracked(msg, time.Now().Add(time.Second)); !errors.Is(err, common.ErrNoGateway) {
		t.Fatalf("no gateway at all: %v", err)
	}
}
