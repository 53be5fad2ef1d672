package gateway_test

import (
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// A resume on the same gateway whose broadcast history no longer reaches
// back to the client's position says so with BroadcastGap, as a resume on
// another gateway does: the client must not take the missing broadcasts for
// none.
func TestResumeReportsBroadcastGapWhenHistoryIsShort(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.BroadcastHistory = 1 }) // keeps the last broadcast only
	lobby := e.startGame(lobbyType)
	e.ready()
	login := func(account string) (*client, wire.Session, wire.StreamPos) {
		tk := e.loginTicket(account)
		c, code := dialV2(t, tk.Gateway, tk)
		if code != wire.CodeOK {
			t.Fatalf("%s: login ack %s", account, wire.CodeText(code))
		}
		k, p := c.read()
		s, err := wire.DecodeSession(p)
		if k != wire.KindClientSession || err != nil {
			t.Fatalf("%s: %s %v, want the session", account, k, err)
		}
		k, p = c.read()
		st, err := wire.DecodeStreamOpen(p)
		if k != wire.KindClientStream || err != nil {
			t.Fatalf("%s: %s %v, want stream 0", account, k, err)
		}
		return c, s, st
	}
	pushSeq := func(c *client) uint32 {
		t.Helper()
		k, p := c.read()
		pu, err := wire.DecodePush(p)
		if k != wire.KindClientPush || err != nil || pu.Stream != 0 {
			t.Fatalf("%s: %s %v, want a broadcast", c.account, k, err)
		}
		return pu.Seq
	}
	away, sess, st0 := login("away")
	watcher, _, _ := login("watcher") // stays: shows when the gateway has each broadcast
	if err := lobby.BroadcastClientMsg(4100, []byte("b")); err != nil {
		t.Fatal(err)
	}
	last := pushSeq(away)
	pushSeq(watcher)
	away.conn.Close()
	for i := 0; i < 3; i++ { // while away; the history keeps only the last
		if err := lobby.BroadcastClientMsg(4100, []byte("b")); err != nil {
			t.Fatal(err)
		}
		pushSeq(watcher)
	}

	back, _ := dialRaw(t, e.gws[0].Addrs().Client)
	back.write(wire.AppendResume(nil, &wire.Resume{Account: "away", ID: sess.ID, Secret: sess.Secret, Attempt: 1,
		Streams: []wire.StreamPos{{Stream: 0, Node: st0.Node, Epoch: st0.Epoch, Last: last}}}))
	k, p := back.read()
	r, err := wire.DecodeResumed(p)
	if k != wire.KindClientResumed || err != nil || r.Code != wire.CodeOK {
		t.Fatalf("resume answer %s %+v %v", k, r, err)
	}
	if r.Flags&wire.ResumedBroadcastGap == 0 {
		t.Fatal("ClientResumed without BroadcastGap: the broadcasts sent while away were dropped from the history")
	}
}

// ClientSession's window_ms is the gateway's resume window, as
// PROTOCOL.md defines it; not the longer wait the bound nodes are given.
func TestClientSessionCarriesTheResumeWindow(t *testing.T) {
	const window = 8 * time.Second
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.ResumeWindow = window })
	e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket("windowed")
	c, code := dialV2(t, tk.Gateway, tk)
	if code != wire.CodeOK {
		t.Fatalf("login ack %s", wire.CodeText(code))
	}
	k, p := c.read()
	s, err := wire.DecodeSession(p)
	if k != wire.KindClientSession || err != nil {
		t.Fatalf("%s %v, want the session", k, err)
	}
	if s.WindowMs != uint32(window.Milliseconds()) {
		t.Fatalf("window_ms %d, want %d", s.WindowMs, window.Milliseconds())
	}
}
