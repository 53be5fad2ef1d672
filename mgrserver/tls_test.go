package mgrserver_test

import (
	"io"
	"net"
	"testing"
	"time"

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
