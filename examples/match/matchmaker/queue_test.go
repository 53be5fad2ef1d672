package matchmaker

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

var (
	l1 = common.NodeID{1}
	l2 = common.NodeID{2}
	t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
)

func tk(account, mode string, lobby common.NodeID) game.Ticket {
	return game.Ticket{Player: game.Player{Account: account, Name: "N" + account}, Mode: mode, Lobby: lobby}
}

// step is one Queue call and what it should return.
type step struct {
	enqueue game.Ticket // when Account is set
	dequeue game.Ticket // when Account is set
	left    common.NodeID
	joined  common.NodeID

	match   *Match
	err     error
	removed bool
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		waiting map[string][]string
	}{
		{
			name: "two players pair, first come first served",
			steps: []step{
				{enqueue: tk("a", "duel", l1)},
				{enqueue: tk("b", "duel", l2), match: &Match{ID: "m-x-1", Mode: "duel", A: tk("a", "duel", l1), B: tk("b", "duel", l2)}},
				{enqueue: tk("c", "duel", l1)},
			},
			waiting: map[string][]string{"duel": {"c"}},
		},
		{
			name: "modes do not mix",
			steps: []step{
				{enqueue: tk("a", "duel", l1)},
				{enqueue: tk("b", "brawl", l1)},
				{enqueue: tk("c", "brawl", l2), match: &Match{ID: "m-x-1", Mode: "brawl", A: tk("b", "brawl", l1), B: tk("c", "brawl", l2)}},
				{enqueue: tk("d", "duel", l2), match: &Match{ID: "m-x-2", Mode: "duel", A: tk("a", "duel", l1), B: tk("d", "duel", l2)}},
			},
			waiting: map[string][]string{"duel": {}, "brawl": {}},
		},
		{
			name: "a duplicate ticket is ignored, not paired with itself",
			steps: []step{
				{enqueue: tk("a", "duel", l1)},
				{enqueue: tk("a", "duel", l1), err: ErrQueued},
				{enqueue: tk("a", "brawl", l1), err: ErrQueued},
				{enqueue: tk("b", "duel", l1), match: &Match{ID: "m-x-1", Mode: "duel", A: tk("a", "duel", l1), B: tk("b", "duel", l1)}},
				{enqueue: tk("a", "duel", l1)}, // matched: may queue again
			},
			waiting: map[string][]string{"duel": {"a"}, "brawl": {}},
		},
		{
			name: "bad tickets",
			steps: []step{
				{enqueue: tk("", "duel", l1), err: ErrBadTicket},
				{enqueue: tk("a", "", l1), err: ErrBadTicket},
				{enqueue: tk("a", "duel", common.NodeID{}), err: ErrBadTicket},
			},
			waiting: map[string][]string{"duel": {}},
		},
		{
			name: "dequeue",
			steps: []step{
				{enqueue: tk("a", "duel", l1)},
				{dequeue: tk("a", "brawl", l1)},               // other mode: no
				{dequeue: tk("a", "duel", l2)},                // other lobby (stale): no
				{dequeue: tk("a", "duel", l1), removed: true}, // yes
				{dequeue: tk("a", "duel", l1)},                // gone already
				{enqueue: tk("b", "duel", l2)},                // waits alone
			},
			waiting: map[string][]string{"duel": {"b"}},
		},
		{
			name: "dequeue from the middle keeps the order",
			steps: []step{
				{enqueue: tk("a", "duel", l1)},
				{dequeue: tk("a", "duel", l1), removed: true},
				{enqueue: tk("b", "duel", l1)},
				{enqueue: tk("c", "duel", l2), match: &Match{ID: "m-x-1", Mode: "duel", A: tk("b", "duel", l1), B: tk("c", "duel", l2)}},
			},
			waiting: map[string][]string{"duel": {}},
		},
		{
			name: "a lobby that leaves takes its tickets; late tickets refused until it rejoins",
			steps: []step{
				{enqueue: tk("a", "duel", l1)},
				{enqueue: tk("b", "brawl", l2)},
				{left: l1},
				{enqueue: tk("c", "duel", l1), err: ErrLobbyGone},
				{enqueue: tk("d", "duel", l2)},
				{joined: l1},
				{enqueue: tk("a", "duel", l1), match: &Match{ID: "m-x-1", Mode: "duel", A: tk("d", "duel", l2), B: tk("a", "duel", l1)}},
			},
			waiting: map[string][]string{"duel": {}, "brawl": {"b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue("x")
			for i, s := range tt.steps {
				switch {
				case s.enqueue.Account != "" || s.err != nil:
					m, err := q.Enqueue(s.enqueue)
					if !errors.Is(err, s.err) || !reflect.DeepEqual(m, s.match) {
						t.Fatalf("step %d: Enqueue(%+v) = %+v, %v; want %+v, %v", i, s.enqueue, m, err, s.match, s.err)
					}
				case s.dequeue.Account != "":
					if got := q.Dequeue(s.dequeue); got != s.removed {
						t.Fatalf("step %d: Dequeue(%+v) = %t", i, s.dequeue, got)
					}
				case s.left != common.NodeID{}:
					q.LobbyLeft(s.left, t0)
				case s.joined != common.NodeID{}:
					q.LobbyJoined(s.joined)
				}
			}
			n := 0
			for mode, want := range tt.waiting {
				n += len(want)
				if got := q.Waiting(mode); !reflect.DeepEqual(got, want) {
					t.Errorf("waiting in %s: %q, want %q", mode, got, want)
				}
			}
			if q.Len() != n {
				t.Errorf("Len %d, want %d", q.Len(), n)
			}
		})
	}
}

func TestNotices(t *testing.T) {
	m := Match{ID: "m-x-7", Mode: "duel", A: tk("a", "duel", l1), B: tk("b", "duel", l2)}
	want := [2]Notice{
		{Lobby: l1, Matched: game.Matched{MatchID: "m-x-7", Account: "a", Mode: "duel", Opponent: game.Player{Account: "b", Name: "Nb"}}},
		{Lobby: l2, Matched: game.Matched{MatchID: "m-x-7", Account: "b", Mode: "duel", Opponent: game.Player{Account: "a", Name: "Na"}}},
	}
	if got := m.Notices(); got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestLobbyLeft(t *testing.T) {
	q := NewQueue("x")
	for _, tc := range []game.Ticket{tk("b", "duel", l1), tk("a", "brawl", l1), tk("c", "solo", l2)} {
		if _, err := q.Enqueue(tc); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.LobbyLeft(l1, t0); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("dropped %q", got)
	}
	if q.Len() != 1 || len(q.waiting) != 1 {
		t.Errorf("left: len %d, modes %v", q.Len(), q.waiting)
	}
	// Remembered for goneTTL, then forgotten.
	q.LobbyLeft(l2, t0.Add(goneTTL+time.Second))
	if _, ok := q.gone[l1]; ok || len(q.gone) != 1 {
		t.Errorf("gone %v, want only l2", q.gone)
	}
}
