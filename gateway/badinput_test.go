package gateway_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/node"
)

// Each kind of bad client input closes only that connection with a clear
// code and a counter; other sessions carry on.
func TestClientBadInput(t *testing.T) {
	e := newEnv(t, 1)
	// The lobby keeps what its slow player has not acknowledged for
	// longer than the kernel's socket buffers and the gateway's queue
	// take, so that the gateway is the one to notice (with the default
	// 256 KiB the lobby's own limit could end the session first, kick 16).
	e.nodeOpt = func(c *node.Config) { c.StreamLimit = 64 << 20 }
	lobby := e.startGame(lobbyType)
	e.nodeOpt = nil
	e.ready()
	g := e.gws[0]
	addr := g.Addrs().Client
	bystander := e.connect("bystander")

	huge := wire.AppendHeader(nil, wire.KindClientData, 1<<20) // announces 1 MiB, limit 16 KiB
	cases := []struct {
		name   string
		login  bool   // log in first
		send   []byte // then send this
		code   uint16
		metric string
	}{
		{"oversized frame", true, huge, wire.CodeTooLarge, "too_large"},
		{"cmd naming no node type", true, wire.AppendData(nil, 1001, []byte("x")), wire.CodeBadCmd, "bad_cmd"},
		{"cmd beyond any type", true, wire.AppendData(nil, 1<<62, nil), wire.CodeBadCmd, "bad_cmd"},
		{"garbage kind", true, []byte{0, 0, 0, 3, 0xff, 0xff, 1}, wire.CodeBadFrame, "bad_frame"},
		{"length under header", true, []byte{0, 0, 0, 1, 0}, wire.CodeBadFrame, "bad_frame"},
		{"short data frame", true, wire.AppendFrame(nil, wire.KindClientData, []byte{1, 2}), wire.CodeBadFrame, "bad_frame"},
		{"second login", true, wire.AppendLogin(nil, "x", "y"), wire.CodeBadFrame, "bad_frame"},
		{"data before login", false, wire.AppendData(nil, 4001, nil), wire.CodeBadFrame, "bad_frame"},
		{"malformed login", false, wire.AppendFrame(nil, wire.KindClientLogin, []byte{9, 'a'}), wire.CodeBadFrame, "bad_frame"},
		{"bad account name", false, wire.AppendLogin(nil, "a{b}", "tok"), wire.CodeBadFrame, "bad_frame"},
		{"text protocol", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wire.CodeTooLarge, "too_large"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, g, "xserver_gateway_drops_total", tc.metric)
			var c *client
			if tc.login {
				c = e.connect(accountName(900 + i))
			} else {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				c = &client{tb: t, account: "raw", conn: conn, r: wire.NewReader(conn, 1<<20, 0)}
			}
			c.write(tc.send)
			if got := c.closedWith(); got != tc.code {
				t.Fatalf("closed with %q, want %q", wire.CodeText(got), wire.CodeText(tc.code))
			}
			if after := counter(t, g, "xserver_gateway_drops_total", tc.metric); after != before+1 {
				t.Fatalf("%s counter %v -> %v", tc.metric, before, after)
			}
		})
	}

	t.Run("bad token", func(t *testing.T) {
		tk := e.loginTicket("forger")
		tk.Token = "not-the-token"
		c, code := dial(t, addr, tk)
		if code != wire.CodeBadToken {
			t.Fatalf("ack %q, want bad token", wire.CodeText(code))
		}
		if got := c.closedWith(); got != 0 {
			t.Fatalf("unexpected frame code %d after the refusal", got)
		}
	})
	t.Run("no login in time", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &client{tb: t, account: "mute", conn: conn, r: wire.NewReader(conn, 1<<20, 0)}
		if got := c.closedWith(); got != wire.CodeLoginTimeout {
			t.Fatalf("closed with %q, want login timeout", wire.CodeText(got))
		}
	})
	t.Run("type with no live node", func(t *testing.T) {
		c := e.connect("hopeful")
		c.write(wire.AppendData(nil, 9001, []byte("x"))) // type 9: nobody
		k, p := c.read()
		if k != wire.KindClientError {
			t.Fatalf("got %s, want a client error notice", k)
		}
		if code := binary.BigEndian.Uint16(p); code != wire.CodeNoNode {
			t.Fatalf("notice code %d", code)
		}
		c.write(append(wire.AppendHeader(nil, wire.KindClientPing, 8), 1, 2, 3, 4, 5, 6, 7, 8))
		if k, _ := c.read(); k != wire.KindClientPong {
			t.Fatalf("connection unusable after the notice: %s", k)
		}
	})
	t.Run("client that never reads", func(t *testing.T) {
		before := counter(t, g, "xserver_gateway_drops_total", "slow_client")
		c := e.connect("sleeper")
		defer c.conn.Close()
		waitFor(t, 10*time.Second, "lobby knows the sleeper's gateway", func() bool {
			return lobby.SendClientMsgByRelay("sleeper", 1, nil) == nil
		})
		chunk := make([]byte, 8<<10)
		waitFor(t, 20*time.Second, "sleeper disconnected as too slow", func() bool {
			_ = lobby.SendClientMsgByRelay("sleeper", 1, chunk)
			return counter(t, g, "xserver_gateway_drops_total", "slow_client") > before
		})
		waitFor(t, 10*time.Second, "sleeper's session ended", func() bool { return lobby.lostCount("sleeper") == 1 })
	})

	// The bystander never noticed.
	bystander.send(uint64(lobbyType)*1000+1, 42)
	if _, seq, _ := bystander.reply(); seq != 42 {
		t.Fatalf("bystander reply %d", seq)
	}
	if lobby.lostCount("bystander") != 0 {
		t.Fatal("bystander lost")
	}
}

func counter(t *testing.T, g *gateway.Gateway, name, reason string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
