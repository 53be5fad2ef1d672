package node

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// groupQueries matches the gateways' GroupMembers answers to the
// GroupMembers calls waiting for them.
type groupQueries struct {
	mu      sync.Mutex // guards next, waiting
	next    uint64
	waiting map[uint64]*groupQuery
}

// groupQuery is one GroupMembers call: the gateways still to answer and
// the accounts they listed so far.
type groupQuery struct {
	pending  map[common.NodeID]bool
	accounts []string
	done     chan struct{} // closed when no gateway is pending
}

// answer takes one part of gateway gw's answer to query id.
func (q *groupQueries) answer(gw common.NodeID, id uint64, last bool, accounts []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.waiting[id]
	if w == nil || !w.pending[gw] {
		return
	}
	w.accounts = append(w.accounts, accounts...)
	if last {
		w.finishLocked(gw)
	}
}

// linkDown gives up on gateway gw's answers: its link dropped.
func (q *groupQueries) linkDown(gw common.NodeID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, w := range q.waiting {
		if w.pending[gw] {
			w.finishLocked(gw)
		}
	}
}

func (w *groupQuery) finishLocked(gw common.NodeID) {
	delete(w.pending, gw)
	if len(w.pending) == 0 {
		close(w.done)
	}
}

// groupLinks is every gateway linked now; ErrNoGateway when none.
func (n *Node) groupLinks() ([]*gwLink, error) {
	if err := n.relayCheck(); err != nil {
		return nil, err
	}
	n.rl.mu.Lock()
	links := make([]*gwLink, 0, len(n.rl.links))
	for _, l := range n.rl.links {
		links = append(links, l)
	}
	n.rl.mu.Unlock()
	if len(links) == 0 {
		return nil, common.ErrNoGateway
	}
	return links, nil
}

// groupSend queues one frame to every linked gateway.
func (n *Node) groupSend(frame []byte) error {
	links, err := n.groupLinks()
	if err != nil {
		return err
	}
	var first error
	for _, l := range links {
		if !l.send(frame) && first == nil {
			first = fmt.Errorf("%w: gateway %s not accepting", common.ErrNotConnected, l.id)
		}
	}
	return first
}

func checkGroup(group, account string) error {
	if err := wire.ValidGroup(group); err != nil {
		return err
	}
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	return nil
}

// JoinGroup makes the account's session a member of group, on whichever
// gateway holds it. It only queues: the request goes to every linked
// gateway, after this node's earlier group requests and broadcasts, so a
// BroadcastGroup sent after JoinGroup returns reaches the account. The
// membership lasts as long as the session: it is kept while the client is
// away, follows a resume to another gateway and a new login of the
// account, and ends with the session. Joining twice is harmless. An
// account with no session now is not added. Join before you tell the
// player it is in: the join and a later message to the player travel in
// order on the same link, so the gateway has the membership before the
// player sees the message; sent the other way round, a broadcast that
// another node makes in reaction to the player (a chat line) can reach
// the gateway before the join, and miss the player.
func (n *Node) JoinGroup(group, account string) error {
	if err := checkGroup(group, account); err != nil {
		return err
	}
	return n.groupSend(wire.AppendGroupMember(nil, wire.KindGroupJoin, group, account))
}

// LeaveGroup removes the account's session from group. It only queues,
// like JoinGroup.
func (n *Node) LeaveGroup(group, account string) error {
	if err := checkGroup(group, account); err != nil {
		return err
	}
	return n.groupSend(wire.AppendGroupMember(nil, wire.KindGroupLeave, group, account))
}

// BroadcastGroup sends data to the client of every member of group. It
// only queues: one frame per gateway, which hands it to the members it
// holds, in order with this node's other broadcasts. Delivery is that of
// BroadcastClientMsg: a client that lost its connection gets it on
// resuming at the same gateway, not after a resume elsewhere (it is told
// broadcasts are missing), and a client too slow to read gets a notice of
// what it lost instead.
func (n *Node) BroadcastGroup(group string, cmd uint64, data []byte) error {
	if err := wire.ValidGroup(group); err != nil {
		return err
	}
	return n.groupSend(wire.AppendGroupBroadcast(nil, group, cmd, data))
}

// GroupMembers returns the accounts in group, sorted, by asking every
// linked gateway. It blocks until each answered or its link dropped, or
// ctx ends (then it returns what it has and ctx's error). A member whose
// session is moving between gateways may be missing or listed once.
func (n *Node) GroupMembers(ctx context.Context, group string) ([]string, error) {
	if err := wire.ValidGroup(group); err != nil {
		return nil, err
	}
	links, err := n.groupLinks()
	if err != nil {
		return nil, err
	}
	n.rl.releaseReaders() // the answers may come over the link this callback was read from
	q := &n.rl.gq
	w := &groupQuery{pending: make(map[common.NodeID]bool, len(links)), done: make(chan struct{})}
	for _, l := range links {
		w.pending[l.id] = true
	}
	q.mu.Lock()
	q.next++
	id := q.next
	if q.waiting == nil {
		q.waiting = make(map[uint64]*groupQuery)
	}
	q.waiting[id] = w
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.waiting, id)
		q.mu.Unlock()
	}()
	frame := wire.AppendGroupQuery(nil, id, group)
	for _, l := range links {
		if !l.out.Append(frame) {
			q.linkDown(l.id)
		}
	}
	var cerr error
	select {
	case <-w.done:
	case <-ctx.Done():
		cerr = ctx.Err()
	}
	q.mu.Lock()
	out := append([]string(nil), w.accounts...)
	q.mu.Unlock()
	sort.Strings(out)
	out = dedupe(out)
	return out, cerr
}

// dedupe removes repeats from a sorted list.
func dedupe(s []string) []string {
	if len(s) < 2 {
		return s
	}
	j := 1
	for i := 1; i < len(s); i++ {
		if s[i] != s[j-1] {
			s[j] = s[i]
			j++
		}
	}
	return s[:j]
}
