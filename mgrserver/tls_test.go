package mgrserver_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/internal/tlstest"
	"github.com/xserver/xserver/mgrserver"
)

// The intranet runs over TLS when configured: nodes that trust the
// certificate register; a peer speaking plain TCP is closed.
func TestIntranetTLS(t *testing.T) {
	tc := tlstest.New(t)
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.TLS = tc.Server
	m := c.startMgr(cfg)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	var nodes = c.startNodesWith(3, func(i int, n *nodeCfg) { n.TLS = tc.Client })
	waitFor(t, 10*time.Second, "TLS nodes converged", func() bool { return converged(m, nodes) })

	plain, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte{0, 0, 0, 2, 0, 2}) // a register frame header, not a TLS hello
	plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(plain); err != nil {
		t.Fatalf("plain peer not closed: %v", err)
	}
}

// A silent peer refused on a full TLS listener does not stall the accept
// loop: the refusal (which runs the TLS handshake) is written off it, so
// the next node gets in at once, not after the write timeout.
func TestSilentPeerDoesNotStallAccept(t *testing.T) {
	tc := tlstest.New(t)
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.TLS = tc.Server
	cfg.MaxConns = 1
	cfg.WriteTimeout = time.Minute // what a stalled accept loop would wait
	m := c.startMgr(cfg)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	first := c.startNodesWith(1, func(i int, n *nodeCfg) { n.TLS = tc.Client })
	waitFor(t, 10*time.Second, "first node registered", func() bool { return converged(m, first) })

	// The server is full: this peer is refused, and says nothing.
	silent, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitFor(t, 10*time.Second, "the silent peer refused", func() bool { return counter(t, m, "xserver_mgr_rejected_total", "too_many") >= 1 })

	// A slot frees up; the next node must get it well within the minute a
	// stalled accept loop would take.
	_ = first[0].Close()
	next := c.startNodesWith(1, func(i int, n *nodeCfg) { n.TLS = tc.Client; n.ID = common.NewNodeID() })
	waitFor(t, 15*time.Second, "next node registered", func() bool { return converged(m, next) })
	silent.Close() // lets the refusal end now rather than at its deadline
}
