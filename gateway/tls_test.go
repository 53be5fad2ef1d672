package gateway_test

import (
	"crypto/tls"
	"testing"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/tlstest"
)

// With TLS on the mgrserver, the node links and the client listener, a
// player's round trip works end to end, and a plain-TCP client gets
// nowhere.
func TestTLSEverywhere(t *testing.T) {
	tc := tlstest.New(t)
	e := newEnvFull(t, 1, nil, &tc)
	e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket("secure")
	conn, err := tls.Dial("tcp", tk.Gateway, tc.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{tb: t, account: "secure", conn: conn, r: wire.NewReader(conn, 1<<20, 0), ticket: tk}
	c.write(wire.AppendLogin(nil, tk.Account, tk.Token))
	if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
		t.Fatalf("login over TLS: %s %v", k, p)
	}
	c.send(uint64(lobbyType)*1000+1, 9)
	if _, seq, from := c.reply(); seq != 9 || from != tk.Bindings[lobbyType].String() {
		t.Fatalf("reply %d from %s", seq, from)
	}

	plain, _ := dialRaw(t, tk.Gateway)
	plain.write(wire.AppendLogin(nil, tk.Account, tk.Token))
	if got := plain.closedWith(); got != 0 {
		t.Fatalf("plain client got a gateway frame (code %d) from a TLS listener", got)
	}
}
