package gateway_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/login"
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

// An older login's announcement delivered late (Pub/Sub gives no order
// across a subscriber's reconnection or a Redis Cluster failover) must not
// end the newer session: the record names it, and the record decides.
// A genuine announcement, whose record names the other gateway, still
// replaces at once.
func TestLateAnnouncementKeepsNewerSession(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	newer := e.connect("twin")
	probe := e.connect("probe")
	ctx := context.Background()
	cluster := gateway.DefaultConfig().Cluster
	ch := "xserver:{" + cluster + "}:logins"
	elsewhere := common.NewNodeID()
	sidOf := func(account string) uint64 {
		v, err := e.rdb.HGet(ctx, login.KeysFor(cluster, account).Sess, "sid").Result()
		if err != nil {
			t.Fatal(err)
		}
		sid, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return sid
	}
	// The late one: another gateway's older session of "twin".
	if err := e.rdb.Publish(ctx, ch, fmt.Sprintf("%s %x twin", elsewhere, sidOf("twin")+1)).Err(); err != nil {
		t.Fatal(err)
	}
	// A genuine one for "probe": its record now names the other gateway.
	if err := e.rdb.HSet(ctx, login.KeysFor(cluster, "probe").Sess, "gw", elsewhere.String(), "sid", fmt.Sprintf("%x", sidOf("probe")+1)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Publish(ctx, ch, fmt.Sprintf("%s %x probe", elsewhere, sidOf("probe"))).Err(); err != nil {
		t.Fatal(err)
	}
	// Announcements are applied in order: once probe is replaced, the
	// late one has been handled.
	if got := probe.closedWith(); got != wire.CodeDuplicate {
		t.Fatalf("genuine announcement: probe closed with %d, want %d", got, wire.CodeDuplicate)
	}
	newer.send(uint64(lobbyType)*1000+1, 1)
	if _, seq, _ := newer.reply(); seq != 1 {
		t.Fatalf("the newer session answered seq %d", seq)
	}
}
