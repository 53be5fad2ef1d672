package gateway_test

import (
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// A newer login elsewhere ends the older session even when the Pub/Sub
// announcement is lost: the session record in Redis is the authority,
// checked at every refresh. The older session ends as replaced: no
// lose-account (the account lives on in the new session).
func TestReplacedWithoutPubSub(t *testing.T) {
	e := newEnvWith(t, 2, func(c *gatewayConfig) { c.SessionRefresh = time.Second })
	lobby := e.startGame(lobbyType)
	e.ready()
	t1 := e.loginTicket("twin")
	first := e.gatewayByAddr(t1.Gateway)
	first.DropKickChannel()
	old, code := dial(t, first.Addrs().Client, t1)
	if code != wire.CodeOK {
		t.Fatalf("first login: code %d", code)
	}
	t2 := e.loginTicket("twin")
	fresh, code := dial(t, e.other(first).Addrs().Client, t2)
	if code != wire.CodeOK {
		t.Fatalf("second login: code %d", code)
	}
	start := time.Now()
	if got := old.closedWith(); got != wire.CodeDuplicate {
		t.Fatalf("older session closed with %d, want %d (duplicate)", got, wire.CodeDuplicate)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the older session lasted %v without Pub/Sub, want within two refreshes", d)
	}
	fresh.send(uint64(lobbyType)*1000+1, 1)
	fresh.reply()
	if n := lobby.lostCount("twin"); n != 0 {
		t.Fatalf("lose-account fired %d times for an account that lives on", n)
	}
}

// When the gateway holding a session dies without a goodbye, the bound
// node learns the account is gone: lose-account fires once, when no
// resume came (at once for a session without resume, after the window
// for one with).
func TestLoseAccountWhenGatewayDies(t *testing.T) {
	e := newEnvWith(t, 2, func(c *gatewayConfig) { c.ResumeWindow = 2 * time.Second })
	lobby := e.startGame(lobbyType)
	e.ready()
	t1 := e.loginTicket("orphan")
	gw := e.gatewayByAddr(t1.Gateway)
	c, code := dial(t, gw.Addrs().Client, t1) // version 1: no resume
	if code != wire.CodeOK {
		t.Fatalf("login: code %d", code)
	}
	c.send(uint64(lobbyType)*1000+1, 1)
	c.reply()
	gw.Crash()
	waitFor(t, 15*time.Second, "lose-account after the gateway died", func() bool { return lobby.lostCount("orphan") == 1 })
	time.Sleep(3 * time.Second) // nothing more may come
	if n := lobby.lostCount("orphan"); n != 1 {
		t.Fatalf("lose-account fired %d times", n)
	}
}
