package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/login"
)

// A gray release of a stateless type: listed accounts and the rollout's
// share reach the new version's instance, every other account the old
// one, message after message.
func TestGrayStatelessRouting(t *testing.T) {
	rs, err := discovery.ParseRollouts(fmt.Sprintf("type=%d,version=2.0,share=10%%,accounts=qa", echoType))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Rollouts = rs })
	e.startGame(lobbyType)
	v1 := e.startGameVersion(echoType, "1.0")
	v2 := e.startGameVersion(echoType, "2.0")
	e.ready()
	waitFor(t, 10*time.Second, "versions known", func() bool {
		m := e.gws[0].Node().GetNode(v2.GetID())
		return m != nil && m.GetVersion() == "2.0"
	})
	accounts := []string{"qa"}
	for i := range 20 {
		accounts = append(accounts, accountName(i))
	}
	for _, a := range accounts {
		want := v1.GetID().String()
		if rs[0].In(a) {
			want = v2.GetID().String()
		}
		c := e.connect(a)
		for i := range 4 {
			c.send(uint64(echoType)*1000+1, uint32(i))
			if _, _, by := c.reply(); by != want {
				t.Fatalf("%s (new version: %v): message %d answered by %s, want %s", a, rs[0].In(a), i, by, want)
			}
		}
	}
}

// A gray release of a stateful type: a player bound before the new
// version's instance came stays on its instance for its whole session;
// new players on the rollout's side are bound to the new version.
func TestGrayKeepsOldSessions(t *testing.T) {
	rs, err := discovery.ParseRollouts(fmt.Sprintf("type=%d,version=2.0,share=100%%", lobbyType))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Rollouts = rs })
	lc := e.login.Config()
	lc.Rollouts = rs
	ls, err := login.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	ticket := func(a string) *login.Ticket {
		tk, err := ls.Login(context.Background(), a, "pw")
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	old := e.startGameVersion(lobbyType, "1.0")
	e.ready()
	tk := ticket("old-player")
	oldc, code := dial(t, tk.Gateway, tk)
	if code != 0 {
		t.Fatalf("login %d", code)
	}
	gray := e.startGameVersion(lobbyType, "2.0")
	e.ready()
	waitFor(t, 10*time.Second, "the new version known", func() bool {
		return len(e.ln.GetNodeList(lobbyType)) == 2 && e.gws[0].Node().GetNode(gray.GetID()) != nil
	})
	tk2 := ticket("new-player")
	if tk2.Bindings[lobbyType] != gray.GetID() {
		t.Fatalf("new player bound to %v, want the new version %v", tk2.Bindings[lobbyType], gray.GetID())
	}
	newc, _ := dial(t, tk2.Gateway, tk2)
	for i := range 5 {
		oldc.send(uint64(lobbyType)*1000+1, uint32(i))
		if _, _, by := oldc.reply(); by != old.GetID().String() {
			t.Fatalf("the old session moved to %s", by)
		}
		newc.send(uint64(lobbyType)*1000+1, uint32(i))
		if _, _, by := newc.reply(); by != gray.GetID().String() {
			t.Fatalf("the new session reached %s", by)
		}
	}
	if old.lostCount("old-player") != 0 {
		t.Fatal("the old instance lost the old player")
	}
}
