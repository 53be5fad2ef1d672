package gateway_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	xclient "github.com/xserver/xserver/client"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
)

// proxy forwards TCP connections to a target; cut drops every connection
// at once, abruptly (RST), as a network change or a dead peer would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(tb testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
	tb.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

// player is a xclient.Client with the bookkeeping of the tests: it sends
// numbered messages to the lobby and checks that the echoes come back
// exactly once, in order.
type player struct {
	tb      testing.TB
	c       *xclient.Client
	account string
	sent    uint32
	mu      sync.Mutex
	got     []uint32
	resumes int
	done    chan struct{}
}

func (e *env) player(account, addr string, gatewayFor func(context.Context) (string, error)) *player {
	e.tb.Helper()
	t := e.loginTicket(account)
	c, err := xclient.Dial(context.Background(), xclient.Config{
		Account: account, Token: t.Token, Addr: addr, Gateway: gatewayFor,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, PingEvery: time.Second,
	})
	if err != nil {
		e.tb.Fatalf("%s: dial: %v", account, err)
	}
	p := &player{tb: e.tb, c: c, account: account, done: make(chan struct{})}
	e.tb.Cleanup(func() { c.Close() })
	go func() {
		defer close(p.done)
		for {
			select {
			case m := <-c.Messages():
				if len(m.Data) >= 4 {
					p.mu.Lock()
					p.got = append(p.got, binary.BigEndian.Uint32(m.Data))
					p.mu.Unlock()
				}
			case ev, ok := <-c.Events():
				if !ok {
					return
				}
				if ev.Kind == xclient.EvResumed {
					p.mu.Lock()
					p.resumes++
					p.mu.Unlock()
				}
			}
		}
	}()
	return p
}

func (p *player) send(n int) {
	for i := 0; i < n; i++ {
		p.sent++
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], p.sent)
		if err := p.c.Send(context.Background(), uint64(lobbyType)*1000+1, b[:]); err != nil {
			p.tb.Fatalf("%s: send %d: %v", p.account, p.sent, err)
		}
	}
}

func (p *player) received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// checkExactlyOnce asserts the player got 1…sent in order, and the lobby
// saw 1…sent in order.
func (p *player) checkExactlyOnce(lobby *gameNode) {
	p.tb.Helper()
	p.mu.Lock()
	got := append([]uint32(nil), p.got...)
	p.mu.Unlock()
	lobby.mu.Lock()
	seen := append([]uint32(nil), lobby.seen[p.account]...)
	lobby.mu.Unlock()
	for what, s := range map[string][]uint32{"client received": got, "lobby received": seen} {
		if len(s) != int(p.sent) {
			p.tb.Fatalf("%s: %s %d messages, want %d", p.account, what, len(s), p.sent)
		}
		for i, v := range s {
			if v != uint32(i+1) {
				p.tb.Fatalf("%s: %s message %d is %d (lost or duplicated)", p.account, what, i+1, v)
			}
		}
	}
}

// A resumable session survives abrupt connection cuts on the same
// gateway: every message in both directions arrives exactly once, in
// order, the lobby sees "disconnected" and "resumed", never lose-account.
func TestResumeAfterConnectionCuts(t *testing.T) {
	e := newEnv(t, 1)
	lobby := e.startGame(lobbyType)
	e.ready()
	px := newProxy(t, e.gws[0].Addrs().Client)
	p := e.player("roamer", px.addr(), nil)
	rnd := rand.New(rand.NewSource(1))
	for round := 0; round < 10; round++ {
		p.send(20 + rnd.Intn(20))
		if rnd.Intn(2) == 0 { // cut with messages in flight, or after they settled
			waitFor(t, 5*time.Second, "echoes", func() bool { return p.received() == int(p.sent) })
		}
		px.cut()
	}
	p.send(5)
	waitFor(t, 10*time.Second, "every echo", func() bool { return p.received() == int(p.sent) })
	p.checkExactlyOnce(lobby)
	if n := lobby.lostCount("roamer"); n != 0 {
		t.Fatalf("lose-account fired %d times for a session that resumed", n)
	}
	// The callbacks run on the node's lanes, after the frames that caused them.
	waitFor(t, 10*time.Second, "the lobby told of disconnects and resumes", func() bool {
		return lobby.away.Load() > 0 && lobby.back.Load() > 0
	})
}

// When the gateway holding a session dies (no goodbye), the client
// resumes on another gateway: nothing is lost or repeated, and no
// lose-account fires.
func TestResumeAfterGatewayDies(t *testing.T) {
	e := newEnv(t, 2)
	lobby := e.startGame(lobbyType)
	e.ready()
	var players []*player
	for i := 0; i < 20; i++ {
		acct := fmt.Sprintf("migrant-%02d", i)
		t0 := e.loginTicket(acct)
		first := e.gatewayByAddr(t0.Gateway)
		other := e.other(first)
		p := e.player(acct, first.Addrs().Client, func(context.Context) (string, error) { return other.Addrs().Client, nil })
		players = append(players, p)
	}
	for _, p := range players {
		p.send(30)
	}
	// Kill the gateway holding the first player's session while messages
	// are in flight.
	victim := e.gatewayByAddr(e.loginTicket("probe").Gateway)
	_ = victim
	dead := e.gws[0]
	dead.Crash()
	for _, p := range players {
		p.send(30)
	}
	for _, p := range players {
		p := p
		waitFor(t, 20*time.Second, p.account+"'s echoes", func() bool { return p.received() == int(p.sent) })
	}
	for _, p := range players {
		p.checkExactlyOnce(lobby)
		if n := lobby.lostCount(p.account); n != 0 {
			t.Fatalf("%s: lose-account fired %d times for a session that resumed", p.account, n)
		}
	}
}

// A session whose client does not come back within the window ends:
// lose-account fires exactly once on the bound node.
func TestResumeWindowExpires(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.ResumeWindow = time.Second })
	lobby := e.startGame(lobbyType)
	e.ready()
	px := newProxy(t, e.gws[0].Addrs().Client)
	p := e.player("leaver", px.addr(), nil)
	p.send(3)
	waitFor(t, 5*time.Second, "echoes", func() bool { return p.received() == 3 })
	p.c.Abandon() // no logout: the session waits for its window
	px.cut()
	waitFor(t, 10*time.Second, "lose-account", func() bool { return lobby.lostCount("leaver") == 1 })
	time.Sleep(2 * time.Second) // nothing else may fire: check for a duplicate
	if n := lobby.lostCount("leaver"); n != 1 {
		t.Fatalf("lose-account fired %d times", n)
	}
}

// Resumes that must not work get a code and a close, and disturb nothing:
// a wrong secret, an unknown session, a session of another account.
func TestResumeRefused(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	px := newProxy(t, e.gws[0].Addrs().Client)
	p := e.player("owner", px.addr(), nil)
	p.send(2)
	waitFor(t, 5*time.Second, "echoes", func() bool { return p.received() == 2 })
	addr := e.gws[0].Addrs().Client
	try := func(r *wire.Resume) uint16 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(wire.AppendResume(nil, r))
		rd := wire.NewReader(c, 1<<20, 0)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, pl, err := rd.ReadFrame()
		if err != nil || k != wire.KindClientResumed {
			t.Fatalf("answer %s %v", k, err)
		}
		res, _ := wire.DecodeResumed(pl)
		if _, _, err := rd.ReadFrame(); !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
			t.Fatalf("connection not closed after a refusal: %v", err)
		}
		return res.Code
	}
	if code := try(&wire.Resume{Account: "owner", ID: 12345}); code != wire.CodeExpired {
		t.Errorf("unknown session: code %d", code)
	}
	sid := e.sessionID(t, "owner")
	if code := try(&wire.Resume{Account: "owner", ID: sid}); code != wire.CodeBadResume {
		t.Errorf("wrong secret: code %d", code)
	}
	if code := try(&wire.Resume{Account: "someone-else", ID: sid}); code != wire.CodeExpired {
		t.Errorf("another account: code %d", code)
	}
	for i := 0; i < 50; i++ { // a flood of bad resumes
		try(&wire.Resume{Account: "owner", ID: sid})
	}
	p.send(2)
	waitFor(t, 5*time.Second, "the owner unaffected", func() bool { return p.received() == 4 })
}

// The session id of account's live session, from its Redis record.
func (e *env) sessionID(t *testing.T, account string) uint64 {
	t.Helper()
	v, err := e.rdb.HGet(context.Background(), "xserver:xserver:{"+account+"}:sess", "sid").Result()
	if err != nil {
		t.Fatal(err)
	}
	var id uint64
	fmt.Sscanf(v, "%x", &id)
	return id
}

var _ = gateway.DefaultConfig

// A client that logs out ends its session at once: lose-account fires
// without waiting for the resume window.
func TestLogout(t *testing.T) {
	e := newEnv(t, 1) // 30 s window
	lobby := e.startGame(lobbyType)
	e.ready()
	p := e.player("quitter", e.gws[0].Addrs().Client, nil)
	p.send(2)
	waitFor(t, 5*time.Second, "echoes", func() bool { return p.received() == 2 })
	start := time.Now()
	p.c.Close()
	waitFor(t, 5*time.Second, "lose-account after the logout", func() bool { return lobby.lostCount("quitter") == 1 })
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the session ended %v after the logout", d)
	}
}

// A client closed while it is between connections (resuming after a
// loss) makes one more resume at once and logs out on it: its nodes get
// lose-account now, not when the resume window passes. Before, Close then
// only stopped the client, and the session waited out its window.
func TestCloseWhileAwayLogsOut(t *testing.T) {
	e := newEnv(t, 1) // 30 s window
	lobby := e.startGame(lobbyType)
	e.ready()
	gw := e.gws[0].Addrs().Client
	px := newProxy(t, gw)
	tk := e.loginTicket("quitter")
	c, err := xclient.Dial(context.Background(), xclient.Config{
		Account: "quitter", Token: tk.Token, Addr: px.addr(),
		Gateway:    func(context.Context) (string, error) { return gw, nil },
		BackoffMin: 5 * time.Second, BackoffMax: 5 * time.Second, // away for seconds unless Close hurries
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send(context.Background(), uint64(lobbyType)*1000+1, []byte{0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the lobby gets the message", func() bool {
		lobby.mu.Lock()
		defer lobby.mu.Unlock()
		return len(lobby.seen["quitter"]) == 1
	})
	px.ln.Close() // the way back through the proxy is gone
	px.cut()
	for ev := range c.Events() {
		if ev.Kind == xclient.EvDisconnected {
			break
		}
	}
	c.Close()
	waitFor(t, 10*time.Second, "lose-account after Close", func() bool { return lobby.lostCount("quitter") == 1 })
}

// Close logs out even when the client has not read what the gateway sent
// it: it waits for the gateway to close the connection after the logout
// instead of closing first, which would reset the connection with data
// unread and could make the gateway drop the logout unread (the session
// then waited out its window: lose-account 30 s late).
func TestCloseWithUnreadPushesLogsOut(t *testing.T) {
	e := newEnv(t, 1) // 30 s window
	lobby := e.startGame(lobbyType)
	e.ready()
	for i := 0; i < 5; i++ {
		account := fmt.Sprintf("unread-%d", i)
		tk := e.loginTicket(account)
		c, err := xclient.Dial(context.Background(), xclient.Config{Account: account, Token: tk.Token, Addr: tk.Gateway, Buffer: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(context.Background(), uint64(lobbyType)*1000+1, []byte{0, 0, 0, 1}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the lobby gets the message", func() bool {
			lobby.mu.Lock()
			defer lobby.mu.Unlock()
			return len(lobby.seen[account]) == 1
		})
		for j := 0; j < 200; j++ { // more than the client reads: it reads none
			if err := lobby.SendClientMsgByRelay(account, uint64(lobbyType)*1000+2, make([]byte, 512)); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		waitFor(t, 10*time.Second, account+": lose-account after Close", func() bool { return lobby.lostCount(account) == 1 })
	}
}
