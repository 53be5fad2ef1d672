package matchmaker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/examples/match/matchmaker"
	"github.com/xserver/xserver/nodetest"
)

// The Service runs here on an in-memory cluster (package nodetest); the
// test plays the lobbies: nodes of the lobby type that send tickets and
// record the notices they get.

// fakeLobby is a lobby node that records the Matched notices it gets.
type fakeLobby struct {
	n   *nodetest.Node
	got []game.Matched
}

func addLobby(t *testing.T, c *nodetest.Cluster) *fakeLobby {
	t.Helper()
	l := &fakeLobby{n: c.AddNode(game.LobbyType)}
	l.n.RegisterFuncOnRelayMsg(func(src common.NodeType, _ common.Member, _ string, cmd uint64, data []byte) {
		if src != game.MatchType || cmd != game.NodeMatched {
			t.Errorf("lobby got %d from %s", cmd, src)
			return
		}
		var m game.Matched
		if err := json.Unmarshal(data, &m); err != nil {
			t.Error(err)
		}
		l.got = append(l.got, m)
	})
	l.n.EnableMessageRelay(true)
	if err := l.n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// send sends a ticket (or a dequeue) of account to the match instance
// that owns mode, as the example lobby does.
func (l *fakeLobby) send(t *testing.T, cmd uint64, account, mode string) {
	t.Helper()
	b, err := json.Marshal(game.Ticket{Player: game.Player{Account: account, Name: "N" + account}, Mode: mode, Lobby: l.n.GetID()})
	if err != nil {
		t.Fatal(err)
	}
	m := l.n.GetNodeByKey(game.MatchType, mode)
	if m == nil {
		t.Fatal("no match instance")
	}
	if err := m.SendMsg(cmd, (*common.Raw)(&b)); err != nil {
		t.Fatal(err)
	}
}

func (l *fakeLobby) take() []string {
	var out []string
	for _, m := range l.got {
		out = append(out, fmt.Sprintf("%s meets %s in %s", m.Account, m.Opponent.Account, m.Mode))
	}
	l.got = nil
	return out
}

func newMatch(t *testing.T, c *nodetest.Cluster) (*matchmaker.Service, *nodetest.Node) {
	t.Helper()
	n := c.AddNode(game.MatchType)
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := matchmaker.New(n, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, n
}

func newCluster(t *testing.T) *nodetest.Cluster {
	t.Helper()
	c, err := nodetest.New(nodetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Err(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func same(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestServicePairs(t *testing.T) {
	c := newCluster(t)
	s, _ := newMatch(t, c)
	l1, l2 := addLobby(t, c), addLobby(t, c)
	c.Run()

	l1.send(t, game.NodeEnqueue, "a", "duel")
	l1.send(t, game.NodeEnqueue, "a", "duel") // queueing twice is a no-op
	c.Run()
	if s.Len() != 1 {
		t.Fatalf("queued %d", s.Len())
	}
	l2.send(t, game.NodeEnqueue, "b", "duel")
	c.Run()
	same(t, "lobby 1", l1.take(), "a meets b in duel")
	same(t, "lobby 2", l2.take(), "b meets a in duel")
	if s.Len() != 0 {
		t.Errorf("queued %d", s.Len())
	}

	// A withdrawn ticket is not matched; a dequeue from another lobby
	// withdraws nothing.
	l1.send(t, game.NodeEnqueue, "c", "solo")
	l2.send(t, game.NodeDequeue, "c", "solo")
	l1.send(t, game.NodeDequeue, "c", "solo")
	l2.send(t, game.NodeEnqueue, "d", "solo")
	c.Run()
	same(t, "withdrawn", append(l1.take(), l2.take()...))
	if s.Len() != 1 {
		t.Errorf("queued %d, want d only", s.Len())
	}
}

func TestServiceLobbyLeaves(t *testing.T) {
	c := newCluster(t)
	s, _ := newMatch(t, c)
	l1, l2 := addLobby(t, c), addLobby(t, c)
	c.Run()
	l1.send(t, game.NodeEnqueue, "a", "duel")
	l1.send(t, game.NodeEnqueue, "b", "brawl")
	c.Run()
	c.KillNode(l1.n.GetID())
	l2.send(t, game.NodeEnqueue, "c", "duel")
	c.Run()
	same(t, "no ghost", l2.take())
	if s.Len() != 1 {
		t.Errorf("queued %d, want c only", s.Len())
	}

	// A ticket whose lobby dies before the match: the notice cannot be
	// delivered, the other player is still told.
	l3 := addLobby(t, c)
	c.Run()
	l3.send(t, game.NodeEnqueue, "e", "race")
	c.Run()
	l2.send(t, game.NodeEnqueue, "f", "race")
	c.KillNode(l3.n.GetID())
	c.Run()
	same(t, "the survivor", l2.take(), "f meets e in race")
}

func TestServiceDropsBadMessages(t *testing.T) {
	c := newCluster(t)
	s, mn := newMatch(t, c)
	l := addLobby(t, c)
	other := c.AddNode(game.MatchType + 1)
	other.EnableMessageRelay(true)
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Run()
	bad := common.Raw(`{"account":`)
	if err := l.n.SendByID(mn.GetID(), game.NodeEnqueue, &bad); err != nil {
		t.Fatal(err)
	}
	if err := l.n.SendByID(mn.GetID(), 99, &bad); err != nil {
		t.Fatal(err)
	}
	tk := common.Raw(fmt.Sprintf(`{"account":"x","mode":"duel","lobby":%q}`, other.GetID()))
	if err := other.SendByID(mn.GetID(), game.NodeEnqueue, &tk); err != nil {
		t.Fatal(err)
	}
	c.Run()
	if s.Len() != 0 {
		t.Errorf("queued %d", s.Len())
	}
	if _, err := matchmaker.New(c.AddNode(game.LobbyType), logrus.New()); err == nil {
		t.Error("a matchmaker on a lobby node")
	}
}

// With several match instances, lobbies choose the instance by mode
// (GetNodeByKey), so every ticket of a mode meets at one instance.
func TestServiceInstancesByMode(t *testing.T) {
	c := newCluster(t)
	var svcs []*matchmaker.Service
	for range 3 {
		s, _ := newMatch(t, c)
		svcs = append(svcs, s)
	}
	l1, l2 := addLobby(t, c), addLobby(t, c)
	c.Run()
	modes := []string{"duel", "solo", "brawl", "race", "ctf", "koth"}
	for i, mode := range modes {
		l1.send(t, game.NodeEnqueue, fmt.Sprint("a", i), mode)
		l2.send(t, game.NodeEnqueue, fmt.Sprint("b", i), mode)
	}
	c.Run()
	got := append(l1.take(), l2.take()...)
	sort.Strings(got)
	if len(got) != 2*len(modes) {
		t.Errorf("%d notices, want %d: %q", len(got), 2*len(modes), got)
	}
	for _, s := range svcs {
		if s.Len() != 0 {
			t.Errorf("an instance keeps %d tickets", s.Len())
		}
	}
	for _, mode := range modes {
		if l1.n.GetNodeByKey(game.MatchType, mode).GetID() != l2.n.GetNodeByKey(game.MatchType, mode).GetID() {
			t.Errorf("lobbies disagree on %s", mode)
		}
	}
	ids := map[common.NodeID]bool{}
	for _, mode := range modes {
		ids[l1.n.GetNodeByKey(game.MatchType, mode).GetID()] = true
	}
	if len(ids) < 2 {
		t.Errorf("modes on %d instance(s)", len(ids))
	}
}
