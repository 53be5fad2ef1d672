package mgrserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	pb "github.com/xserver/xserver/proto"
)

// session is one intranet connection. Its reader runs in run(); its writer
// drains out. Fields marked "s.mu" are guarded by the server's mutex.
type session struct {
	s        *Server
	conn     net.Conn
	out      *intranet.CtlQueue
	log      logrus.FieldLogger
	stop     chan struct{} // closed by abort: stop writing now
	accepted time.Time

	// synced: the first snapshot is queued; nothing else may precede it,
	// so heartbeats start only then.
	synced atomic.Bool

	// Set by greet, before run.
	pooled   bool   // written by the server's pool, not a goroutine of its own
	greeted  bool   // greet ran: Hello (or the refusal) is decided
	leading  bool   // the server led when the connection was accepted
	nonce    []byte // the Hello's nonce
	epoch    uint64 // the Hello's epoch
	greetErr error  // no Hello could be made

	// s.mu
	registered bool
	needSync   bool
	id         common.NodeID
	gone       bool // leave already handled (graceful, replaced or failed)

	once sync.Once
}

func newSession(s *Server, c net.Conn) *session {
	return &session{
		s: s, conn: c, out: intranet.NewCtlQueue(s.cfg.QueueBytes), stop: make(chan struct{}), accepted: time.Now(),
		log: s.log.WithField("peer", c.RemoteAddr().String()),
	}
}

// closeWith sends a last error frame and closes after it is written.
func (c *session) closeWith(code uint32, reason string) {
	f, _ := wire.Frame(wire.KindError, &pb.Error{Code: code, Reason: reason})
	c.out.CloseWith(f)
	// The writer closes the socket once drained; make sure a stuck writer
	// does not keep it open past the write timeout.
	_ = c.conn.SetReadDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
}

// abort closes the socket at once.
func (c *session) abort() {
	c.once.Do(func() { close(c.stop) })
	_ = c.conn.Close()
}

// reject logs why a peer is dropped, counts it and closes with an error.
func (c *session) reject(metric string, code uint32, err error) {
	c.s.met.rejected.WithLabelValues(metric).Inc()
	c.s.warnLog.Log(c.log.WithError(err).WithField("code", code), logrus.WarnLevel, metric, "closing intranet connection: "+rejectWhy(metric))
	c.closeWith(code, err.Error())
}

// rejectWhy explains a rejection reason to the operator.
func rejectWhy(metric string) string {
	switch metric {
	case "auth":
		return "authentication failed: every member must share XSERVER_SECRET"
	case "stale_epoch":
		return "the peer has seen a newer leader epoch; this leader steps down"
	case "handshake":
		return "no registration before the handshake deadline"
	case "heartbeat":
		return "peer silent for too long"
	}
	return "bad input (" + metric + ")"
}

// greet runs on the accept loop, before run: it attaches plain TCP
// connections to the server's write pool and queues the Hello ahead of
// everything, so the pool's workers send it at their next turn without
// waiting for the session's goroutine to be scheduled. (Writing it from
// the accept loop itself was slower: on loopback a write runs the peer's
// receive path too, and the accept loop must keep draining the listen
// queue during a cold start.) leading and epoch are the server's state
// when the connection was accepted; a non-leader sends nothing here (read
// refuses the connection).
func (c *session) greet(leading bool, epoch uint64) {
	c.pooled = c.out.Attach(c.s.pool, c.conn, c.s.cfg.WriteTimeout, c.stop)
	c.greeted, c.leading, c.epoch = true, leading, epoch
	if !leading {
		return
	}
	nonce, err := intranet.NewNonce()
	if err != nil {
		c.greetErr = err // refused by read
		return
	}
	cfg := &c.s.cfg
	c.nonce = nonce
	hello, _ := wire.Frame(wire.KindHello, &pb.Hello{
		Nonce: nonce, Epoch: epoch, Cluster: cfg.Cluster,
		PingIntervalMs: cfg.PingInterval.Milliseconds(), PingMisses: uint32(cfg.PingMisses),
	})
	c.out.UrgentForce(hello)
}

func (c *session) run() {
	defer c.s.wg.Done()
	if c.pooled {
		// Plain TCP: the server's pool writes, no writer goroutine.
		c.read()
		c.s.forget(c)
		c.out.Close()
		<-c.out.Done()
		if err := c.out.Err(); err != nil {
			c.log.WithError(err).Debug("write failed")
		}
		_ = c.conn.Close()
		return
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if err := c.out.WriteLoop(c.conn, c.s.cfg.WriteTimeout, c.stop); err != nil {
			c.log.WithError(err).Debug("write failed")
		}
		_ = c.conn.Close()
	}()
	c.read()
	c.s.forget(c)
	c.out.Close()
	<-writerDone
	_ = c.conn.Close()
}

// read runs the handshake and then the frame loop until the connection
// ends; every way out leaves a reason in the log.
func (c *session) read() {
	cfg := &c.s.cfg
	r := wire.NewReader(intranet.Rechecked(c.conn), cfg.MaxFrame, 4096)

	if !c.greeted {
		c.greetErr = errors.New("no hello sent")
	}
	if c.greetErr != nil {
		c.reject("internal", intranet.CodeShutdown, c.greetErr)
		return
	}
	if !c.leading {
		c.s.met.rejected.WithLabelValues("not_leader").Inc()
		c.closeWith(intranet.CodeNotLeader, "not the leader")
		return
	}
	nonce, epoch := c.nonce, c.epoch

	_ = c.conn.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout))
	kind, p, err := r.ReadFrame()
	if err != nil {
		c.readFailed(err, true)
		return
	}
	c.s.met.registerTime.Observe(time.Since(c.accepted).Seconds())
	if kind != wire.KindRegister {
		c.reject("unexpected", intranet.CodeUnexpected, fmt.Errorf("%w: %s frame before registration", common.ErrBadInput, kind))
		return
	}
	var reg pb.Register
	if err := reg.Unmarshal(p); err != nil {
		c.reject("malformed", intranet.CodeMalformed, fmt.Errorf("%w: register: %v", common.ErrBadInput, err))
		return
	}
	if err := intranet.ValidateInfo(reg.Info); err != nil {
		c.reject("bad_info", intranet.CodeBadInfo, err)
		return
	}
	if err := intranet.CheckMAC(cfg.Secret, nonce, reg.Info.Id, reg.Mac); err != nil {
		c.reject("auth", intranet.CodeAuth, err)
		return
	}
	if reg.MaxEpoch > epoch {
		c.s.seeEpoch(reg.MaxEpoch)
		c.reject("stale_epoch", intranet.CodeStaleEpoch, fmt.Errorf("peer has seen epoch %d, this leader is %d", reg.MaxEpoch, epoch))
		return
	}
	if err := c.s.register(c, reg.Info, epoch); err != nil {
		c.s.met.rejected.WithLabelValues("not_leader").Inc()
		c.closeWith(intranet.CodeNotLeader, err.Error())
		return
	}
	if reg.EarlyHeartbeats {
		// The registration is read: say so at once with a heartbeat, so
		// the node's wait for its snapshot is extended now rather than
		// after its own first ping (an interval later), however long the
		// snapshot takes on a busy server.
		f, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: c.s.now().UnixNano()})
		c.out.Urgent(f)
	}

	silence := time.Duration(cfg.PingMisses) * cfg.PingInterval
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(silence))
		kind, p, err := r.ReadFrame()
		if err != nil {
			c.readFailed(err, false)
			return
		}
		switch kind {
		case wire.KindPing:
			var m pb.Ping
			if err := m.Unmarshal(p); err != nil {
				c.reject("malformed", intranet.CodeMalformed, fmt.Errorf("%w: ping: %v", common.ErrBadInput, err))
				c.s.unregister(c, true, "malformed frame")
				return
			}
			// Answered ahead of queued events; not before the first
			// snapshot (which must then be the first frame after
			// Register) unless the node accepts early heartbeats: then
			// the pongs tell it the registration is making progress
			// while a busy leader prepares its snapshot.
			if reg.EarlyHeartbeats || c.synced.Load() {
				f, _ := wire.Frame(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
				c.out.Urgent(f)
			}
		case wire.KindPong:
		case wire.KindUpdateSelf:
			var m pb.UpdateSelf
			if err := m.Unmarshal(p); err != nil || len(m.Overload) > intranet.MaxOverload || len(m.Version) > intranet.MaxVersion {
				c.reject("malformed", intranet.CodeMalformed, fmt.Errorf("%w: update: bad frame", common.ErrBadInput))
				c.s.unregister(c, true, "malformed frame")
				return
			}
			c.s.update(c, &m)
		case wire.KindSyncRequest:
			c.s.resync(c)
		case wire.KindLeave:
			c.s.unregister(c, false, "left")
			c.closeWith(intranet.CodeShutdown, "goodbye")
			return
		default:
			c.reject("unexpected", intranet.CodeUnexpected, fmt.Errorf("%w: unexpected %s frame", common.ErrBadInput, kind))
			c.s.unregister(c, true, "unexpected frame")
			return
		}
	}
}

// readFailed classifies a read error, logs it and, after registration,
// reports the member failed.
func (c *session) readFailed(err error, handshake bool) {
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		c.reject("too_large", intranet.CodeTooLarge, err)
	case errors.Is(err, wire.ErrFrameTooShort):
		c.reject("malformed", intranet.CodeMalformed, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if handshake {
			c.reject("handshake", intranet.CodeHandshake, errors.New("no registration before the handshake deadline"))
		} else {
			c.reject("heartbeat", intranet.CodeHeartbeat, errors.New("peer silent for too long"))
		}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("peer closed the connection")
	default:
		c.log.WithError(err).Info("connection lost")
	}
	if !handshake {
		c.s.unregister(c, true, "connection lost")
	}
}

// register adds the member. The newcomer is owed a snapshot and the
// others a join (or an update when the ID was already known: a restarted
// node replaces its former session without a leave); both go out at the
// next flush.
func (s *Server) register(c *session, info *pb.NodeInfo, epoch uint64) error {
	id, _ := common.NodeIDFromBytes(info.Id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.servingLocked() || s.rec.Epoch != epoch {
		return errors.New("leadership changed during the handshake, or the lease is not confirmed")
	}
	c.id, c.registered = id, true
	c.log = c.log.WithFields(logrus.Fields{"node": id.String(), "type": common.NodeType(info.Type).String()})
	if old, replaced := s.fan.join(id, c, info); replaced {
		old.gone = true
		old.closeWith(intranet.CodeReplaced, "replaced by a new session of the same node")
		old.log.Info("session replaced by a new registration")
		s.met.leaves.WithLabelValues("replaced").Inc()
	}
	s.kickFlush()
	s.met.registrations.Inc()
	s.met.members.Set(float64(s.fan.len()))
	c.log.Info("registered")
	return nil
}

// unregister removes a member once (a replaced session is already gone).
func (s *Server) unregister(c *session, failed bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.registered || c.gone {
		return
	}
	c.gone = true
	if _, ok := s.fan.leave(c.id, c, failed); !ok {
		return
	}
	s.kickFlush()
	s.met.members.Set(float64(s.fan.len()))
	label := "graceful"
	if failed {
		label = "failed"
	}
	s.met.leaves.WithLabelValues(label).Inc()
	c.log.WithField("reason", reason).Info("member gone")
}

func (s *Server) update(c *session, u *pb.UpdateSelf) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fan.update(c.id, c, u) {
		s.kickFlush()
	}
}

func (s *Server) resync(c *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading && c.registered && !c.gone {
		s.fan.want(c) // sent by the next flush, once the lease is confirmed
		s.kickFlush()
	}
}

// kickFlush asks the flush loop for a flush soon. It never blocks.
func (s *Server) kickFlush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// flushLoop sends the membership changes in batches: woken by a change, it
// waits for more to gather (EventDelay, longer with many members: see
// batchDelay), then hands the batch and the owed
// snapshots to the peers' queues. Every buffer is shared by all its
// recipients, so a flush costs one queue append per peer, not a copy.
func (s *Server) flushLoop() {
	defer s.wg.Done()
	t := time.NewTimer(0)
	<-t.C
	defer t.Stop()
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			return
		}
		s.mu.Lock()
		n := s.fan.len()
		s.mu.Unlock()
		t.Reset(batchDelay(n, s.cfg.EventDelay))
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
		s.mu.Lock()
		if s.servingLocked() {
			s.flushLocked()
		} // else held: the next confirmed renewal kicks a flush
		s.mu.Unlock()
	}
}

// flushLocked delivers one flush; s.mu must be held.
func (s *Server) flushLocked() {
	p := s.fan.flush()
	for _, c := range p.FirstTo {
		// Urgent: nothing is queued yet but the Hello, and the snapshot
		// must come before any heartbeat.
		c.out.UrgentForce(p.Snapshot)
		c.synced.Store(true)
	}
	for _, c := range p.EventsTo {
		if !c.out.Bulk(p.Events) {
			c.needSync = true
			s.met.dropped.Inc()
		}
	}
	for _, c := range p.ResyncTo {
		c.needSync = false
		c.out.BulkForce(p.Snapshot)
	}
}

// forget drops a finished connection.
func (s *Server) forget(c *session) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if ok {
		s.met.conns.Dec()
	}
}
