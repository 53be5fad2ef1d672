package gateway_test

import (
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/login"
)

// Idle connections that never log in fill only the pre-login slots, the
// gateway then tells the cluster it is full, and the login service sends
// every player to the other gateway, where all log in.
func TestIdleConnectionsDoNotAttractLogins(t *testing.T) {
	e := newEnvWith(t, 2, func(c *gatewayConfig) {
		c.MaxClients, c.MaxPreLogin = 20, 4
		c.LoginTimeout = 30 * time.Second // the idle connections stay
	})
	e.startGame(lobbyType)
	e.ready()
	full, other := e.gws[0], e.gws[1]

	// More idle connections than the gateway has slots; the accept loop
	// serves them in order, so once the last is refused all were seen.
	var idle []*client
	for i := 0; i < 21; i++ {
		c, _ := dialRaw(t, full.Addrs().Client)
		idle = append(idle, c)
	}
	if got := idle[len(idle)-1].closedWith(); got != wire.CodeFull {
		t.Fatalf("connection over the limit closed with %q, want Full", wire.CodeText(got))
	}
	id := full.Node().GetID()
	waitFor(t, 10*time.Second, "login service sees the gateway full", func() bool {
		m := e.ln.GetNode(id)
		return m != nil && m.GetOverload(login.GatewayLoadState) == login.GatewayFull
	})
	if m := e.ln.GetNode(id); m.GetOverload(login.GatewayLoadConnections) != 4 {
		t.Errorf("published connections %d, want the 4 pre-login slots", m.GetOverload(login.GatewayLoadConnections))
	}
	for i := 0; i < 12; i++ {
		tk := e.loginTicket(accountName(i))
		if tk.Gateway != other.Addrs().Client {
			t.Fatalf("login %d sent to %s, the full gateway is %s", i, tk.Gateway, full.Addrs().Client)
		}
		if _, code := dial(t, tk.Gateway, tk); code != wire.CodeOK {
			t.Fatalf("login %d refused with %s", i, wire.CodeText(code))
		}
	}

	// The idle connections go: the gateway accepts again.
	for _, c := range idle {
		c.conn.Close()
	}
	waitFor(t, 10*time.Second, "login service sees the gateway accepting", func() bool {
		m := e.ln.GetNode(id)
		return m != nil && m.GetOverload(login.GatewayLoadState) == login.GatewayAccepting
	})
}

// A draining gateway marks itself so before it leaves, and the login
// service stops handing it out at once.
func TestDrainingGatewayMarked(t *testing.T) {
	e := newEnv(t, 2)
	e.startGame(lobbyType)
	e.ready()
	g := e.gws[0]
	id := g.Node().GetID()
	var mu sync.Mutex
	var states []uint32
	e.ln.RegisterFuncOnUpdate(func(m common.Member) {
		if m.GetID() == id {
			mu.Lock()
			states = append(states, m.GetOverload(login.GatewayLoadState))
			mu.Unlock()
		}
	})
	left := make(chan struct{})
	e.ln.RegisterFuncOnLeave(func(m common.Member) {
		if m.GetID() == id {
			close(left)
		}
	})
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-left:
	case <-time.After(10 * time.Second):
		t.Fatal("the drained gateway never left")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) == 0 || states[len(states)-1] != login.GatewayDraining {
		t.Fatalf("states published before the leave %v, want the last to be draining (%d)", states, login.GatewayDraining)
	}
}
