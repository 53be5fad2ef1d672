package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/resume"
	"github.com/xserver/xserver/login"
)

// sessState is where a session is in its life.
type sessState uint8

const (
	sessLive     sessState = iota // a connection is attached, or the session waits for one within its window
	sessResuming                  // resumed here from another gateway: client messages wait for the nodes' states
	sessEnded                     // over; nothing more is delivered
)

// session is a player's session on this gateway. A version 2 session
// outlives its connections: while detached (conn nil) it waits for a
// resume until its window passes. Every field after mu is guarded by it;
// the fields before are immutable.
type session struct {
	g       *Gateway
	account string
	sid     uint64
	window  time.Duration
	secret  [32]byte // digest of the resume secret (v2)

	mu       sync.Mutex
	core     *resume.Session
	bindings map[common.NodeType]common.NodeID
	conn     *client           // the attached connection; nil while detached
	away     time.Time         // when the last connection was lost (detached sessions)
	groups   map[string]uint32 // group → the broadcast number when it joined
	waitFor  map[common.NodeID]bool
	procs    resume.Processed
	ready    chan struct{} // closed when the resume wait is over
	endWhy   string
	rate     buckets // rate limits' state, from the first message on (nil before)
	// debtNs (unix ns) is when an acknowledgement left to share became
	// owed: version 1, the Delivered to nodes (with owed); version 2, the
	// ClientMsgAck left for a push to carry (0: none so left).
	debtNs   int64
	bpos     uint32 // broadcasts delivered (or settled) through this sequence number
	bowed    uint32 // version 2: broadcasts for this client not queued since it stalled
	bseen    uint32 // the last broadcast the fan-out brought to this session
	shed     uint32 // version 1: broadcasts dropped since the last ClientShed notice
	attempt  uint32 // the last resume attempt accepted
	owedN    uint16 // version 1: pushes queued since the last acknowledgement to nodes
	state    sessState
	v2       bool // set before the session is shared, never changed
	bready   bool // the client was told where stream 0 starts: broadcasts may be queued
	bstall   bool // a broadcast could not be queued: replay when the queue drains
	bgap     bool // away while a node's link was down: broadcasts may be missing (the resume says so)
	gdirty   bool // groups changed since the last write to Redis
	gsaving  bool // a write of the groups to Redis is queued or running
	owed     bool // version 1: deliveries not yet acknowledged to nodes
	dirty    bool // on the gateway's dirty list
	expiring bool // the window passed; the end is being recorded
}

func (s *session) record() *login.SessionRecord {
	return &login.SessionRecord{Gateway: s.g.node.GetID(), ID: s.sid, SecretHash: s.secret, Window: s.window, Bindings: s.bindings, Attempt: s.attempt}
}

// attachedLocked reports whether frames can be queued to a client now.
func (s *session) attachedLocked() bool { return s.conn != nil && s.state != sessEnded }

// markDirtyLocked puts the session on the gateway's dirty list, whose
// sessions the tick visits (acknowledgements owed, stalled streams).
func (s *session) markDirtyLocked() {
	if s.dirty {
		return
	}
	s.dirty = true
	s.g.dirtyMu.Lock()
	s.g.dirtyList = append(s.g.dirtyList, s)
	s.g.dirtyMu.Unlock()
}

// push delivers one node frame to the session's client, in stream order.
func (s *session) push(l *link, f *wire.PushFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == sessEnded {
		l.out.Append(wire.AppendRef(nil, wire.KindNotHere, s.account, s.sid))
		return
	}
	ownerOK := f.Flags&wire.PushOwner == 0 || s.bindings[l.typ] == l.id
	v, st := s.core.OnPush(l.id, f.Epoch, f.Seq, ownerOK, s.attachedLocked())
	switch v {
	case resume.PushDeliver, resume.PushAnnounce:
		if !s.queuePushLocked(v, st, f) {
			s.core.Unqueued(st)
			s.stalledLocked()
		}
	case resume.PushGap:
		l.out.Append(wire.AppendStreamSeq(nil, wire.KindResend, s.account, s.sid, st.Epoch, st.Expected))
	case resume.PushRefuse:
		s.g.met.drops.WithLabelValues("not_owner").Inc()
		l.out.Append(wire.AppendLose(nil, s.account, s.sid, wire.LoseMoved))
	case resume.PushHold:
		s.g.met.drops.WithLabelValues("client_away").Inc()
	}
}

// queuePushLocked queues a delivered frame; false when the client's queue
// is full.
func (s *session) queuePushLocked(v resume.PushVerdict, st *resume.Stream, f *wire.PushFrame) bool {
	c := s.conn
	g := s.g
	if !s.v2 {
		if wire.DataSize(len(f.Data)) > g.cfg.ClientQueueBytes {
			g.met.drops.WithLabelValues("too_large_for_client").Inc()
			return true // dropped, but not a stall: the sender is wrong
		}
		if !c.out.AppendWith(wire.DataSize(len(f.Data)), func(b []byte) { wire.PutData(b, f.Cmd, f.Data) }) {
			return false
		}
		if !s.owed {
			s.owed, s.debtNs = true, time.Now().UnixNano()
		}
		if s.owedN < deliveredEvery {
			s.owedN++
		}
		s.markDirtyLocked()
		g.met.framesOut.Inc()
		g.met.bytesOut.Add(float64(len(f.Data)))
		return true
	}
	if v == resume.PushAnnounce && !c.out.Append(wire.AppendStreamOpen(nil, st.ID, st.Node, st.Epoch)) {
		st.Announced, st.ID = false, 0
		return false
	}
	// A ClientMsgAck owed goes in the same write as the push.
	var ab [16]byte
	ack := ab[:0]
	if f, ok := s.core.PeekAck(); ok {
		ack = wire.AppendMsgAck(ack, f)
	}
	if !c.out.AppendWith(len(ack)+wire.PushSize(len(f.Data)), func(b []byte) {
		wire.PutPush(b[copy(b, ack):], st.ID, f.Seq, f.Cmd, f.Data)
	}) {
		return false
	}
	if len(ack) > 0 {
		s.core.AckDue(1, true)
		s.debtNs = 0
	}
	g.met.framesOut.Inc()
	g.met.bytesOut.Add(float64(len(f.Data)))
	return true
}

// stalledLocked handles a client that does not read fast enough: a
// version 1 client is disconnected; a version 2 one gets the frames again
// once its queue drains (the nodes keep them).
func (s *session) stalledLocked() {
	if !s.v2 {
		if c := s.conn; c != nil {
			c.tooSlow()
		}
		return
	}
	s.g.met.drops.WithLabelValues("client_stalled").Inc()
	s.markDirtyLocked()
}

// onLinkAck records that client message csq was processed.
func (s *session) done(csq uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.core.Done(csq)
	if f, ok := s.core.AckDue(16, false); ok && s.attachedLocked() {
		s.conn.out.Append(wire.AppendMsgAck(nil, f))
		s.debtNs = 0
	} else if s.core.Floor() > 0 {
		if s.debtNs == 0 {
			s.debtNs = time.Now().UnixNano()
		}
		s.markDirtyLocked()
	}
}

// deliveredEvery and deliveredDelay bound how long a version 1 session's
// Delivered acknowledgements to its nodes wait, so that several pushes
// share one: at most this many pushes, or this long. Until then the node
// keeps the frames; were the link to drop meanwhile, the node sends them
// again and the gateway drops them as duplicates.
const (
	deliveredEvery = 16
	deliveredDelay = 100 * time.Millisecond
)

// msgAckDelay is how long a ClientMsgAck owed for fewer than 16 messages
// waits for a push to the client to carry it before it is sent alone: a
// reply usually follows its request within this, so a request/response
// exchange costs no frame and no write for its acknowledgement.
const msgAckDelay = 100 * time.Millisecond

// tick flushes what the session owes: version 1 acknowledgements to nodes,
// the client's ClientMsgAck, and resends for stalled streams once the
// client's queue has room. It reports whether the session still needs the
// tick.
func (s *session) tick() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty = false
	if s.state == sessEnded {
		return false
	}
	g := s.g
	again := false
	if s.owed && s.owedN < deliveredEvery && time.Now().UnixNano()-s.debtNs < int64(deliveredDelay) {
		again = true // more pushes may share the acknowledgement
	} else if s.owed {
		s.owed, s.owedN = false, 0
		for _, st := range s.core.Streams() {
			if st.Expected-1 > st.Acked {
				st.Acked = st.Expected - 1
				if l := g.link(st.Node); l != nil {
					l.out.Append(wire.AppendStreamSeq(nil, wire.KindDelivered, s.account, s.sid, st.Epoch, st.Acked))
				}
			}
		}
	}
	c := s.conn
	if c != nil && !s.v2 && s.shed > 0 {
		// Tell a version 1 client how many broadcasts it lost, once its
		// queue drained to half; broadcasts flow again after the notice.
		if c.out.Len() > g.cfg.ClientQueueBytes/2 || !c.out.Append(wire.AppendShed(nil, wire.Shed{Count: s.shed})) {
			s.dirty = true
			return true
		}
		g.met.shedNotices.Inc()
		s.shed = 0
	}
	if c == nil || !s.v2 {
		if again {
			s.dirty = true
		}
		return again
	}
	if s.debtNs != 0 && time.Now().UnixNano()-s.debtNs < int64(msgAckDelay) {
		again = true // a push may still carry it
	} else if f, ok := s.core.AckDue(1, true); ok {
		c.out.Append(wire.AppendMsgAck(nil, f))
		s.debtNs = 0
	}
	if c.out.Len() > g.cfg.ClientQueueBytes/2 {
		// Still draining: look again next tick.
		s.dirty = true
		return true
	}
	for _, st := range s.core.Stalled(nil) {
		if l := g.link(st.Node); l != nil {
			l.out.Append(wire.AppendStreamSeq(nil, wire.KindResend, s.account, s.sid, st.Epoch, st.Expected))
		}
	}
	if s.bstall {
		s.bstall = false
		g.bring.replay(s, c, func(through uint32, kept int) {
			// The history no longer has some broadcasts for this client:
			// say how many, never a silent gap.
			if lost := int(s.bowed) - kept; lost > 0 {
				c.out.Force(wire.AppendShed(nil, wire.Shed{Through: through, Count: uint32(lost)}))
				g.met.shedNotices.Inc()
				g.met.shed.Add(float64(lost))
				s.bowed = uint32(kept)
			}
		})
	}
	if again {
		s.dirty = true
	}
	return again
}

// onClientAck forwards the client's stream acknowledgements to the nodes.
func (s *session) onClientAck(acks []wire.Ack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range acks {
		if a.Stream == 0 {
			continue // broadcasts: nothing is kept per session
		}
		if st := s.core.OnClientAck(a.Stream, a.Seq); st != nil {
			if l := s.g.link(st.Node); l != nil {
				l.out.Append(wire.AppendStreamSeq(nil, wire.KindDelivered, s.account, s.sid, st.Epoch, st.Acked))
			}
		}
	}
}

// bound lists the linked nodes the account is bound to.
func (s *session) boundLinksLocked() []*link {
	var ls []*link
	for _, id := range s.bindings {
		if l := s.g.link(id); l != nil {
			ls = append(ls, l)
		}
	}
	return ls
}

// tellBoundLocked sends each bound, linked node one frame built by f.
func (s *session) tellBoundLocked(f func(l *link) []byte) {
	for _, l := range s.boundLinksLocked() {
		l.out.Append(f(l))
	}
}

// detach is called when the attached connection c ends without ending the
// session (a version 2 session with a resume window): the session waits
// for a resume.
func (s *session) detach(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != c || s.state == sessEnded {
		return
	}
	s.conn = nil
	s.away = s.g.now()
	s.g.met.detached.Inc()
	s.g.dirtyMu.Lock()
	s.g.away[s] = struct{}{}
	s.g.dirtyMu.Unlock()
	s.tellBoundLocked(func(*link) []byte { return wire.AppendRef(nil, wire.KindSessionPaused, s.account, s.sid) })
	s.logger().WithField("window", s.window).Info("client disconnected; session kept for a resume")
}

// end ends the session once: bound nodes lose the account (unless it was
// replaced or taken over elsewhere, when the new holder tells them), nodes
// streaming to it hear it is gone, and the Redis record is deleted when it
// is still ours.
func (s *session) end(why string, tellNodes bool) {
	s.mu.Lock()
	if s.state == sessEnded {
		s.mu.Unlock()
		return
	}
	wasAway := s.conn == nil && s.v2
	s.state = sessEnded
	s.endWhy = why
	s.dropGroupsLocked()
	if s.ready != nil {
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
	}
	g := s.g
	if tellNodes {
		for _, l := range s.boundLinksLocked() {
			if l.out.Append(wire.AppendLose(nil, s.account, s.sid, wire.LoseEnded)) {
				g.met.loseAccounts.Inc()
			}
		}
	}
	for _, st := range s.core.Streams() {
		if l := g.link(st.Node); l != nil {
			l.out.Append(wire.AppendRef(nil, wire.KindNotHere, s.account, s.sid))
		}
	}
	bindings := len(s.bindings) > 0
	s.mu.Unlock()
	if wasAway {
		g.met.detached.Dec()
	}
	g.removeSession(s)
	g.met.ended.WithLabelValues(why).Inc()
	if tellNodes {
		g.store.enqueue(func(ctx context.Context) {
			if _, err := g.sessions.End(ctx, s.account, s.sid, g.node.GetID()); err != nil {
				s.logger().WithError(err).Debug("could not delete the session record")
			}
			if bindings {
				_ = login.TouchBindings(ctx, g.cfg.Redis, g.cfg.Cluster, s.account, g.cfg.Affinity)
			}
		})
	}
	s.logger().WithField("reason", why).Info("session ended")
}

// routeLocked picks the link for a message of type t: the bound instance
// for a stateful type, else the selector's choice. A bound instance whose
// link dropped is waited for (frames queue) while it is still a cluster
// member and its grace lasts; then the account is rebound, locally at
// once and in Redis in the background.
func (s *session) routeLocked(t common.NodeType) (l *link, wait common.NodeID) {
	g := s.g
	bound, stateful := s.bindings[t]
	if !stateful {
		return g.pick(t, s.account), common.NodeID{}
	}
	if l := g.link(bound); l != nil {
		return l, common.NodeID{}
	}
	if g.waiting(bound) {
		return nil, bound
	}
	repl := g.leastLoaded(t, s.account)
	if repl == nil {
		return nil, common.NodeID{}
	}
	s.bindings[t] = repl.id
	s.logger().WithFields(logrus.Fields{"type": t.String(), "from": bound.String(), "to": repl.id.String()}).Info("account rebound")
	g.met.rebinds.Inc()
	// The new owner first gets what was waiting for the old one.
	g.movePending(bound, s, repl)
	repl.out.Append(wire.AppendSessionOnline(nil, s.account, s.sid, s.waitMs(), 0))
	rec := s.record()
	rec.Bindings = copyBindings(s.bindings)
	g.store.enqueue(func(ctx context.Context) {
		if _, err := login.Rebind(ctx, g.cfg.Redis, g.cfg.Cluster, s.account, t, bound, repl.id, g.cfg.Affinity); err != nil {
			s.logger().WithError(err).Warn("could not record the rebind in Redis; the session keeps it")
		}
		_ = g.sessions.UpdateBindings(ctx, s.account, s.sid, g.node.GetID(), rec.Bindings)
	})
	return repl, common.NodeID{}
}

func copyBindings(b map[common.NodeType]common.NodeID) map[common.NodeType]common.NodeID {
	out := make(map[common.NodeType]common.NodeID, len(b))
	for k, v := range b {
		out[k] = v
	}
	return out
}

// forwardLocked sends one client message (f.csq 0 for version 1) to the
// node of type f.typ; false means it could not be (ClientError follows).
func (s *session) forwardLocked(f inflight, data []byte) bool {
	l, wait := s.routeLocked(f.typ)
	if l == nil && wait.IsZero() {
		return false
	}
	if l == nil {
		return s.g.queuePending(wait, f, wire.AppendDeliver(nil, s.account, s.sid, f.csq, f.cmd, data))
	}
	return l.deliver(f, data)
}

// kick ends the session with a kick frame to its client (or at once when
// it is detached).
func (s *session) kick(code uint16, reason string) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.kick(code, reason)
		return
	}
	s.end(wire.CodeText(code), true)
}

// replaced ends the session because a newer login took the account: the
// new holder tells the nodes, so no lose-account goes out from here.
func (s *session) replaced() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.kickWith(wire.CodeDuplicate, "logged in elsewhere", fateReplaced)
		return
	}
	s.end("replaced", false)
}

// takenOver lets the session go: it was resumed on another gateway, which
// now holds it and tells the nodes.
func (s *session) takenOver() {
	s.mu.Lock()
	c := s.conn
	if s.state == sessEnded {
		s.mu.Unlock()
		return
	}
	s.state = sessEnded
	s.endWhy = "taken over"
	s.dropGroupsLocked()
	wasAway := c == nil
	if s.ready != nil {
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
	}
	s.mu.Unlock()
	if c != nil {
		c.kickWith(wire.CodeTakenOver, "session resumed on another connection", fateMoved)
	} else if wasAway {
		s.g.met.detached.Dec()
	}
	s.g.removeSession(s)
	s.g.met.ended.WithLabelValues("taken_over").Inc()
	s.logger().Info("session resumed on another gateway")
}

// readyCh is the channel a resumed session's reader waits on before
// reading client messages (nil when there is nothing to wait for).
func (s *session) readyCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != sessResuming {
		return nil
	}
	return s.ready
}

// resumeHere attaches connection c to the session after a lost
// connection: every stream restarts after what the client received, the
// nodes are asked to resend, and the client's older connection (if still
// open) is closed with CodeTakenOver. record: the attempt is not in Redis
// yet (the takeover could not be made there) and is written in the
// background.
func (s *session) resumeHere(c *client, r *wire.Resume, record bool) uint16 {
	g := s.g
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == sessEnded {
		return wire.CodeExpired
	}
	if r.Attempt <= s.attempt {
		// Sent on a connection the client gave up: a later one has it.
		return wire.CodeTakenOver
	}
	s.attempt = r.Attempt
	if record {
		att := r.Attempt
		g.store.enqueue(func(ctx context.Context) {
			_ = g.sessions.RecordAttempt(ctx, s.account, s.sid, g.node.GetID(), att)
		})
	}
	old := s.conn
	s.conn = c
	if old != nil {
		old.kickWith(wire.CodeTakenOver, "session resumed on another connection", fateMoved)
	} else {
		g.met.detached.Dec()
	}
	req, acked := s.core.ResumeHere(r.Streams, r.MsgAck, nil)
	for _, st := range acked {
		if l := g.link(st.Node); l != nil {
			l.out.Append(wire.AppendStreamSeq(nil, wire.KindDelivered, s.account, s.sid, st.Epoch, st.Acked))
		}
	}
	var flags uint8
	replay := false
	for _, p := range r.Streams {
		// Replay only when the history reaches back to the client's
		// position; otherwise broadcasts are missing and the client is told.
		if p.Stream == 0 && p.Node == g.node.GetID() && p.Epoch == g.incarnation && g.bring.reaches(p.Last) {
			s.bpos, replay = p.Last, true
		}
	}
	if !replay {
		flags |= wire.ResumedBroadcastGap
		s.bpos = g.bring.last()
	}
	if s.bgap {
		flags |= wire.ResumedBroadcastGap
		s.bgap = false
	}
	s.bready, s.bstall, s.bowed = true, false, 0
	c.out.Append(wire.AppendResumed(nil, &wire.Resumed{MsgAck: s.core.Floor(), Flags: flags}))
	if !replay {
		c.out.Append(wire.AppendStreamOpen(nil, 0, g.node.GetID(), g.incarnation))
	} else {
		g.bring.replay(s, c, func(uint32, int) {
			// The history no longer reaches back: say so.
			c.out.Append(wire.AppendStreamOpen(nil, 0, g.node.GetID(), g.incarnation))
		})
	}
	for _, l := range g.allLinks() {
		l.out.Append(wire.AppendResumeReq(nil, s.account, s.sid, req[l.id]))
	}
	if old == nil {
		s.tellBoundLocked(func(*link) []byte {
			return wire.AppendSessionOnline(nil, s.account, s.sid, s.waitMs(), wire.OnlineResumed)
		})
		s.logger().WithField("away", g.now().Sub(s.away).Round(time.Millisecond)).Info("session resumed")
	} else {
		s.logger().Info("session resumed on a new connection")
	}
	return wire.CodeOK
}

// adopt attaches connection c to a session just taken over from gateway
// from: every node is asked for its state and to resend, and client
// messages wait (see readyCh) until every node answered.
func (s *session) adopt(c *client, r *wire.Resume, from common.NodeID, groups []string) {
	g := s.g
	s.mu.Lock()
	defer s.mu.Unlock()
	core, req := resume.AdoptResume(s.sid, r.Streams, r.MsgAck, from)
	s.core = core
	s.conn = c
	s.state = sessResuming
	s.ready = make(chan struct{})
	s.waitFor = make(map[common.NodeID]bool)
	s.bpos = g.bring.last()
	s.bready = true
	s.inheritGroupsLocked(groups)
	c.out.Append(wire.AppendResumed(nil, &wire.Resumed{MsgAck: r.MsgAck, Flags: wire.ResumedBroadcastGap}))
	c.out.Append(wire.AppendStreamOpen(nil, 0, g.node.GetID(), g.incarnation))
	for _, l := range g.allLinks() {
		if l.out.Append(wire.AppendResumeReq(nil, s.account, s.sid, req[l.id])) {
			s.waitFor[l.id] = true
		}
	}
	s.tellBoundLocked(func(*link) []byte {
		return wire.AppendSessionOnline(nil, s.account, s.sid, s.waitMs(), wire.OnlineResumed)
	})
	if len(s.waitFor) == 0 {
		s.finishResumeLocked()
	}
}

// onResumeState takes one node's answer to a Resume.
func (s *session) onResumeState(l *link, st *wire.ResumeState) {
	s.mu.Lock()
	lost := false
	for _, e := range st.Streams {
		switch e.Status {
		case wire.StreamLost:
			lost = true
		case wire.StreamForgotten:
			for _, x := range s.core.Streams() {
				if x.Node == l.id && x.Epoch == e.Epoch {
					if x.Announced && s.attachedLocked() && s.v2 {
						s.conn.out.Append(wire.AppendStreamEnd(nil, x.ID))
					}
					s.core.Remove(x)
					break
				}
			}
		}
	}
	if s.state == sessResuming && s.waitFor[l.id] {
		s.procs.Add(st.Hi, st.Bitmap)
		delete(s.waitFor, l.id)
		if len(s.waitFor) == 0 {
			s.finishResumeLocked()
		}
	}
	s.mu.Unlock()
	if lost {
		s.g.met.drops.WithLabelValues("stream_lost").Inc()
		s.logger().WithField("node", l.id.String()).Warn("a node lost messages of this session; ending it")
		s.kick(wire.CodeLost, "messages were lost; log in again")
	}
}

// finishResume ends the wait for the nodes' states (timeout: those that
// did not answer count as having processed nothing).
func (s *session) finishResume(timeout bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == sessResuming {
		if timeout {
			s.logger().WithField("missing", len(s.waitFor)).Warn("nodes did not answer the resume in time")
		}
		s.finishResumeLocked()
	}
}

func (s *session) finishResumeLocked() {
	s.core.SetProcessed(&s.procs)
	s.procs = resume.Processed{}
	s.waitFor = nil
	s.state = sessLive
	close(s.ready)
	if f, ok := s.core.AckDue(1, true); ok && s.conn != nil {
		s.conn.out.Append(wire.AppendMsgAck(nil, f))
	}
}

// logger is the session's log context, built when a line is written:
// idle sessions keep none.
func (s *session) logger() logrus.FieldLogger { return s.g.log.WithField("account", s.account) }

func (s *session) String() string { return fmt.Sprintf("%s/%x", s.account, s.sid) }

// waitMs is how long a bound node waits for this session after losing
// the gateway holding it (SessionOnline's wait): while the session can
// still be resumed elsewhere — its window, and at least as long as its
// Redis record outlives a dead gateway — plus a margin. 0 for a session
// without resume: the node's own grace applies.
// windowMs is the session's resume window as ClientSession tells the
// client: how long the session waits for a resume after a lost
// connection; 0 without resume.
func (s *session) windowMs() uint32 {
	if !s.v2 {
		return 0
	}
	return uint32(s.window.Milliseconds())
}

func (s *session) waitMs() uint32 {
	if !s.v2 || s.window == 0 {
		return 0
	}
	return uint32((max(s.window, s.g.recordTTL(s)) + 2*time.Second).Milliseconds())
}
