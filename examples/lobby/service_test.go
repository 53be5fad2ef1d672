package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/examples/match/matchmaker"
	"github.com/xserver/xserver/nodetest"
)

// These tests run the lobby service, and the matchmaker, on an in-memory
// cluster (package nodetest): real service code, fake network, the
// test's clock.

// testClock runs the lobby's timers on the cluster's clock.
type testClock struct{ c *nodetest.Cluster }

func (k testClock) Now() time.Time                              { return k.c.Now() }
func (k testClock) AfterFunc(d time.Duration, f func()) stopper { return k.c.AfterFunc(d, f) }

// world is a test cluster with lobbies and one match instance.
type world struct {
	t       *testing.T
	c       *nodetest.Cluster
	lobbies []*lobbyService
	nodes   []*nodetest.Node // lobbies' nodes, same order
	match   *matchmaker.Service
}

const window = 30 * time.Second // resume window of the test cluster

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func newWorld(t *testing.T, lobbies int) *world {
	t.Helper()
	c, err := nodetest.New(nodetest.Config{Stateful: []common.NodeType{game.LobbyType}, ResumeWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, c: c}
	for range lobbies {
		w.addLobby()
	}
	mn := c.AddNode(game.MatchType)
	if w.match, err = matchmaker.New(mn, quiet()); err != nil {
		t.Fatal(err)
	}
	if err := mn.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Run()
	t.Cleanup(func() {
		if err := c.Err(); err != nil {
			t.Error(err)
		}
	})
	return w
}

func (w *world) addLobby() *lobbyService {
	w.t.Helper()
	n := w.c.AddNode(game.LobbyType)
	s, err := newService(n, testClock{w.c}, quiet())
	if err != nil {
		w.t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	s.ready()
	w.t.Cleanup(s.stop)
	w.lobbies, w.nodes = append(w.lobbies, s), append(w.nodes, n)
	return s
}

// player logs account in, bound to lobby i, and enters as name.
func (w *world) player(account string, i int, name string) *nodetest.Player {
	w.t.Helper()
	p := w.c.NewPlayer(account)
	if err := p.LoginAt(w.nodes[i].GetID()); err != nil {
		w.t.Fatal(err)
	}
	if r := ask[game.EnterReply](w, p, game.CmdEnter, game.Enter{Name: name}); !r.OK {
		w.t.Fatalf("enter %s: %+v", account, r)
	}
	return p
}

// ask sends req and returns the answer (the first message with the
// same cmd that came after it).
func ask[T any](w *world, p *nodetest.Player, cmd uint64, req any) T {
	w.t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		w.t.Fatal(err)
	}
	from := len(p.Received())
	if err := p.Send(cmd, b); err != nil {
		w.t.Fatal(err)
	}
	w.c.Run()
	got := pushes[T](w.t, p, cmd, from)
	if len(got) == 0 {
		w.t.Fatalf("%s: no answer to %d", p.Account(), cmd)
	}
	return got[0]
}

// pushes decodes the messages with cmd the player received from index
// from on.
func pushes[T any](t *testing.T, p *nodetest.Player, cmd uint64, from int) []T {
	t.Helper()
	var out []T
	for _, m := range p.Received()[from:] {
		if m.Cmd != cmd || m.Kind != nodetest.KindPush && m.Kind != nodetest.KindGroup {
			continue
		}
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("%s: cmd %d: %v", p.Account(), cmd, err)
		}
		out = append(out, v)
	}
	return out
}

func TestUnitEnter(t *testing.T) {
	w := newWorld(t, 2)
	p := w.c.NewPlayer("p1")
	if err := p.LoginAt(w.nodes[0].GetID()); err != nil {
		t.Fatal(err)
	}
	if a := ask[game.Ack](w, p, game.CmdOnline, struct{}{}); a.OK || a.Error != errEnterFirst {
		t.Errorf("online before enter: %+v", a)
	}
	r := ask[game.EnterReply](w, p, game.CmdEnter, game.Enter{Name: "One"})
	if !r.OK || r.Account != "p1" || !reflect.DeepEqual(r.Online, []game.Player{{Account: "p1", Name: "One"}}) {
		t.Errorf("enter: %+v", r)
	}
	if r := ask[game.EnterReply](w, p, game.CmdEnter, game.Enter{Name: " "}); r.OK || !strings.HasPrefix(r.Error, errBadName) {
		t.Errorf("blank name: %+v", r)
	}

	// Players on the other lobby appear in the list and as pushes.
	m := len(p.Received())
	p2 := w.player("p2", 1, "Two")
	if got := pushes[game.Presence](t, p, game.PushPresence, m); len(got) != 1 || got[0].Account != "p2" || !got[0].Online {
		t.Errorf("p1 saw %+v", got)
	}
	want := []game.Player{{Account: "p1", Name: "One"}, {Account: "p2", Name: "Two"}}
	for _, q := range []*nodetest.Player{p, p2} {
		if l := ask[game.OnlineList](w, q, game.CmdOnline, struct{}{}); !reflect.DeepEqual(l.Online, want) {
			t.Errorf("%s lists %+v", q.Account(), l.Online)
		}
	}

	// A lobby started later asks who is online and knows them at once.
	w.addLobby()
	w.c.Run()
	p3 := w.c.NewPlayer("p3")
	if err := p3.LoginAt(w.nodes[2].GetID()); err != nil {
		t.Fatal(err)
	}
	r3 := ask[game.EnterReply](w, p3, game.CmdEnter, game.Enter{Name: "Three"})
	if len(r3.Online) != 3 {
		t.Errorf("a new lobby's player sees %+v", r3.Online)
	}
}

func TestUnitWorldChat(t *testing.T) {
	w := newWorld(t, 2)
	all := []*nodetest.Player{w.player("a1", 0, "A1"), w.player("a2", 0, "A2"), w.player("b1", 1, "B1"), w.player("b2", 1, "B2")}
	lurker := w.c.NewPlayer("lurker") // logged in, never entered: not in the world group
	if err := lurker.Login(); err != nil {
		t.Fatal(err)
	}
	w.c.Advance(3 * time.Second) // the line's time stamp is the cluster's clock
	if got := w.c.Members(game.WorldGroup); strings.Join(got, ",") != "a1,a2,b1,b2" {
		t.Fatalf("world group %v, want the players who entered, on both lobbies", got)
	}
	marks := make([]int, len(all))
	for i, p := range all {
		marks[i] = len(p.Received())
	}
	if a := ask[game.Ack](w, all[0], game.CmdWorld, game.WorldChat{Text: "hello everyone"}); !a.OK {
		t.Fatalf("world: %+v", a)
	}
	want := game.ChatLine{From: "a1", Name: "A1", Text: "hello everyone", TS: w.c.Now().UnixMilli()}
	for i, p := range all {
		if got := pushes[game.ChatLine](t, p, game.PushWorld, marks[i]); len(got) != 1 || got[0] != want {
			t.Errorf("%s got %+v, want one %+v", p.Account(), got, want)
		}
	}
	if got := pushes[game.ChatLine](t, lurker, game.PushWorld, 0); len(got) != 0 {
		t.Errorf("a player who never entered got %+v", got)
	}
	for i, p := range all { // one group broadcast, not one message per player
		for _, m := range p.Received()[marks[i]:] {
			if m.Cmd == game.PushWorld && (m.Kind != nodetest.KindGroup || m.Group != game.WorldGroup) {
				t.Errorf("%s: the world line came as %s to %q, want a broadcast to the world group", p.Account(), m.Kind, m.Group)
			}
		}
	}
	if a := ask[game.Ack](w, all[2], game.CmdWorld, game.WorldChat{Text: strings.Repeat("x", game.MaxText+1)}); a.OK {
		t.Error("a line over the limit accepted")
	}
	if got := metric(t, w.lobbies[0], "xserver_lobby_chat_lines_total", "world"); got != 1 {
		t.Errorf("world lines %v", got)
	}
}

// metric is the value of the lobby's metric name (with kind, when not
// empty, as its kind label).
func metric(t *testing.T, s *lobbyService, name, kind string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if kind != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != kind) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s %s", name, kind)
	return 0
}

func TestUnitPrivateChat(t *testing.T) {
	w := newWorld(t, 2)
	a := w.player("a", 0, "A")
	b := w.player("b", 1, "B")
	c := w.player("c", 1, "C")
	mb, mc := len(b.Received()), len(c.Received())
	if ack := ask[game.Ack](w, a, game.CmdPrivate, game.PrivateChat{To: "b", Text: "psst"}); !ack.OK {
		t.Fatalf("private: %+v", ack)
	}
	if got := pushes[game.ChatLine](t, b, game.PushPrivate, mb); len(got) != 1 || got[0].From != "a" || got[0].Text != "psst" {
		t.Errorf("b got %+v", got)
	}
	if got := pushes[game.ChatLine](t, c, game.PushPrivate, mc); len(got) != 0 {
		t.Errorf("c got %+v", got)
	}
	if ack := ask[game.Ack](w, a, game.CmdPrivate, game.PrivateChat{To: "nobody", Text: "hello?"}); ack.OK || ack.Error != errOffline {
		t.Errorf("to nobody: %+v", ack)
	}

	// A line to a player whose session just ended: the lobby believed it
	// online, the node reports the line undeliverable.
	b.Logout()
	if err := a.Send(game.CmdPrivate, []byte(`{"to":"b","text":"too late"}`)); err != nil {
		t.Fatal(err)
	}
	w.c.Run()
	if got := metric(t, w.lobbies[0], "xserver_lobby_undeliverable_total", ""); got != 1 {
		t.Errorf("undeliverable %v, want 1", got)
	}
	if ack := ask[game.Ack](w, a, game.CmdPrivate, game.PrivateChat{To: "b", Text: "again"}); ack.Error != errOffline {
		t.Errorf("after b left: %+v", ack)
	}
}

func TestUnitAwayAndBack(t *testing.T) {
	w := newWorld(t, 2)
	a := w.player("a", 0, "A")
	b := w.player("b", 1, "B")
	other := w.player("o", 0, "O")
	ma, mo := len(a.Received()), len(other.Received())

	// A blip: back within awayAfter, nobody sees anything.
	b.Disconnect()
	w.c.Advance(awayAfter / 2)
	if err := b.Resume(); err != nil {
		t.Fatal(err)
	}
	w.c.Advance(time.Minute)
	if got := pushes[game.Presence](t, a, game.PushPresence, ma); len(got) != 0 {
		t.Errorf("a blip shown: %+v", got)
	}

	// Away for longer: reconnecting, then back.
	b.Disconnect()
	w.c.Advance(awayAfter)
	for _, p := range []*nodetest.Player{a, other} {
		from := ma
		if p == other {
			from = mo
		}
		got := pushes[game.Presence](t, p, game.PushPresence, from)
		if len(got) != 1 || got[0].Account != "b" || !got[0].Away || !got[0].Online {
			t.Errorf("%s saw %+v", p.Account(), got)
		}
	}
	if l := ask[game.OnlineList](w, a, game.CmdOnline, struct{}{}); !reflect.DeepEqual(l.Online[1], game.Player{Account: "b", Name: "B", Away: true}) {
		t.Errorf("list while away: %+v", l.Online)
	}
	// A line said while b is away reaches it when it comes back.
	if ack := ask[game.Ack](w, a, game.CmdWorld, game.WorldChat{Text: "where is b?"}); !ack.OK {
		t.Fatal(ack)
	}
	mb := len(b.Received())
	if err := b.Resume(); err != nil {
		t.Fatal(err)
	}
	w.c.Run()
	if got := pushes[game.ChatLine](t, b, game.PushWorld, mb); len(got) != 1 || got[0].Text != "where is b?" {
		t.Errorf("b got %+v after resuming", got)
	}
	got := pushes[game.Presence](t, a, game.PushPresence, ma)
	if len(got) != 2 || got[1].Away || !got[1].Online {
		t.Errorf("back: %+v", got)
	}
}

func TestUnitLoseAccount(t *testing.T) {
	w := newWorld(t, 2)
	a := w.player("a", 0, "A")
	b := w.player("b", 1, "B")
	if ack := ask[game.Ack](w, b, game.CmdQueue, game.Queue{Mode: "solo"}); !ack.OK {
		t.Fatal(ack)
	}
	if w.match.Len() != 1 {
		t.Fatalf("queued %d", w.match.Len())
	}
	m := len(a.Received())
	b.Disconnect()
	w.c.Advance(window) // the session waits, then ends
	got := pushes[game.Presence](t, a, game.PushPresence, m)
	if len(got) != 2 || !got[0].Away || got[1].Online || got[1].Account != "b" {
		t.Errorf("a saw %+v", got)
	}
	if w.match.Len() != 0 {
		t.Error("ticket not withdrawn")
	}
	if got := metric(t, w.lobbies[1], "lobby_lose_account_total", ""); got != 1 {
		t.Errorf("lost %v", got)
	}
	if w.lobbies[1].players() != 0 {
		t.Error("b still a player")
	}
	if err := b.Resume(); err == nil {
		t.Error("resumed after the window")
	}

	// Kicked by its lobby: the same, once.
	c := w.player("c", 0, "C")
	if err := w.nodes[0].Kick("c", "bye"); err != nil {
		t.Fatal(err)
	}
	w.c.Run()
	if k, ok := c.Kicked(); !ok || k.Reason != "bye" {
		t.Errorf("kick %+v", k)
	}
	if got := metric(t, w.lobbies[0], "lobby_lose_account_total", ""); got != 1 {
		t.Errorf("lost %v", got)
	}
}

func TestUnitMatch(t *testing.T) {
	w := newWorld(t, 2)
	a := w.player("a", 0, "A")
	b := w.player("b", 1, "B")
	ma, mb := len(a.Received()), len(b.Received())
	if ack := ask[game.Ack](w, a, game.CmdQueue, game.Queue{Mode: "duel"}); !ack.OK {
		t.Fatalf("a: %+v", ack)
	}
	if ack := ask[game.Ack](w, a, game.CmdQueue, game.Queue{Mode: "other"}); ack.OK {
		t.Error("queued for two modes")
	}
	if w.match.Len() != 1 {
		t.Errorf("%d queued, want 1", w.match.Len())
	}
	if ack := ask[game.Ack](w, b, game.CmdQueue, game.Queue{Mode: "duel"}); !ack.OK {
		t.Fatalf("b: %+v", ack)
	}
	ga := pushes[game.Matched](t, a, game.PushMatched, ma)
	gb := pushes[game.Matched](t, b, game.PushMatched, mb)
	if len(ga) != 1 || len(gb) != 1 {
		t.Fatalf("matched: %+v %+v", ga, gb)
	}
	if ga[0].Opponent != (game.Player{Account: "b", Name: "B"}) || gb[0].Opponent.Account != "a" || ga[0].MatchID != gb[0].MatchID || ga[0].Mode != "duel" {
		t.Errorf("a told %+v, b told %+v", ga[0], gb[0])
	}
	if w.match.Len() != 0 {
		t.Errorf("%d still queued", w.match.Len())
	}
	// Matched, a may queue for another mode.
	if ack := ask[game.Ack](w, a, game.CmdQueue, game.Queue{Mode: "other"}); !ack.OK || w.match.Len() != 1 {
		t.Errorf("queue after a match: %+v", ack)
	}

	// No match instance: the player hears it.
	w2 := newWorld(t, 1)
	w2.c.KillNode(w2.nodes[0].GetNodeOne(game.MatchType).GetID())
	w2.c.Run()
	p := w2.player("p", 0, "P")
	if ack := ask[game.Ack](w2, p, game.CmdQueue, game.Queue{Mode: "duel"}); ack.Error != errNoMatchmaker {
		t.Errorf("without a match: %+v", ack)
	}
}

func TestUnitLobbyLeaves(t *testing.T) {
	w := newWorld(t, 2)
	a := w.player("a", 0, "A")
	b := w.player("b", 1, "B")
	if ack := ask[game.Ack](w, b, game.CmdQueue, game.Queue{Mode: "brawl"}); !ack.OK {
		t.Fatal(ack)
	}
	m := len(a.Received())
	w.c.KillNode(w.nodes[1].GetID())
	w.c.Run()
	if got := pushes[game.Presence](t, a, game.PushPresence, m); len(got) != 1 || got[0].Account != "b" || got[0].Online {
		t.Errorf("a saw %+v", got)
	}
	if w.match.Len() != 0 {
		t.Error("the lobby's tickets are still queued")
	}
	// b's next message goes to the lobby left, which does not know it.
	if a := ask[game.Ack](w, b, game.CmdOnline, struct{}{}); a.Error != errEnterFirst {
		t.Errorf("rebound: %+v", a)
	}
	if b.Bound(game.LobbyType) != w.nodes[0].GetID() {
		t.Error("not rebound")
	}
	if r := ask[game.EnterReply](w, b, game.CmdEnter, game.Enter{Name: "B"}); !r.OK || len(r.Online) != 2 {
		t.Errorf("enter again: %+v", r)
	}
}

// The lobby publishes its player count, and logins go to the least
// crowded lobby.
func TestUnitLoad(t *testing.T) {
	w := newWorld(t, 2)
	for i, acc := range []string{"p1", "p2", "p3", "p4"} {
		p := w.c.NewPlayer(acc)
		if err := p.Login(); err != nil {
			t.Fatal(err)
		}
		ask[game.EnterReply](w, p, game.CmdEnter, game.Enter{Name: acc})
		w.c.Advance(loadEvery)
		for _, n := range w.nodes {
			if n.GetOverload(0) > uint32(i/2+1) {
				t.Fatalf("after %d logins: loads %d and %d", i+1, w.nodes[0].GetOverload(0), w.nodes[1].GetOverload(0))
			}
		}
	}
	if w.nodes[0].GetOverload(0) != 2 || w.nodes[1].GetOverload(0) != 2 {
		t.Errorf("loads %d and %d", w.nodes[0].GetOverload(0), w.nodes[1].GetOverload(0))
	}
}

// ready keeps asking who is online until a gateway takes the question.
func TestUnitHelloRetry(t *testing.T) {
	w := newWorld(t, 1)
	w.player("a", 0, "A")
	n := w.c.AddNode(game.LobbyType)
	s, err := newService(n, testClock{w.c}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	s.ready() // not started: no gateway link yet
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	online := func() []game.Player {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.st.Online()
	}
	w.c.Run()
	if l := online(); len(l) != 0 {
		t.Fatalf("knows %+v before asking", l)
	}
	w.c.Advance(linkPoll)
	if l := online(); len(l) != 1 || l[0].Account != "a" {
		t.Errorf("after asking: %+v", l)
	}
	if _, err := newService(w.c.AddNode(game.MatchType), testClock{w.c}, quiet()); err == nil {
		t.Error("a lobby on a match node")
	}
}

// A player shown away that logs in again from another device (a new
// session: no resume callback) and enters again is back for everyone,
// on its own lobby too.
func TestUnitAwayThenNewLogin(t *testing.T) {
	w := newWorld(t, 2)
	b := w.player("b", 0, "B")
	same := w.player("s", 0, "S")
	other := w.player("o", 1, "O")
	b.Disconnect()
	w.c.Advance(awayAfter)
	ms, mo := len(same.Received()), len(other.Received())
	w.player("b", 0, "B") // the second device: LoginAt lobby 0 again, then enter
	for _, p := range []*nodetest.Player{same, other} {
		from := ms
		if p == other {
			from = mo
		}
		got := pushes[game.Presence](t, p, game.PushPresence, from)
		if len(got) != 1 || got[0].Away || !got[0].Online {
			t.Errorf("%s saw %+v", p.Account(), got)
		}
		l := ask[game.OnlineList](w, p, game.CmdOnline, struct{}{})
		for _, x := range l.Online {
			if x.Away {
				t.Errorf("%s still lists %+v", p.Account(), x)
			}
		}
	}
}

// A player that comes back on a new session before it was shown away is
// never shown away.
func TestUnitNewLoginBeforeAway(t *testing.T) {
	w := newWorld(t, 1)
	b := w.player("b", 0, "B")
	s := w.player("s", 0, "S")
	b.Disconnect()
	w.c.Advance(awayAfter / 2)
	m := len(s.Received())
	w.player("b", 0, "B")
	w.c.Advance(time.Minute)
	for _, pr := range pushes[game.Presence](t, s, game.PushPresence, m) {
		if pr.Away {
			t.Errorf("s saw %+v", pr)
		}
	}
}

// The lobby reaches the match by calls: the second player of a pair hears
// of the match in the reply to its ticket (after its ack), the first one
// through the match's NodeMatched call to its lobby.
func TestUnitMatchByCalls(t *testing.T) {
	w := newWorld(t, 2)
	a := w.player("a", 0, "A")
	b := w.player("b", 1, "B")
	if ack := ask[game.Ack](w, a, game.CmdQueue, game.Queue{Mode: "duel"}); !ack.OK {
		t.Fatalf("a: %+v", ack)
	}
	from := len(b.Received())
	if ack := ask[game.Ack](w, b, game.CmdQueue, game.Queue{Mode: "duel"}); !ack.OK {
		t.Fatalf("b: %+v", ack)
	}
	var order []uint64
	for _, m := range b.Received()[from:] {
		order = append(order, m.Cmd)
	}
	if !reflect.DeepEqual(order, []uint64{game.CmdQueue, game.PushMatched}) {
		t.Errorf("b received cmds %v, want the ack then the match", order)
	}
	if got := pushes[game.Matched](t, a, game.PushMatched, 0); len(got) != 1 || got[0].Opponent.Account != "b" {
		t.Errorf("a told %+v", got)
	}

	// Only a match instance may tell the lobby of a match.
	intruder := w.c.AddNode(game.LobbyType + 7)
	intruder.EnableMessageRelay(true)
	if err := intruder.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.c.Run()
	m := common.Raw(`{"match_id":"m-x","account":"a","mode":"duel","opponent":{"account":"z","name":"Z"}}`)
	if err := intruder.Call(context.Background(), w.nodes[0].GetID(), game.NodeMatched, &m, nil); err == nil {
		t.Error("the lobby took a match notice from a node that is no match")
	}
	if got := pushes[game.Matched](t, a, game.PushMatched, 0); len(got) != 1 {
		t.Errorf("a told %d matches", len(got))
	}
}

// A match instance that answers the ticket's call with an error: the
// player hears matchmaking is unavailable, not "ok".
func TestUnitMatchRefuses(t *testing.T) {
	w := newWorld(t, 1)
	w.c.KillNode(w.nodes[0].GetNodeOne(game.MatchType).GetID())
	broken := w.c.AddNode(game.MatchType)
	broken.RegisterFuncOnCall(func(context.Context, common.Member, uint64, []byte) ([]byte, error) {
		return nil, errors.New("queue store down")
	})
	broken.EnableMessageRelay(true)
	if err := broken.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.c.Run()
	p := w.player("p", 0, "P")
	if ack := ask[game.Ack](w, p, game.CmdQueue, game.Queue{Mode: "duel"}); ack.OK || ack.Error != errNoMatchmaker {
		t.Errorf("with a failing match: %+v", ack)
	}
}
