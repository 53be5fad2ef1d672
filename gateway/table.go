package gateway

import (
	"context"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/resume"
)

// tickEvery is how often the gateway flushes owed acknowledgements, asks
// stalled streams again, and checks resume windows and link graces.
const tickEvery = 20 * time.Millisecond

func (g *Gateway) newSession(account string, sid uint64, v2 bool, b map[common.NodeType]common.NodeID) *session {
	if b == nil {
		b = make(map[common.NodeType]common.NodeID)
	}
	var window time.Duration
	if v2 {
		window = g.cfg.ResumeWindow
	}
	return &session{g: g, account: account, sid: sid, v2: v2, window: window,
		core: resume.NewSession(sid, v2), bindings: b}
}

// addSession attaches c to s and makes s the account's session here; an
// older session of the account is replaced. false: the gateway is closing.
func (g *Gateway) addSession(s *session, c *client) bool {
	s.conn = c // s is not shared yet
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	prev := g.sessMap[s.account]
	g.sessMap[s.account] = s
	g.mu.Unlock()
	if prev != nil && prev.sid == s.sid {
		// The same session, taken back from another gateway: this copy
		// was stale (resume ends it first, under the account's lock).
		prev.takenOver()
	} else if prev != nil {
		// A new login of the account here: it keeps the memberships.
		prev.mu.Lock()
		names := prev.groupNamesLocked()
		prev.mu.Unlock()
		s.mu.Lock()
		s.inheritGroupsLocked(names)
		s.mu.Unlock()
		prev.replaced()
	} else {
		g.nclients.Add(1)
		g.met.clients.Inc()
	}
	return true
}

// removeSession forgets s if it is still the account's session here.
func (g *Gateway) removeSession(s *session) {
	g.mu.Lock()
	if g.sessMap[s.account] == s {
		delete(g.sessMap, s.account)
		g.nclients.Add(-1)
		g.met.clients.Dec()
	}
	g.mu.Unlock()
	g.dirtyMu.Lock()
	delete(g.away, s)
	g.dirtyMu.Unlock()
}

// session returns the account's session here, or nil.
func (g *Gateway) session(account []byte) *session {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.sessMap[string(account)]
}

func (g *Gateway) allSessions() []*session {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*session, 0, len(g.sessMap))
	for _, s := range g.sessMap {
		out = append(out, s)
	}
	return out
}

func (g *Gateway) allLinks() []*link {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*link, 0, len(g.links))
	for _, l := range g.links {
		out = append(out, l)
	}
	return out
}

// resumeWait bounds how long a session resumed from another gateway waits
// for the nodes' states.
func (g *Gateway) resumeWait() time.Duration {
	return 2 * g.cfg.PingInterval * time.Duration(g.cfg.PingMisses)
}

// refreshEvery is how often live sessions' Redis records are refreshed
// (and checked: a session whose record names another holder ends).
func (g *Gateway) refreshEvery() time.Duration {
	return g.cfg.SessionRefresh
}

// recordTTL is the expiry of a session's Redis record: a resumable one
// lasts its window after its gateway stops refreshing it.
func (g *Gateway) recordTTL(s *session) time.Duration { return g.recordTTLFor(s.v2, s.window) }

func (g *Gateway) recordTTLFor(v2 bool, window time.Duration) time.Duration {
	min := 3 * g.refreshEvery()
	if v2 && window > min {
		return window
	}
	return min
}

// linkGrace is how long client messages wait for a bound node whose link
// dropped before the account is rebound elsewhere.
func (g *Gateway) linkGrace() time.Duration {
	return g.cfg.PingInterval * time.Duration(g.cfg.PingMisses)
}

// pendingQueue holds client messages for a node whose link dropped, until
// it links again or its grace is over.
type pendingQueue struct {
	since time.Time
	msgs  []pendingMsg
	bytes int
}

// pendingMsg is a message waiting for a node: its bookkeeping and its
// encoded Deliver frame (nil for a version 1 message that was already sent
// once and must not be sent again).
type pendingMsg struct {
	f     inflight
	frame []byte
}

// waiting reports whether messages for node id are being held for its
// return.
func (g *Gateway) waiting(id common.NodeID) bool {
	g.pendMu.Lock()
	defer g.pendMu.Unlock()
	return g.pending[id] != nil
}

// queuePending holds a message for node id; false when it is not waited
// for (any more) or the queue is full.
func (g *Gateway) queuePending(id common.NodeID, f inflight, frame []byte) bool {
	g.pendMu.Lock()
	defer g.pendMu.Unlock()
	q := g.pending[id]
	if q == nil || q.bytes+len(frame) > g.cfg.LinkQueueBytes {
		return false
	}
	q.msgs = append(q.msgs, pendingMsg{f: f, frame: frame})
	q.bytes += len(frame)
	return true
}

// movePending sends s's messages waiting for node from to link to, in
// order (the account was rebound).
func (g *Gateway) movePending(from common.NodeID, s *session, to *link) {
	g.pendMu.Lock()
	q := g.pending[from]
	var mine []pendingMsg
	if q != nil {
		keep := q.msgs[:0]
		for _, m := range q.msgs {
			if m.f.s == s {
				mine = append(mine, m)
				q.bytes -= len(m.frame)
			} else {
				keep = append(keep, m)
			}
		}
		q.msgs = keep
	}
	g.pendMu.Unlock()
	for _, m := range mine {
		m.f.typ = to.typ
		if m.frame == nil || !to.redeliver(m.f, m.frame) {
			g.clientError(m.f)
		}
	}
}

// clientError tells the message's client it was not delivered; it must be
// called without the session's lock.
func (g *Gateway) clientError(f inflight) {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.csq != 0 {
		s.core.Done(f.csq)
	}
	if s.attachedLocked() {
		s.conn.notice(wire.AppendClientError(nil, wire.CodeNoNode, f.full))
	}
	g.met.drops.WithLabelValues("no_node").Inc()
}

// linked publishes a new link: first it gets what was held for its node
// (in order), then new messages may route to it. The node learns which of
// its accounts are online here.
func (g *Gateway) linked(l *link, old *link) {
	g.pendMu.Lock()
	q := g.pending[l.id]
	delete(g.pending, l.id)
	_, wasDown := g.linkDown[l.id]
	delete(g.linkDown, l.id)
	var lost []inflight
	if old != nil {
		for _, m := range old.takeUnacked() {
			if m.frame == nil || !l.redeliver(m.f, m.frame) {
				lost = append(lost, m.f)
			}
		}
	}
	if q != nil {
		for _, m := range q.msgs {
			if m.frame == nil || !l.redeliver(m.f, m.frame) {
				lost = append(lost, m.f)
			}
		}
	}
	g.mu.Lock()
	g.links[l.id] = l
	g.reindexLocked(l.typ)
	g.mu.Unlock()
	g.pendMu.Unlock()
	for _, f := range lost {
		g.clientError(f)
	}
	if wasDown || old != nil {
		// What the node broadcast while it had no link here never came.
		g.broadcastGap()
	}
	for _, s := range g.allSessions() {
		s.mu.Lock()
		if s.state != sessEnded && s.bindings[l.typ] == l.id {
			l.out.Append(wire.AppendSessionOnline(nil, s.account, s.sid, s.waitMs(), 0))
			if s.conn == nil {
				l.out.Append(wire.AppendRef(nil, wire.KindSessionPaused, s.account, s.sid))
			}
		}
		s.mu.Unlock()
	}
}

// unlinked holds the dropped link's unacknowledged messages for the node's
// return (or reroutes them at once when it left the cluster); version 1
// messages, which cannot be sent twice, are reported undelivered.
func (g *Gateway) unlinked(l *link) {
	msgs := l.takeUnacked()
	var lost []inflight
	g.pendMu.Lock()
	q := g.pending[l.id]
	if q == nil {
		q = &pendingQueue{since: g.now()}
		if !l.left && g.node.HaveNode(l.id) {
			g.pending[l.id] = q
		}
	}
	if !l.left {
		g.linkDown[l.id] = g.now()
	}
	for _, m := range msgs {
		if m.frame == nil {
			lost = append(lost, m.f)
			continue
		}
		q.msgs = append(q.msgs, m)
		q.bytes += len(m.frame)
	}
	_, held := g.pending[l.id]
	g.pendMu.Unlock()
	for _, f := range lost {
		g.clientError(f)
	}
	if !held {
		g.reroute(q.msgs)
	}
}

// reroute sends held messages to wherever their sessions route now.
func (g *Gateway) reroute(msgs []pendingMsg) {
	for _, m := range msgs {
		s := m.f.s
		d, err := wire.DecodeDeliver(m.frame[wire.HeaderSize:])
		if err != nil {
			continue
		}
		s.mu.Lock()
		ok := s.state == sessEnded || s.forwardLocked(m.f, d.Data)
		s.mu.Unlock()
		if !ok {
			g.clientError(m.f)
		}
	}
}

// claim answers a node asking whether an account is still bound to it
// here (it lost its link and came back).
func (g *Gateway) claim(l *link, r wire.SessRef) {
	s := g.session(r.Account)
	if s == nil || s.sid != r.Sid {
		l.out.Append(wire.AppendRef(nil, wire.KindNotHere, string(r.Account), r.Sid))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state == sessEnded:
		l.out.Append(wire.AppendLose(nil, s.account, s.sid, wire.LoseEnded))
	case s.bindings[l.typ] != l.id:
		l.out.Append(wire.AppendLose(nil, s.account, s.sid, wire.LoseMoved))
	default:
		l.out.Append(wire.AppendSessionOnline(nil, s.account, s.sid, s.waitMs(), 0))
		if s.conn == nil {
			l.out.Append(wire.AppendRef(nil, wire.KindSessionPaused, s.account, s.sid))
		}
	}
}

// tickLoop runs the gateway's timers: owed acknowledgements and stalled
// streams every tick, resume windows and link graces every few ticks.
func (g *Gateway) tickLoop() {
	defer g.wg.Done()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-t.C:
		case <-g.stop:
			return
		}
		g.dirtyMu.Lock()
		list := g.dirtyList
		g.dirtyList = nil
		g.dirtyMu.Unlock()
		var again []*session
		for _, s := range list {
			if s.tick() {
				again = append(again, s)
			}
		}
		if len(again) > 0 {
			g.dirtyMu.Lock()
			g.dirtyList = append(g.dirtyList, again...)
			g.dirtyMu.Unlock()
		}
		if n++; n%10 == 0 {
			g.expireAway()
			g.expirePending()
		}
	}
}

// expireAway ends detached sessions whose resume window passed (unless
// another gateway took them over meanwhile).
func (g *Gateway) expireAway() {
	now := g.now()
	g.dirtyMu.Lock()
	var due []*session
	for s := range g.away {
		due = append(due, s)
	}
	g.dirtyMu.Unlock()
	for _, s := range due {
		s.mu.Lock()
		gone := s.state == sessEnded || s.conn != nil
		expired := !gone && now.Sub(s.away) >= s.window && !s.expiring
		if expired {
			s.expiring = true
		}
		away := s.away
		s.mu.Unlock()
		if gone {
			g.dirtyMu.Lock()
			delete(g.away, s)
			g.dirtyMu.Unlock()
			continue
		}
		if !expired {
			continue
		}
		g.store.enqueue(func(ctx context.Context) {
			ours, err := g.sessions.End(ctx, s.account, s.sid, g.node.GetID())
			switch {
			case err != nil && g.now().Sub(away) < s.window+30*time.Second:
				s.mu.Lock()
				s.expiring = false // try again next round
				s.mu.Unlock()
			case err == nil && !ours:
				s.takenOver()
			default:
				s.end("expired", true)
			}
		})
	}
}

// expirePending reroutes messages held for nodes that did not come back in
// time or left the cluster.
func (g *Gateway) expirePending() {
	now := g.now()
	var out [][]pendingMsg
	g.pendMu.Lock()
	for id, q := range g.pending {
		if now.Sub(q.since) >= g.linkGrace() || !g.node.HaveNode(id) {
			delete(g.pending, id)
			out = append(out, q.msgs)
		}
	}
	for id, t := range g.linkDown {
		if now.Sub(t) >= linkDownMemory {
			delete(g.linkDown, id) // it is not coming back
		}
	}
	g.pendMu.Unlock()
	for _, msgs := range out {
		g.reroute(msgs)
	}
}
