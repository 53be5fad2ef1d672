package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// Every way a session can end fires lose-account on the bound node once:
// disconnect (covered elsewhere), idle timeout, a node's kick, and the
// gateway draining on Close.
func TestLoseAccountOnEveryEnding(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Idle = 500 * time.Millisecond })
		lobby := e.startGame(lobbyType)
		e.ready()
		idler := e.connect("idler")
		if got := idler.closedWith(); got != wire.CodeIdle {
			t.Fatalf("idle session closed with %q", wire.CodeText(got))
		}
		waitFor(t, 10*time.Second, "lose-account after idle", func() bool { return lobby.lostCount("idler") == 1 })
	})

	e := newEnv(t, 2)
	lobby := e.startGame(lobbyType)
	e.ready()

	cheat := e.connect("cheat")
	waitFor(t, 10*time.Second, "node kicks", func() bool { return lobby.Kick("cheat", "cheating") == nil })
	if got := cheat.closedWith(); got != wire.CodeKicked {
		t.Fatalf("kicked session closed with %q", wire.CodeText(got))
	}
	waitFor(t, 10*time.Second, "lose-account after kick", func() bool { return lobby.lostCount("cheat") == 1 })

	// Drain: every session on the closing gateway ends with a shutdown
	// kick and a lose-account.
	var drained []*client
	for _, a := range []string{"d1", "d2", "d3", "d4"} {
		drained = append(drained, e.connect(a))
	}
	g := e.gatewayByAddr(drained[0].ticket.Gateway)
	g.Close()
	for _, c := range drained {
		if c.ticket.Gateway != g.Addrs().Client {
			continue
		}
		if got := c.closedWith(); got != wire.CodeShutdown {
			t.Fatalf("%s closed with %q on drain", c.account, wire.CodeText(got))
		}
		waitFor(t, 10*time.Second, "lose-account after drain", func() bool { return lobby.lostCount(c.account) == 1 })
	}
	if n := lobby.lostCount("cheat"); n != 1 {
		t.Fatalf("cheat: lose-account %d times", n)
	}
}

// BroadcastClientMsg reaches every client on every gateway.
func TestBroadcastToAllClients(t *testing.T) {
	e := newEnv(t, 2)
	lobby := e.startGame(lobbyType)
	e.ready()
	var cs []*client
	for i := 0; i < 20; i++ {
		cs = append(cs, e.connect(accountName(i)))
	}
	perGateway := map[string]int{}
	for _, c := range cs {
		perGateway[c.ticket.Gateway]++
	}
	if len(perGateway) != 2 {
		t.Fatalf("clients on %d gateways, want 2", len(perGateway))
	}
	if err := lobby.BroadcastClientMsg(777, []byte("news")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		k, p := c.read()
		cmd, data, err := wire.DecodeData(p)
		if k != wire.KindClientData || err != nil || cmd != 777 || string(data) != "news" {
			t.Fatalf("%s got %s %d %q %v", c.account, k, cmd, data, err)
		}
	}
}

// A gateway at its connection limit refuses newcomers with a code and
// keeps serving the others.
func TestConnectionLimit(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.MaxClients = 2 })
	e.startGame(lobbyType)
	e.ready()
	a, b := e.connect("a"), e.connect("b")
	tk := e.loginTicket("c")
	c, _ := dialRaw(t, tk.Gateway)
	if got := c.closedWith(); got != wire.CodeFull {
		t.Fatalf("third connection closed with %q, want gateway full", wire.CodeText(got))
	}
	for i, cl := range []*client{a, b} {
		cl.send(uint64(lobbyType)*1000+1, uint32(i))
		if _, seq, _ := cl.reply(); seq != uint32(i) {
			t.Fatalf("client %d reply %d", i, seq)
		}
	}
}

// A broadcast sent the moment a client's login is acknowledged reaches
// it: where its broadcasts start is fixed before the acknowledgement goes
// out (it used to be fixed after, so a broadcast that came in between was
// counted as before the login and never sent).
func TestBroadcastRightAfterLoginArrives(t *testing.T) {
	e := newEnv(t, 1)
	lobby := e.startGame(lobbyType)
	e.ready()
	for i := 0; i < 60; i++ {
		c := e.connect(fmt.Sprintf("quick-%02d", i))
		if err := lobby.BroadcastClientMsg(uint64(1000+i), []byte("hello")); err != nil {
			t.Fatal(err)
		}
		k, p := c.read() // fails the test after 10 s
		cmd, _, err := wire.DecodeData(p)
		if k != wire.KindClientData || err != nil || cmd != uint64(1000+i) {
			t.Fatalf("%s got %s cmd %d, %v", c.account, k, cmd, err)
		}
		c.conn.Close()
	}
}
