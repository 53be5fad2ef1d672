package nodetest

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/login"
)

// Kind says what a Message a player received is.
type Kind uint8

// Kinds of Message.
const (
	// KindPush is a node's message to this player (SendClientMsgByRelay).
	KindPush Kind = iota + 1
	// KindBroadcast is a node's message to every player
	// (BroadcastClientMsg).
	KindBroadcast
	// KindError says the gateway could not deliver the player's message:
	// no linked node of its type (Code wire.CodeNoNode). Cmd is the
	// player's full cmd. The session goes on.
	KindError
	// KindKick ends the session: Code is wire.CodeKicked for a node's
	// Kick, wire.CodeDuplicate when the account logged in again,
	// wire.CodeBadCmd for a cmd that names no node type.
	KindKick
	// KindGroup is a node's message to every member of a group
	// (BroadcastGroup); Group names it.
	KindGroup
)

func (k Kind) String() string {
	switch k {
	case KindPush:
		return "push"
	case KindBroadcast:
		return "broadcast"
	case KindError:
		return "error"
	case KindKick:
		return "kick"
	case KindGroup:
		return "group"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is what a player received.
type Message struct {
	Kind   Kind
	Cmd    uint64        // push, broadcast: the node's cmd, unchanged; error: the player's cmd
	Data   []byte        // push, broadcast
	From   common.NodeID // push, broadcast: the sending node
	Code   uint16        // error, kick: a wire code
	Reason string        // kick
	Group  string        // group
}

// State is where a player's session is.
type State uint8

// Player states.
const (
	Offline State = iota // no session: never logged in, logged out, kicked, expired
	Online               // logged in and connected
	Away                 // disconnected; the session waits for Resume
)

func (s State) String() string {
	switch s {
	case Offline:
		return "offline"
	case Online:
		return "online"
	case Away:
		return "away"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Player is one client of an account: it logs in through the cluster's
// login (binding the account to an instance of every stateful type),
// sends to nodes through the gateway and keeps every message it receives.
// Two Players of one account are two devices: the second login kicks the
// first. Methods are safe for concurrent use; what they cause at the
// nodes happens as the queue runs.
type Player struct {
	c       *Cluster
	account string

	// Guarded by c.mu.
	sess *session
	had  bool     // logged in at least once
	kick *Message // the kick that ended the last session, if one did
	got  []Message
	next int
}

// session is the gateway's state of one login of an account.
type session struct {
	sid     uint64
	account string
	p       *Player
	away    bool
	ended   bool
	expiry  *Timer
	held    []heldMsg // while away
	groups  map[string]bool
}

type heldMsg struct {
	msg  Message
	from *Node // nil for a broadcast
}

// binding is an account's instances of the stateful types.
type binding struct {
	ids   map[common.NodeType]common.NodeID
	until time.Time // zero while a session lives; then the end of affinity
}

// NewPlayer returns a client of account, offline.
func (c *Cluster) NewPlayer(account string) *Player {
	return &Player{c: c, account: account}
}

// Account is the player's account.
func (p *Player) Account() string { return p.account }

// State is the player's session state.
func (p *Player) State() State {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	switch {
	case p.sess == nil:
		return Offline
	case p.sess.away:
		return Away
	}
	return Online
}

// Bound returns the instance of stateful type t the account is bound to
// (zero when none).
func (p *Player) Bound(t common.NodeType) common.NodeID {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if b := p.c.binds[p.account]; b != nil {
		return b.ids[t]
	}
	return common.NodeID{}
}

// Login logs the player in as the login service and the gateway would:
// the account keeps its bindings to live instances (within
// Config.Affinity of its last session) and is bound to the least-loaded
// instance (overload slot 0; ties drawn from Config.Seed) of every other
// stateful type. An older session of the account, on another Player, is
// kicked with wire.CodeDuplicate; instances the account stays bound to
// are not told it was lost. It fails with common.ErrNoNode while a
// stateful type has no instance, login.ErrBadAccount for an account the
// gateway would refuse, and when this Player is logged in already.
func (p *Player) Login() error { return p.LoginAt() }

// LoginAt is Login with the bindings chosen by the test: the account is
// bound to each of ids (started nodes of stateful types), and to the
// other stateful types as Login does.
func (p *Player) LoginAt(ids ...common.NodeID) error {
	if err := login.ValidateAccount(p.account); err != nil {
		return err
	}
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.sess != nil {
		return fmt.Errorf("nodetest: %s is logged in already", p.account)
	}
	want := make(map[common.NodeType]common.NodeID)
	for _, id := range ids {
		n := c.byID[id]
		if n == nil || n.state != nodeStarted || !c.statefulLocked(n.typ) {
			return fmt.Errorf("%w: %s is not a started node of a stateful type", common.ErrNoNode, id)
		}
		want[n.typ] = id
	}
	b := c.binds[p.account]
	if b != nil && !b.until.IsZero() && c.now.After(b.until) {
		b = nil // affinity passed
	}
	ids2 := make(map[common.NodeType]common.NodeID, len(c.cfg.Stateful))
	for _, t := range c.cfg.Stateful {
		if id, ok := want[t]; ok {
			ids2[t] = id
			continue
		}
		if b != nil {
			if n := c.byID[b.ids[t]]; n != nil && n.state == nodeStarted {
				ids2[t] = n.id
				continue
			}
		}
		n := c.loginPickLocked(t)
		if n == nil {
			return fmt.Errorf("nodetest: login: no instance of %s: %w", t, common.ErrNoNode)
		}
		ids2[t] = n.id
	}

	c.nextSid++
	s := &session{sid: c.nextSid, account: p.account, p: p}
	if old := c.sessions[p.account]; old != nil {
		// Replaced: owners it is no longer bound to lose it; the others
		// learn the new session below. Messages kept for it go to the
		// new session; broadcasts it missed do not.
		for _, t := range c.cfg.Stateful {
			if id := c.binds[p.account].ids[t]; id != ids2[t] {
				if n := c.byID[id]; n != nil {
					n.postLoseLocked(p.account, old.sid)
				}
			}
		}
		for _, h := range old.held {
			if h.from != nil {
				p.gotLocked(h.msg)
			}
		}
		old.held = nil
		s.groups, old.groups = old.groups, nil // the memberships carry over
		c.endLocked(old, &Message{Kind: KindKick, Code: wire.CodeDuplicate, Reason: wire.CodeText(wire.CodeDuplicate)}, false)
	}
	c.binds[p.account] = &binding{ids: ids2}
	c.sessions[p.account] = s
	p.sess, p.had = s, true
	for _, t := range c.cfg.Stateful {
		c.byID[ids2[t]].postOnlineLocked(p.account, s.sid, false)
	}
	return nil
}

func (c *Cluster) statefulLocked(t common.NodeType) bool {
	for _, s := range c.cfg.Stateful {
		if s == t {
			return true
		}
	}
	return false
}

// loginPickLocked is the login service's choice: the least-loaded live
// instance of t, ties drawn at random.
func (c *Cluster) loginPickLocked(t common.NodeType) *Node {
	var best *Node
	ties := 0
	for _, n := range c.nodes {
		if n.typ != t || n.state != nodeStarted {
			continue
		}
		l, bl := load(n), uint32(0)
		if best != nil {
			bl = load(best)
		}
		switch {
		case best == nil || l < bl:
			best, ties = n, 1
		case l == bl:
			ties++
			if c.rnd.Intn(ties) == 0 {
				best = n
			}
		}
	}
	return best
}

func load(n *Node) uint32 { return (&member{info: n.self}).GetOverload(0) }

// rebindPickLocked is the gateway's choice when a bound instance is gone:
// the least-loaded linked instance of t, ties by ID.
func (c *Cluster) rebindPickLocked(t common.NodeType) *Node {
	var best *Node
	for _, n := range c.linkedLocked(t) {
		if best == nil || load(n) < load(best) {
			best = n
		}
	}
	return best
}

// linkedLocked is the linked instances of t, by ID.
func (c *Cluster) linkedLocked(t common.NodeType) []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.typ == t && n.linkedLocked() {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id.String() < out[j].id.String() })
	return out
}

// Send sends a message to the node type cmd names (cmd / Config.Offset),
// as a client's frame: a stateful type's bound instance gets it (the
// gateway rebinds the account to the least-loaded linked instance when
// that one is gone), a stateless type's instances take turns. With no
// linked instance the player gets a KindError message; a cmd naming a
// reserved or impossible type ends the session (KindKick,
// wire.CodeBadCmd). It errors with common.ErrNotConnected when the player
// is offline or away.
func (p *Player) Send(cmd uint64, data []byte) error {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := p.sess
	switch {
	case s == nil:
		return fmt.Errorf("%w: %s is not logged in", common.ErrNotConnected, p.account)
	case s.away:
		return fmt.Errorf("%w: %s is away; Resume first", common.ErrNotConnected, p.account)
	}
	data = append([]byte(nil), data...)
	c.postDynLocked(func() *lane {
		if n, _ := c.routeLocked(s, cmd, false); n != nil {
			return &n.link
		}
		return nil
	}, func() { c.gatewayDeliver(s, cmd, data) })
	return nil
}

// routeLocked is the node a player's message goes to (§3.4 of the
// protocol), nil when none; bad reports a cmd naming no node type. With
// commit the choice is made (a rebinding, the round-robin turn);
// without, it is only looked at.
func (c *Cluster) routeLocked(s *session, cmd uint64, commit bool) (n *Node, bad bool) {
	t := cmd / c.cfg.Offset
	if t < uint64(common.FirstGameType) || t > 65535 {
		return nil, true
	}
	typ := common.NodeType(t)
	if c.statefulLocked(typ) {
		b := c.binds[s.account]
		if cur := c.byID[b.ids[typ]]; cur != nil && cur.linkedLocked() {
			return cur, false
		}
		n = c.rebindPickLocked(typ)
		if n != nil && commit {
			b.ids[typ] = n.id
			n.owned[s.account] = &ownership{sid: s.sid, paused: s.away}
		}
		return n, false
	}
	ns := c.linkedLocked(typ)
	if len(ns) == 0 {
		return nil, false
	}
	n = ns[c.rr[typ]%uint64(len(ns))]
	if commit {
		c.rr[typ]++
	}
	return n, false
}

// gatewayDeliver routes a player's message as the gateway does and hands
// it to the node's relay handler.
func (c *Cluster) gatewayDeliver(s *session, cmd uint64, data []byte) {
	c.mu.Lock()
	if s.ended {
		c.mu.Unlock()
		return // the connection closed before the gateway read it
	}
	n, bad := c.routeLocked(s, cmd, true)
	switch {
	case bad:
		c.endLocked(s, &Message{Kind: KindKick, Code: wire.CodeBadCmd, Reason: fmt.Sprintf("cmd %d names no node type", cmd)}, true)
		c.mu.Unlock()
		return
	case n == nil:
		if !s.away {
			s.p.gotLocked(Message{Kind: KindError, Cmd: cmd, Code: wire.CodeNoNode})
		}
		c.mu.Unlock()
		return
	}
	f := n.onRelay
	c.mu.Unlock()
	if f != nil {
		t := cmd / c.cfg.Offset
		c.inLane(&n.link, func() { f(common.Client, nil, s.account, cmd-t*c.cfg.Offset, data) })
	}
}

// gatewayPush delivers a node's message to a player.
func (c *Cluster) gatewayPush(from *Node, account string, cmd uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[account]
	if s == nil {
		from.postUndeliverableLocked(common.Undeliverable{Account: account, Cmd: cmd, Code: wire.CodeNoNode})
		return
	}
	s.deliverLocked(heldMsg{msg: Message{Kind: KindPush, Cmd: cmd, Data: data, From: from.id}, from: from})
}

// gatewayBroadcast delivers a node's message to every player.
func (c *Cluster) gatewayBroadcast(from *Node, cmd uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		s.deliverLocked(heldMsg{msg: Message{Kind: KindBroadcast, Cmd: cmd, Data: data, From: from.id}})
	}
}

func (s *session) deliverLocked(h heldMsg) {
	if s.away {
		s.held = append(s.held, h)
		return
	}
	s.p.gotLocked(h.msg)
}

// gatewayKick ends account's session, if it has one.
func (c *Cluster) gatewayKick(account string, code uint16, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sessions[account]; s != nil {
		if len(reason) > 256 {
			reason = reason[:256]
		}
		c.endLocked(s, &Message{Kind: KindKick, Code: code, Reason: reason}, true)
	}
}

// endLocked ends a session once: the player gets kick (if any), bound
// nodes lose the account (when tell), messages kept for it are reported
// undeliverable to their senders, and the bindings' affinity starts.
func (c *Cluster) endLocked(s *session, kick *Message, tell bool) {
	if s.ended {
		return
	}
	s.ended = true
	if s.expiry != nil {
		s.expiry.stopLocked()
	}
	if c.sessions[s.account] == s {
		delete(c.sessions, s.account)
	}
	if s.p.sess == s {
		s.p.sess, s.p.kick = nil, kick
	}
	b := c.binds[s.account]
	if b != nil {
		b.until = c.now.Add(c.cfg.Affinity)
	}
	if kick != nil {
		s.p.gotLocked(*kick)
	}
	if tell && b != nil {
		for _, t := range c.cfg.Stateful {
			if n := c.byID[b.ids[t]]; n != nil {
				n.postLoseLocked(s.account, s.sid)
			}
		}
	}
	for _, h := range s.held {
		if h.from != nil {
			h.from.postUndeliverableLocked(common.Undeliverable{Account: s.account, Cmd: h.msg.Cmd, Code: wire.CodeExpired})
		}
	}
	s.held = nil
}

// boundLocked calls f for every node the session's account is bound to.
func (c *Cluster) boundLocked(account string, f func(*Node)) {
	b := c.binds[account]
	if b == nil {
		return
	}
	for _, t := range c.cfg.Stateful {
		if n := c.byID[b.ids[t]]; n != nil {
			f(n)
		}
	}
}

// Disconnect drops the player's connection. With resume (the default)
// the session waits Config.ResumeWindow: the bound nodes' disconnect
// callbacks run, messages to the player wait, and the session ends (the
// nodes lose the account) unless Resume comes first — the window passes
// with Advance. Without resume the session ends at once.
func (p *Player) Disconnect() {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := p.sess
	if s == nil || s.away {
		return
	}
	if c.cfg.ResumeWindow == 0 {
		c.endLocked(s, nil, true)
		return
	}
	s.away = true
	c.boundLocked(s.account, func(n *Node) { n.postPausedLocked(s.account, s.sid) })
	s.expiry = c.afterLocked(c.cfg.ResumeWindow, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.endLocked(s, nil, true)
	})
}

// Resume brings a disconnected player back within the resume window: it
// gets, in order, every message sent to it meanwhile, and the bound
// nodes' resume callbacks run. It fails with ErrExpired when the session
// ended meanwhile.
func (p *Player) Resume() error {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := p.sess
	switch {
	case s == nil && p.had:
		return fmt.Errorf("%w: %s must log in again", ErrExpired, p.account)
	case s == nil:
		return fmt.Errorf("%w: %s never logged in", common.ErrNotConnected, p.account)
	case !s.away:
		return errors.New("nodetest: " + p.account + " is not away")
	}
	s.away = false
	s.expiry.stopLocked()
	s.expiry = nil
	for _, h := range s.held {
		p.gotLocked(h.msg)
	}
	s.held = nil
	c.boundLocked(s.account, func(n *Node) { n.postOnlineLocked(s.account, s.sid, true) })
	return nil
}

// Logout ends the player's session now (a client closing a session that
// will not resume): the bound nodes lose the account.
func (p *Player) Logout() {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.sess != nil {
		c.endLocked(p.sess, nil, true)
	}
}

func (p *Player) gotLocked(m Message) { p.got = append(p.got, m) }

// Next returns the oldest message not yet returned by Next.
func (p *Player) Next() (Message, bool) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.next == len(p.got) {
		return Message{}, false
	}
	m := p.got[p.next]
	p.next++
	return m, true
}

// Received returns every message the player received, oldest first, or
// only those with one of cmds (pushes, broadcasts and errors carry a
// cmd; kicks none). Next does not change it.
func (p *Player) Received(cmds ...uint64) []Message {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	out := make([]Message, 0, len(p.got))
	for _, m := range p.got {
		if len(cmds) == 0 || m.Kind != KindKick && contains(cmds, m.Cmd) {
			out = append(out, m)
		}
	}
	return out
}

// Kicked returns the kick that ended the player's last session, if one
// did.
func (p *Player) Kicked() (Message, bool) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.sess != nil || p.kick == nil {
		return Message{}, false
	}
	return *p.kick, true
}

func contains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
