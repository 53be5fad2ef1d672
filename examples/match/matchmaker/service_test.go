package matchmaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/examples/match/matchmaker"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/nodetest"
)

// The Service runs here on an in-memory cluster (package nodetest); the
// test plays the lobbies: nodes of the lobby type that call the match with
// tickets and record the matches they hear of, in the replies or in
// NodeMatched calls.

// fakeLobby is a lobby node that records the Matched notices it gets.
type fakeLobby struct {
	n      *nodetest.Node
	got    []game.Matched
	refuse bool // answer NodeMatched calls with an error (the player left)
}

func addLobby(t *testing.T, c *nodetest.Cluster) *fakeLobby {
	t.Helper()
	l := &fakeLobby{n: c.AddNode(game.LobbyType)}
	l.n.RegisterFuncOnRelayMsg(func(src common.NodeType, _ common.Member, _ string, cmd uint64, _ []byte) {
		t.Errorf("lobby got the one-way message %d from %s", cmd, src)
	})
	l.n.RegisterFuncOnCall(func(_ context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		if from.GetType() != game.MatchType || cmd != game.NodeMatched {
			t.Errorf("lobby got the call %d from %s", cmd, from.GetType())
			return nil, errors.New("unexpected")
		}
		if l.refuse {
			return nil, errors.New("player not here")
		}
		var m game.Matched
		if err := json.Unmarshal(data, &m); err != nil {
			t.Error(err)
		}
		l.got = append(l.got, m)
		return []byte("{}"), nil
	})
	l.n.EnableMessageRelay(true)
	if err := l.n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// call calls the match instance that owns mode with a ticket (or a
// dequeue) of account, as the example lobby does, and returns the reply.
func (l *fakeLobby) call(cmd uint64, account, mode string) ([]byte, error) {
	b, err := json.Marshal(game.Ticket{Player: game.Player{Account: account, Name: "N" + account}, Mode: mode, Lobby: l.n.GetID()})
	if err != nil {
		return nil, err
	}
	var reply common.Raw
	err = l.n.CallByKey(context.Background(), game.MatchType, mode, cmd, (*common.Raw)(&b), &reply)
	return reply, err
}

// send is call for a test that expects it to work: an enqueue's match, if
// any, is recorded as the real lobby pushes it to its player.
func (l *fakeLobby) send(t *testing.T, cmd uint64, account, mode string) {
	t.Helper()
	reply, err := l.call(cmd, account, mode)
	if err != nil {
		t.Fatal(err)
	}
	if cmd == game.NodeDequeue {
		return
	}
	var r game.Enqueued
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatalf("enqueue reply %q: %v", reply, err)
	}
	if r.Matched != nil {
		l.got = append(l.got, *r.Matched)
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

	// A lobby that does not take the notice (its player left meanwhile):
	// the other player is still told, and the failure counted.
	l3 := addLobby(t, c)
	c.Run()
	l3.send(t, game.NodeEnqueue, "e", "race")
	l3.refuse = true
	l2.send(t, game.NodeEnqueue, "f", "race")
	same(t, "the survivor", l2.take(), "f meets e in race")
	same(t, "the refusing lobby", l3.take())
	if got := notifyFailures(t, s); got != 1 {
		t.Errorf("notify failures %v, want 1", got)
	}
}

func notifyFailures(t *testing.T, s *matchmaker.Service) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "xserver_match_notify_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no notify failures counter")
	return 0
}

func TestServiceRefusesBadCalls(t *testing.T) {
	c := newCluster(t)
	s, mn := newMatch(t, c)
	l := addLobby(t, c)
	other := c.AddNode(game.MatchType + 1)
	other.EnableMessageRelay(true)
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Run()
	ctx := context.Background()
	bad := common.Raw(`{"account":`)
	var re *node.RemoteError
	if err := l.n.Call(ctx, mn.GetID(), game.NodeEnqueue, &bad, nil); !errors.As(err, &re) {
		t.Errorf("a bad ticket: %v, want the match's error", err)
	}
	if err := l.n.Call(ctx, mn.GetID(), 99, &bad, nil); !errors.As(err, &re) {
		t.Errorf("an unknown call: %v, want the match's error", err)
	}
	tk := common.Raw(fmt.Sprintf(`{"account":"x","mode":"duel","lobby":%q}`, other.GetID()))
	if err := other.Call(ctx, mn.GetID(), game.NodeEnqueue, &tk, nil); !errors.As(err, &re) {
		t.Errorf("a ticket from a node that is no lobby: %v, want the match's error", err)
	}
	// One-way messages are not the match's protocol: dropped.
	if err := l.n.SendByID(mn.GetID(), game.NodeEnqueue, &tk); err != nil {
		t.Fatal(err)
	}
	c.Run()
	if s.Len() != 0 {
		t.Errorf("queued %d", s.Len())
	}
	// A dequeue says whether it withdrew a ticket.
	l.send(t, game.NodeEnqueue, "y", "duel")
	for _, want := range []bool{true, false} {
		reply, err := l.call(game.NodeDequeue, "y", "duel")
		var d game.Dequeued
		if err == nil {
			err = json.Unmarshal(reply, &d)
		}
		if err != nil || d.Withdrawn != want {
			t.Errorf("dequeue: %+v, %v; want withdrawn %v", d, err, want)
		}
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
