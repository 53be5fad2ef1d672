package gateway_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/tlstest"
)

// A silent peer refused by a full TLS client listener does not stall the
// accept loop: the refusal (which runs the TLS handshake) is written off
// it, so the next client is told "full" at once, not after the write
// timeout.
func TestSilentPeerDoesNotStallClientAccept(t *testing.T) {
	tc := tlstest.New(t)
	e := newEnvFull(t, 1, func(c *gatewayConfig) {
		c.MaxClients, c.MaxPreLogin = 1, 1
		c.LoginTimeout = time.Minute
		c.WriteTimeout = time.Minute // what a stalled accept loop would wait
	}, &tc)
	g := e.gws[0]
	d := &net.Dialer{Timeout: 10 * time.Second}

	// The one slot is taken.
	holder, err := tls.DialWithDialer(d, "tcp", g.Addrs().Client, tc.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	// A peer that never says a word is refused: the gateway is full.
	silent, err := net.Dial("tcp", g.Addrs().Client)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// The next client is told at once.
	c, err := tls.DialWithDialer(d, "tcp", g.Addrs().Client, tc.Client)
	if err != nil {
		t.Fatalf("TLS handshake with a full gateway: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	k, p, err := wire.NewReader(c, 1<<16, 0).ReadFrame()
	if err != nil {
		t.Fatalf("no refusal within 15 s: %v (the accept loop waited on the silent peer)", err)
	}
	if code, _, _ := wire.DecodeCoded(p); k != wire.KindClientKick || code != wire.CodeFull {
		t.Fatalf("got %s code %d, want a kick with code %d", k, code, wire.CodeFull)
	}
	silent.Close()
}
