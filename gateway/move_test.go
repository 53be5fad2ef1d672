package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/login"
)

// v2Player is a version 2 client written against PROTOCOL.md §3.10 with
// raw frames, so a test can send each resume itself.
type v2Player struct {
	tb      testing.TB
	account string
	sess    wire.Session
	c       *client
	streams map[uint16]wire.StreamPos // last: the highest seq received
	seq     uint32                    // the last ClientMsg sent
	msgAck  uint32
	attempt uint32
}

func loginV2(tb testing.TB, tk *login.Ticket) *v2Player {
	tb.Helper()
	c, code := dialV2(tb, tk.Gateway, tk)
	if code != wire.CodeOK {
		tb.Fatalf("%s: login ack %s", tk.Account, wire.CodeText(code))
	}
	k, p := c.read()
	s, err := wire.DecodeSession(p)
	if k != wire.KindClientSession || err != nil {
		tb.Fatalf("%s: %s %v, want the session", tk.Account, k, err)
	}
	v := &v2Player{tb: tb, account: tk.Account, sess: s, c: c, streams: map[uint16]wire.StreamPos{}}
	return v
}

// frame reads one frame and keeps the stream state up to date.
func (v *v2Player) frame() (wire.Kind, []byte) {
	v.tb.Helper()
	k, p := v.c.read()
	switch k {
	case wire.KindClientStream:
		st, err := wire.DecodeStreamOpen(p)
		if err != nil {
			v.tb.Fatal(err)
		}
		if old, ok := v.streams[st.Stream]; ok && old.Node == st.Node && old.Epoch == st.Epoch {
			st.Last = old.Last
		}
		v.streams[st.Stream] = st
	case wire.KindClientMsgAck:
		n, err := wire.DecodeMsgAck(p)
		if err != nil {
			v.tb.Fatal(err)
		}
		v.msgAck = max(v.msgAck, n)
	case wire.KindClientKick:
		code, text, _ := wire.DecodeCoded(p)
		v.tb.Fatalf("%s: kicked with %d (%s)", v.account, code, text)
	}
	return k, p
}

// roundTrip sends ClientMsg n to the lobby and waits for its echo, which
// must be the next message on the lobby's stream.
func (v *v2Player) roundTrip(n uint32) {
	v.tb.Helper()
	v.seq++
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	v.c.write(wire.AppendMsg(nil, v.seq, uint64(lobbyType)*1000+1, b[:]))
	for {
		k, p := v.frame()
		if k != wire.KindClientPush {
			continue
		}
		pu, err := wire.DecodePush(p)
		if err != nil {
			v.tb.Fatal(err)
		}
		st, ok := v.streams[pu.Stream]
		if !ok {
			v.tb.Fatalf("%s: push on unannounced stream %d", v.account, pu.Stream)
		}
		if pu.Seq <= st.Last {
			continue // sent again after a resume
		}
		st.Last = pu.Seq
		v.streams[pu.Stream] = st
		if pu.Stream == 0 {
			continue
		}
		if got := binary.BigEndian.Uint32(pu.Data); got != n || !bytes.Contains(pu.Data, []byte("|")) {
			v.tb.Fatalf("%s: echo of %d, want %d", v.account, got, n)
		}
		v.c.write(wire.AppendAck(nil, []wire.Ack{{Stream: pu.Stream, Seq: pu.Seq}}))
		return
	}
}

// sendResume opens a connection to addr and sends a ClientResume with the
// next attempt number, listing every stream; the answer is not read.
func (v *v2Player) sendResume(addr string) *client {
	v.tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		v.tb.Fatal(err)
	}
	v.tb.Cleanup(func() { c.Close() })
	v.attempt++
	r := &wire.Resume{Account: v.account, ID: v.sess.ID, Secret: v.sess.Secret, MsgAck: v.msgAck, Attempt: v.attempt}
	for _, st := range v.streams {
		r.Streams = append(r.Streams, st)
	}
	cl := &client{tb: v.tb, account: v.account, conn: c, r: wire.NewReader(c, 1<<20, 0)}
	cl.write(wire.AppendResume(nil, r))
	return cl
}

// resume resumes on addr and fails unless the gateway accepts it.
func (v *v2Player) resume(addr string) {
	v.tb.Helper()
	v.c.conn.Close()
	v.c = v.sendResume(addr)
	k, p := v.c.read()
	r, err := wire.DecodeResumed(p)
	if k != wire.KindClientResumed || err != nil || r.Code != wire.CodeOK {
		v.tb.Fatalf("%s: resume on %s: %s %+v %v", v.account, addr, k, r, err)
	}
	v.msgAck = max(v.msgAck, r.MsgAck)
}

// cutOnOneOfTwo starts a lobby on e (two gateways), logs account in with
// version 2, makes one round trip and cuts the connection; it returns the
// player and the gateway it was not on.
func cutOnOneOfTwo(t *testing.T, e *env, account string) (*v2Player, *gateway.Gateway) {
	t.Helper()
	e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket(account)
	v := loginV2(t, tk)
	v.roundTrip(1)
	v.c.conn.Close()
	return v, e.other(e.gatewayByAddr(tk.Gateway))
}

// A client that moves to another gateway and straight back, before the
// first gateway heard of the move, must find its session there: the
// first gateway's copy is stale, and the session record (which names
// the other gateway) decides, not that copy. Before, the first gateway
// resumed its stale copy as if nothing had happened, and the session
// then ended with TakenOver or Expired when the news of the move came.
func TestResumeBackOnAGatewayThatMissedTheMove(t *testing.T) {
	e := newEnvWith(t, 2, func(c *gatewayConfig) { c.SessionRefresh = time.Second })
	lobby := e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket("mover")
	first := e.gatewayByAddr(tk.Gateway)
	second := e.other(first)
	v := loginV2(t, tk)
	v.roundTrip(1)
	first.DropKickChannel() // it will not hear of the move
	v.resume(second.Addrs().Client)
	v.roundTrip(2)
	v.resume(first.Addrs().Client)
	v.roundTrip(3)
	waitFor(t, 10*time.Second, "the other gateway lets the session go", func() bool { return second.NumClients() == 0 })
	gw, err := e.rdb.HGet(context.Background(), login.KeysFor(gateway.DefaultConfig().Cluster, "mover").Sess, "gw").Result()
	if err != nil || gw != first.Node().GetID().String() {
		t.Fatalf("the session record names %q (%v), want the gateway the client is on", gw, err)
	}
	for i := uint32(4); i <= 10; i++ {
		v.roundTrip(i)
	}
	if n := lobby.lostCount("mover"); n != 0 {
		t.Fatalf("lose-account fired %d times for a session that resumed", n)
	}
	lobby.mu.Lock()
	seen := append([]uint32(nil), lobby.seen["mover"]...)
	lobby.mu.Unlock()
	for i, n := range seen {
		if n != uint32(i+1) {
			t.Fatalf("the lobby got %v, want 1…10 once each in order", seen)
		}
	}
}

// Two resumes of one session reach a gateway together (a client gave up
// on a connection and resumed again): the later attempt has the session
// and the earlier one gets TakenOver, whichever Redis saw first. Before,
// both were accepted when the earlier one was between Redis and the
// session table, and the earlier one then replaced the later one, whose
// client was told Duplicate (7): do not reconnect.
func TestConcurrentResumesTheLaterAttemptWins(t *testing.T) {
	v, other := cutOnOneOfTwo(t, newEnv(t, 2), "twin")

	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	other.SetAfterTakeover(func(attempt uint32) {
		if attempt == 1 {
			once.Do(func() { close(reached) })
			<-release
		}
	})
	defer other.SetAfterTakeover(nil)
	early := v.sendResume(other.Addrs().Client) // attempt 1
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the first resume never reached Redis")
	}
	late := v.sendResume(other.Addrs().Client) // attempt 2
	lateAnswer := make(chan wire.Resumed, 1)
	go func() {
		_ = late.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, p, err := late.r.ReadFrame()
		r, derr := wire.DecodeResumed(p)
		if err != nil || k != wire.KindClientResumed || derr != nil {
			r.Code = 0xffff
		}
		lateAnswer <- r
	}()
	// The later attempt may go through now if nothing orders the two:
	// give it the chance before the earlier one goes on.
	var answer wire.Resumed
	got := false
	select {
	case answer = <-lateAnswer:
		got = true
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if !got {
		answer = <-lateAnswer
	}
	if answer.Code != wire.CodeOK {
		t.Fatalf("the later attempt: Resumed code %d, want 0", answer.Code)
	}
	if code := early.closedWith(); code != wire.CodeTakenOver && code != 0 {
		t.Fatalf("the earlier attempt's connection closed with %d, want TakenOver", code)
	}
	v.c = late
	v.roundTrip(2)
	v.roundTrip(3)
}

// A connection kicked while it waits for the nodes after a resume from
// another gateway (a later resume took the session) closes once the kick
// is written, not when the wait ends: a client must not be left reading a
// connection it was told is over. Before, it stayed open for the whole
// wait (seconds) after the kick.
func TestKickDuringTheResumeWaitCloses(t *testing.T) {
	e := newEnvWith(t, 2, func(c *gatewayConfig) { c.PingMisses = 10 }) // waits for the nodes 20 s
	v, other := cutOnOneOfTwo(t, e, "waiter")
	other.IgnoreResumeStates(true) // the nodes' answers never come
	v.resume(other.Addrs().Client)
	waiting := v.c
	v.c = v.sendResume(other.Addrs().Client) // takes the session: the waiting one is kicked
	if code := waiting.closedWith(); code != wire.CodeTakenOver {
		t.Fatalf("the kicked connection closed with %d, want TakenOver", code)
	}
}

// A node whose link to a gateway dropped (a blip, a frozen process) links
// again while players are bound to it. Before, the gateway queued what
// waited for the node and the bound sessions' SessionOnline ahead of
// Accepted, the node took that for a refusal, and it never linked again:
// its players' messages were lost without a code.
func TestNodeLinksAgainWithBoundPlayers(t *testing.T) {
	e := newEnv(t, 1)
	lobby := e.startGame(lobbyType)
	e.ready()
	v := loginV2(t, e.loginTicket("bound"))
	v.roundTrip(1)
	gw := e.gws[0]
	gw.DropLinks()
	waitFor(t, 15*time.Second, "the lobby links again", func() bool { return gw.HasLink(lobby.GetID()) && lobby.GatewayLinks() == 1 })
	for i := uint32(2); i <= 5; i++ {
		v.roundTrip(i)
	}
	if n := lobby.lostCount("bound"); n != 0 {
		t.Fatalf("lose-account fired %d times for a live session", n)
	}
}

// While a node's link to the gateway is down (a blip, a frozen process),
// what it broadcasts never reaches the gateway, whose own history then
// has no hole to show. When the node links again, every client is told
// broadcasts may be missing: an attached one by a ClientShed (count 0:
// unknown), a detached one by BroadcastGap when it resumes, even on the
// same gateway. Before, both saw nothing: a silent gap.
func TestBroadcastsMissedDuringALinkOutageAreSignalled(t *testing.T) {
	e := newEnv(t, 1)
	lobby := e.startGame(lobbyType)
	e.ready()
	gw := e.gws[0]
	stay := loginV2(t, e.loginTicket("stay"))
	away := loginV2(t, e.loginTicket("away"))
	stay.roundTrip(1)
	away.roundTrip(1)
	away.c.conn.Close()
	waitFor(t, 10*time.Second, "the gateway sees the client gone", func() bool { return gw.NumDetached() == 1 })
	gw.DropLinks()
	waitFor(t, 15*time.Second, "the lobby links again", func() bool { return gw.HasLink(lobby.GetID()) && lobby.GatewayLinks() == 1 })
	for {
		k, p := stay.frame()
		if k != wire.KindClientShed {
			continue
		}
		sh, err := wire.DecodeShed(p)
		if err != nil || sh.Stream != 0 || sh.Count != 0 {
			t.Fatalf("ClientShed %+v %v, want stream 0, count 0 (unknown)", sh, err)
		}
		break
	}
	stay.roundTrip(2)
	c := away.sendResume(gw.Addrs().Client)
	away.c = c
	k, p := c.read()
	r, err := wire.DecodeResumed(p)
	if k != wire.KindClientResumed || err != nil || r.Code != wire.CodeOK {
		t.Fatalf("resume: %s %+v %v", k, r, err)
	}
	if r.Flags&wire.ResumedBroadcastGap == 0 {
		t.Fatal("resumed on the same gateway after a link outage without BroadcastGap")
	}
	away.roundTrip(2)
}
