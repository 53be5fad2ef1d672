package matchmaker

import (
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/login"
)

// Errors of Enqueue; the ticket is dropped.
var (
	ErrBadTicket = errors.New("matchmaker: bad ticket")
	ErrQueued    = errors.New("matchmaker: account already queued")
	ErrLobbyGone = errors.New("matchmaker: ticket from a lobby that left")
)

// goneTTL is how long a lobby that left is remembered, so a ticket it sent
// just before leaving is not queued afterwards.
const goneTTL = 10 * time.Minute

// Match is a pair of players of one mode; A waited longer.
type Match struct {
	ID   string
	Mode string
	A, B game.Ticket
}

// Notice is one lobby's message about a match: Matched for one of its
// players.
type Notice struct {
	Lobby   common.NodeID
	Matched game.Matched
}

// Notices returns what each player's lobby is told: A's first.
func (m Match) Notices() [2]Notice {
	tell := func(t, other game.Ticket) Notice {
		return Notice{Lobby: t.Lobby, Matched: game.Matched{MatchID: m.ID, Account: t.Account, Mode: m.Mode, Opponent: other.Player}}
	}
	return [2]Notice{tell(m.A, m.B), tell(m.B, m.A)}
}

// Queue pairs waiting players per mode, first come first served. It does
// no IO, reads no clock (callers pass now) and is not safe for concurrent
// use.
type Queue struct {
	prefix  string
	seq     uint64
	waiting map[string][]game.Ticket    // mode → tickets, oldest first
	queued  map[string]string           // account → the mode it waits in
	gone    map[common.NodeID]time.Time // lobbies that left, and when
}

// NewQueue returns an empty queue whose match IDs are "m-<prefix>-<n>";
// the prefix tells instances apart (the service uses its node ID's first
// eight characters).
func NewQueue(prefix string) *Queue {
	return &Queue{
		prefix:  prefix,
		waiting: make(map[string][]game.Ticket),
		queued:  make(map[string]string),
		gone:    make(map[common.NodeID]time.Time),
	}
}

// Len is the number of waiting tickets.
func (q *Queue) Len() int { return len(q.queued) }

// Waiting returns the accounts waiting in mode, oldest first.
func (q *Queue) Waiting(mode string) []string {
	out := make([]string, 0, len(q.waiting[mode]))
	for _, t := range q.waiting[mode] {
		out = append(out, t.Account)
	}
	return out
}

// Enqueue queues t and returns the match it completes, if any. A ticket of
// an account already waiting (in any mode) is ignored with ErrQueued.
func (q *Queue) Enqueue(t game.Ticket) (*Match, error) {
	switch {
	case t.Account == "" || len(t.Account) > login.MaxAccountLen:
		return nil, fmt.Errorf("%w: account %q", ErrBadTicket, t.Account)
	case t.Mode == "" || utf8.RuneCountInString(t.Mode) > game.MaxName:
		return nil, fmt.Errorf("%w: mode %q", ErrBadTicket, t.Mode)
	case t.Lobby == common.NodeID{}:
		return nil, fmt.Errorf("%w: no lobby", ErrBadTicket)
	}
	if _, left := q.gone[t.Lobby]; left {
		return nil, fmt.Errorf("%w: %s", ErrLobbyGone, t.Lobby)
	}
	if mode, ok := q.queued[t.Account]; ok {
		return nil, fmt.Errorf("%w: %q waits in %q", ErrQueued, t.Account, mode)
	}
	q.queued[t.Account] = t.Mode
	w := append(q.waiting[t.Mode], t)
	if len(w) < 2 {
		q.waiting[t.Mode] = w
		return nil, nil
	}
	a, b := w[0], w[1]
	q.set(t.Mode, w[2:])
	delete(q.queued, a.Account)
	delete(q.queued, b.Account)
	q.seq++
	return &Match{ID: fmt.Sprintf("m-%s-%d", q.prefix, q.seq), Mode: t.Mode, A: a, B: b}, nil
}

func (q *Queue) set(mode string, w []game.Ticket) {
	if len(w) == 0 {
		delete(q.waiting, mode)
		return
	}
	q.waiting[mode] = w
}

// Dequeue withdraws t's account when it still waits in t.Mode on behalf
// of t.Lobby, and reports whether it did.
func (q *Queue) Dequeue(t game.Ticket) bool {
	if q.queued[t.Account] != t.Mode {
		return false
	}
	w := q.waiting[t.Mode]
	for i, x := range w {
		if x.Account == t.Account {
			if x.Lobby != t.Lobby {
				return false
			}
			q.set(t.Mode, append(w[:i:i], w[i+1:]...))
			delete(q.queued, t.Account)
			return true
		}
	}
	return false
}

// LobbyLeft drops the tickets of a lobby that left the cluster and
// returns their accounts, sorted; tickets it sent before leaving that
// arrive later are refused. Lobbies that left more than goneTTL before
// now are forgotten.
func (q *Queue) LobbyLeft(id common.NodeID, now time.Time) []string {
	for g, at := range q.gone {
		if now.Sub(at) > goneTTL {
			delete(q.gone, g)
		}
	}
	q.gone[id] = now
	var dropped []string
	for mode, w := range q.waiting {
		keep := w[:0:0]
		for _, t := range w {
			if t.Lobby == id {
				dropped = append(dropped, t.Account)
				delete(q.queued, t.Account)
			} else {
				keep = append(keep, t)
			}
		}
		q.set(mode, keep)
	}
	sort.Strings(dropped)
	return dropped
}

// LobbyJoined notes that a lobby is (again) a member, so its tickets count.
func (q *Queue) LobbyJoined(id common.NodeID) { delete(q.gone, id) }
