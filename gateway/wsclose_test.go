package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
)

// wsDial opens a WebSocket to the gateway at addr (host:port) without
// logging in.
func wsDial(tb testing.TB, addr, account string) *client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		tb.Fatal(err)
	}
	conn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	tb.Cleanup(func() { conn.Close() })
	return &client{tb: tb, account: account, conn: conn, r: wire.NewReader(conn, 1<<20, 0)}
}

// wsLogin logs in over WebSocket with a fresh ticket.
func (e *env) wsLogin(account string) *client {
	e.tb.Helper()
	tk := e.loginTicket(account)
	c := wsDial(e.tb, tk.WebSocket, account)
	c.ticket = tk
	c.write(wire.AppendLogin(nil, tk.Account, tk.Token))
	if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
		e.tb.Fatalf("%s: login ack %s %v", account, k, p)
	}
	return c
}

// wsEnd reads until the gateway closes the WebSocket and returns the code
// of the last kick (or refusing login ack) and the close status. It does
// not fail the test itself, so that it can run on any goroutine.
func (c *client) wsEnd() (uint16, websocket.StatusCode, error) {
	code := uint16(0xffff) // no kick
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		k, p, err := c.r.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return code, -1, fmt.Errorf("%s: not closed by the gateway", c.account)
			}
			return code, websocket.CloseStatus(err), nil
		}
		if k == wire.KindClientKick || k == wire.KindClientLoginAck {
			code, _, _ = wire.DecodeCoded(p)
		}
	}
}

// expectWSEnd checks that the gateway kicked c with code and then closed
// the WebSocket with the matching status.
func expectWSEnd(tb testing.TB, c *client, code uint16) {
	tb.Helper()
	if err := wsEndIs(c, code); err != nil {
		tb.Fatal(err)
	}
}

func wsEndIs(c *client, code uint16) error {
	got, status, err := c.wsEnd()
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("%s: kick code %d (%s), want %d (%s)", c.account, got, wire.CodeText(got), code, wire.CodeText(code))
	}
	if want := websocket.StatusCode(gateway.WSCloseStatus(code)); status != want {
		return fmt.Errorf("%s: close status %d after kick %d, want %d", c.account, status, code, want)
	}
	return nil
}

// Every kick reaches a WebSocket client as it reaches a TCP client, and a
// close frame with the kick's status follows.
func TestWSKickAndCloseStatus(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Idle = 400 * time.Millisecond })
	lobby := e.startGame(lobbyType)
	e.ready()
	g := e.gws[0]

	t.Run("login timeout", func(t *testing.T) {
		c := wsDial(t, g.Addrs().WebSocket, "silent")
		expectWSEnd(t, c, wire.CodeLoginTimeout)
	})
	t.Run("idle", func(t *testing.T) {
		c := e.wsLogin("idler")
		expectWSEnd(t, c, wire.CodeIdle)
	})
	t.Run("duplicate", func(t *testing.T) {
		c := e.wsLogin("twin")
		e.connect("twin")
		expectWSEnd(t, c, wire.CodeDuplicate)
	})
	t.Run("node kick", func(t *testing.T) {
		c := e.wsLogin("kicked")
		if err := lobby.Kick("kicked", "go away"); err != nil {
			t.Fatal(err)
		}
		expectWSEnd(t, c, wire.CodeKicked)
	})
	t.Run("bad token", func(t *testing.T) {
		c := wsDial(t, g.Addrs().WebSocket, "forger")
		c.write(wire.AppendLogin(nil, "forger", "not-a-token"))
		expectWSEnd(t, c, wire.CodeBadToken)
	})
}

// A drain kicks every WebSocket session with code 11 and a close frame;
// none is cut short.
func TestWSDrainKicksEverySession(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	const n = 16
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = e.wsLogin(accountName(i))
	}
	pre := wsDial(t, e.gws[0].Addrs().WebSocket, "pre-login") // not logged in yet
	errs := make(chan error, n+1)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- wsEndIs(c, wire.CodeShutdown) }()
	}
	closed := make(chan struct{})
	go func() { _ = e.gws[0].Close(); close(closed) }()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	_, _, err := pre.wsEnd()
	if err != nil {
		t.Error(err)
	}
	<-closed
}

// The documented per-message limit (MaxFrame + 64) holds: a message of
// exactly that many bytes of whole frames is served, one byte more is
// kicked with code 3 and closed with its status.
func TestWSMessageLimit(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	limit := 16<<10 + 64 // the env's MaxFrame + 64

	// message builds limit+extra bytes: pings, then one data frame to a
	// type with no node (answered by a ClientError) taking up the rest.
	message := func(extra int) ([]byte, int) {
		var m []byte
		pings := 0
		for limit+extra-len(m) >= 14+wire.DataSize(0)+14 {
			m = wire.AppendFrame(m, wire.KindClientPing, make([]byte, 8))
			pings++
		}
		rest := limit + extra - len(m) - wire.DataSize(0)
		m = wire.AppendData(m, uint64(echoType)*1000+1, make([]byte, rest))
		if len(m) != limit+extra {
			t.Fatalf("built %d bytes, want %d", len(m), limit+extra)
		}
		return m, pings
	}

	c := e.wsLogin("big")
	m, pings := message(0)
	c.write(m)
	for i := 0; i < pings; i++ {
		if k, _ := c.read(); k != wire.KindClientPong {
			t.Fatalf("answer %d to a message at the limit: %s, want a pong", i, k)
		}
	}
	if k, _ := c.read(); k != wire.KindClientError {
		t.Fatalf("last answer to a message at the limit: %s, want ClientError", k)
	}

	m, _ = message(1)
	c.write(m)
	expectWSEnd(t, c, wire.CodeTooLarge)

	// One frame over MaxFrame in a small message is TooLarge as on TCP.
	c = e.wsLogin("big2")
	c.write(wire.AppendHeader(nil, wire.KindClientData, 1<<20))
	expectWSEnd(t, c, wire.CodeTooLarge)
}

// A gateway at its connection limit refuses a WebSocket with kick 12 and
// the matching close status.
func TestWSRefusedWhenFull(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.MaxClients = 1 })
	e.startGame(lobbyType)
	e.ready()
	// A logged-in first connection is counted before its ack is sent, so
	// once the login is acknowledged the gateway is full: one refused dial,
	// no retry loop whose rounds could outlast a deadline on a loaded machine.
	e.wsLogin("first")
	waitFor(t, 30*time.Second, "first client counted", func() bool { return e.gws[0].NumClients() == 1 })
	c := wsDial(t, e.gws[0].Addrs().WebSocket, "second")
	got, status, err := c.wsEnd()
	if err != nil || got != wire.CodeFull || status != websocket.StatusCode(gateway.WSCloseStatus(wire.CodeFull)) {
		t.Fatalf("second connection: kick %d, status %d, err %v; want kick %d, status %d",
			got, status, err, wire.CodeFull, gateway.WSCloseStatus(wire.CodeFull))
	}
}
