package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/resume"
	"github.com/xserver/xserver/login"
)

// client is one player connection. A version 2 session outlives it (see
// session); sess is set when the login or resume succeeds and not changed
// after.
//
// An idle connection holds no goroutine stack of its own beyond one
// parked read and no buffer: reading is done in bursts. A burst starts
// when the parked read (into a few bytes inside the struct) returns data;
// it takes a pooled buffer, handles every whole frame, reads on only
// while a frame is incomplete, then gives the buffer back and parks again
// on a fresh goroutine, so whatever stack the work grew is freed. Sending
// has its own goroutine only while frames are queued (clientOut). One
// goroutine at a time reads: the parked read hands over to the burst and
// the burst to the next parked read.
type client struct {
	g      *Gateway
	conn   net.Conn
	out    *clientOut
	sess   *session
	kicked atomic.Bool   // stop reading; set before the reader is woken
	state  atomic.Uint32 // stateRunning, or stateParked in the poller (no goroutine)
	lastNs atomic.Int64  // when the last burst started (unix ns), for the poller's idle sweep

	// Owned by the goroutine reading at the time.
	in    []byte // read buffer during a burst; nil while parked
	r, w  int    // unread bytes are in[r:w]
	armed time.Time
	// lingerDl: the read deadline set is a linger's, ending then (unix
	// ns); 0: it is the idle deadline (or none).
	lingerDl int64
	// chatty: this burst's first bytes came within lingerFor of the
	// previous burst's, so the burst waits a little for more before it
	// parks (see linger).
	chatty bool
	peek   [peekSize]byte

	mu     sync.Mutex // guards endWhy, fate, stopWait
	endWhy string
	fate   connFate // what ending this connection does to its session
	// stopWait is closed when the connection is finished while its
	// reader waits for the nodes after a resume from another gateway.
	stopWait chan struct{}
}

// Reader states: a goroutine reads (or is parked in a read), or the
// connection is parked in the gateway's poller with no goroutine.
const (
	stateRunning uint32 = iota
	stateParked
)

// peekSize is what a parked read takes at once: enough for a ping.
const peekSize = 16

// inSize is the pooled read buffer's size; a longer frame gets a buffer
// of its own for as long as it is read.
const inSize = 4 << 10

var inPool = sync.Pool{New: func() any { b := make([]byte, inSize); return &b }}

// errParked is next's answer when no byte is buffered: park.
var errParked = errors.New("gateway: nothing buffered")

// connFate says what the end of a connection does to its session.
type connFate uint8

const (
	fateDefault  connFate = iota // detach a resumable session, end any other
	fateEnd                      // end the session (kick, idle, bad input)
	fateReplaced                 // a newer login took the account: no lose-account here
	fateMoved                    // the session went on elsewhere (resumed on another connection or gateway)
	fateKeep                     // the gateway is draining: leave the session for a resume elsewhere
)

func newClient(g *Gateway, conn net.Conn) *client {
	c := &client{g: g, conn: conn}
	c.out = newClientOut(conn, g.cfg.WriteTimeout, g.cfg.ClientQueueBytes, c.written)
	return c
}

// written runs when the send queue is finished: everything queued (a kick
// included) is written, or never will be. The reader is woken so the
// connection ends.
func (c *client) written(err error) {
	if err != nil {
		c.logger().WithError(err).Debug("client write failed")
		c.setWhy("write failed")
	}
	c.kicked.Store(true)
	c.mu.Lock()
	if c.stopWait != nil {
		close(c.stopWait)
		c.stopWait = nil
	}
	c.mu.Unlock()
	c.wake()
}

// wake makes the reader look at c.kicked now: a parked read returns, a
// connection parked in the poller gets a burst.
func (c *client) wake() {
	_ = c.conn.SetReadDeadline(time.Now())
	c.unpark()
}

// unpark starts a burst for a connection parked in the poller (an event,
// the idle sweep or a wake-up); a no-op otherwise.
func (c *client) unpark() {
	if c.state.CompareAndSwap(stateParked, stateRunning) {
		go c.polled()
	}
}

func (c *client) lastRead() time.Time { return time.Unix(0, c.lastNs.Load()) }

// logger is the connection's log context, built when a line is written.
func (c *client) logger() logrus.FieldLogger {
	l := c.g.log.WithField("client", c.conn.RemoteAddr().String())
	if s := c.sess; s != nil {
		l = l.WithField("account", s.account)
	}
	return l
}

// kick queues a kick frame and ends the connection once it is written.
// fate says what happens to the session.
func (c *client) kickWith(code uint16, reason string, fate connFate) {
	c.mu.Lock()
	if c.endWhy == "" {
		c.endWhy = wire.CodeText(code)
		c.fate = fate
	}
	c.mu.Unlock()
	noteCloseCode(c.conn, code)
	// The flag first: the reader checks it after arming its deadline, and
	// the wake-up (written, once the kick is out) comes after the flag.
	c.kicked.Store(true)
	c.out.CloseWith(wire.AppendCoded(nil, wire.KindClientKick, code, reason))
	// The queue wakes the reader once the kick is written: waking it now
	// would let a WebSocket close before the kick goes out. A client too
	// slow to read will not read the kick either: stop it at once.
	if code == wire.CodeSlow {
		c.wake()
	}
}

// kick ends the connection and its session.
func (c *client) kick(code uint16, reason string) { c.kickWith(code, reason, fateEnd) }

func (c *client) setWhy(why string) {
	c.mu.Lock()
	if c.endWhy == "" {
		c.endWhy = why
	}
	c.mu.Unlock()
}

func (c *client) ending() (string, connFate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	why := c.endWhy
	if why == "" {
		why = "disconnect"
	}
	return why, c.fate
}

// run serves a new connection: the login or resume (its Redis work grows
// this goroutine's stack, which ends with it), then the first burst.
func (c *client) run() {
	if !c.handshake() {
		c.end()
		return
	}
	c.lastNs.Store(time.Now().UnixNano())
	c.arm()
	c.burst()
}

// end closes the connection once the reader stopped: the session learns
// of it, what is queued is written (at most WriteTimeout), the socket is
// closed and the gateway forgets the connection.
func (c *client) end() {
	c.release()
	if p := c.g.poll; p != nil {
		p.forget(c)
	}
	if s := c.sess; s != nil {
		c.finish(s)
	}
	c.out.Close()
	select {
	case <-c.out.Done():
	case <-time.After(c.g.cfg.WriteTimeout):
	}
	_ = c.conn.Close()
	<-c.out.Done()
	c.g.connEnded(c.conn)
}

// finish applies the connection's end to its session.
func (c *client) finish(s *session) {
	why, fate := c.ending()
	switch fate {
	case fateMoved:
		return
	case fateReplaced:
		s.end("replaced", false)
		return
	case fateKeep:
		if s.v2 && s.window > 0 {
			s.detach(c)
			return
		}
	case fateDefault:
		if s.v2 && s.window > 0 {
			s.detach(c)
			return
		}
	}
	s.mu.Lock()
	mine := s.conn == c
	s.mu.Unlock()
	if mine {
		s.end(why, true)
	}
}

// next returns the next whole frame. It reads from the connection only
// while a frame is incomplete, unless block is set; with nothing buffered
// and block unset it returns errParked. The payload aliases the read
// buffer until the next call.
func (c *client) next(block bool) (wire.Kind, []byte, error) {
	max := c.g.cfg.MaxFrame
	for {
		avail := c.in[c.r:c.w]
		need := 4
		if len(avail) >= 4 {
			n := int(binary.BigEndian.Uint32(avail))
			if n < 2 {
				return 0, nil, fmt.Errorf("%w: length %d", wire.ErrFrameTooShort, n)
			}
			if n > max {
				return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", wire.ErrFrameTooLarge, n, max)
			}
			if len(avail) >= 4+n {
				c.r += 4 + n
				return wire.Kind(binary.BigEndian.Uint16(avail[4:6])), avail[6 : 4+n], nil
			}
			need = 4 + n
		}
		if len(avail) == 0 && !block {
			return 0, nil, errParked
		}
		c.room(need)
		n, err := c.conn.Read(c.in[c.w:])
		c.w += n
		if err != nil && n == 0 && c.lingerDl != 0 && !c.kicked.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			// The short deadline of a linger ran out within a frame: the
			// rest of a frame may take as long as the idle window allows.
			c.armIdle()
			continue
		}
		if err != nil && n == 0 {
			if c.r != c.w && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
}

// room makes the read buffer hold at least need bytes from c.r on.
func (c *client) room(need int) {
	if c.in == nil {
		c.in = *inPool.Get().(*[]byte)
		c.r, c.w = 0, 0
	}
	if len(c.in)-c.r >= need && c.w < len(c.in) {
		return
	}
	if need > len(c.in) {
		nb := make([]byte, need)
		n := copy(nb, c.in[c.r:c.w])
		c.release()
		c.in, c.r, c.w = nb, 0, n
		return
	}
	copy(c.in, c.in[c.r:c.w])
	c.w -= c.r
	c.r = 0
}

// release gives the read buffer back (unread bytes are dropped).
func (c *client) release() {
	if c.in != nil && len(c.in) == inSize {
		b := c.in
		inPool.Put(&b)
	}
	c.in, c.r, c.w = nil, 0, 0
}

// handshake reads the login or resume; false ends the connection.
func (c *client) handshake() bool {
	cfg := &c.g.cfg
	_ = c.conn.SetReadDeadline(time.Now().Add(cfg.LoginTimeout))
	kind, p, err := c.next(true)
	if err != nil {
		c.readFailed(err, true)
		return false
	}
	switch kind {
	case wire.KindClientLogin:
		lg, err := wire.DecodeLogin(p)
		if err == nil {
			err = login.ValidateAccount(lg.Account)
		}
		if err != nil {
			c.fail(wire.CodeBadFrame, "bad_frame", err)
			return false
		}
		if !c.login(lg) {
			return false
		}
	case wire.KindClientResume:
		rs, err := wire.DecodeResume(p)
		if err == nil {
			err = login.ValidateAccount(rs.Account)
		}
		if err != nil {
			c.fail(wire.CodeBadFrame, "bad_frame", err)
			return false
		}
		if !c.resume(&rs) {
			return false
		}
	default:
		c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: %s frame before login", common.ErrBadInput, kind))
		return false
	}
	s := c.sess
	if ready := s.readyCh(); ready != nil {
		// Resumed from another gateway: client messages wait until the
		// nodes said which ones they already processed.
		// A kick (another resume took the session) ends the wait once it
		// is written.
		_ = c.conn.SetReadDeadline(time.Time{})
		stop := make(chan struct{})
		c.mu.Lock()
		c.stopWait = stop
		c.mu.Unlock()
		if !c.kicked.Load() {
			t := time.NewTimer(c.g.resumeWait())
			select {
			case <-ready:
			case <-stop:
			case <-t.C:
				s.finishResume(true)
			}
			t.Stop()
		}
		c.mu.Lock()
		c.stopWait = nil
		c.mu.Unlock()
	}
	return true
}

// burst handles every whole frame buffered (reading on while one is
// incomplete), then parks the connection on a fresh goroutine.
func (c *client) burst() {
	var acks []wire.Ack
	for {
		if c.kicked.Load() {
			c.end()
			return
		}
		kind, p, err := c.next(false)
		if err == errParked {
			if !c.chatty {
				break
			}
			more, err := c.linger()
			if err != nil {
				c.readFailed(err, false)
				c.end()
				return
			}
			if !more {
				break
			}
			continue
		}
		if err != nil {
			c.readFailed(err, false)
			c.end()
			return
		}
		if !c.handle(kind, p, &acks) {
			c.end()
			return
		}
	}
	c.release()
	if p := c.g.poll; p != nil {
		c.state.Store(stateParked)
		if p.park(c) {
			c.g.met.parks.Inc()
			// A kick that found the connection running may have missed
			// it parking: look once more now that it is parked.
			if c.kicked.Load() {
				c.unpark()
			}
			return
		}
		if !c.state.CompareAndSwap(stateParked, stateRunning) {
			return // woken meanwhile: that burst reads on
		}
	}
	go c.park()
}

// polled runs when the poller saw c's socket readable (or woke it): it
// takes what the socket holds without waiting and runs a burst; with
// nothing there it times a silent connection out or parks it again.
func (c *client) polled() {
	if c.kicked.Load() {
		c.end()
		return
	}
	c.arm()
	c.room(1)
	n, err := readNow(c.conn, c.in[c.w:])
	c.w += n
	switch {
	case n > 0:
		c.noteRead()
		c.burst()
	case errors.Is(err, syscall.EAGAIN):
		if d := c.g.cfg.Idle; d > 0 && time.Since(c.lastRead()) > d {
			c.readFailed(os.ErrDeadlineExceeded, false)
			c.end()
			return
		}
		c.burst() // nothing buffered: parks again
	default:
		if err == nil {
			err = io.ErrNoProgress
		}
		c.readFailed(err, false)
		c.end()
	}
}

// noteRead records that a burst starts with fresh bytes, and whether
// they came soon enough after the last burst's to make it linger.
func (c *client) noteRead() {
	now := time.Now().UnixNano()
	c.chatty = now-c.lastNs.Load() < int64(lingerFor)
	c.lastNs.Store(now)
}

// lingerFor is how long a burst of a chatty connection waits for the
// next bytes, blocked in an ordinary read, before it parks. A client
// exchanging messages more often than this (a game client in play, at 2 Hz and
// up, a request/response loop) keeps one reading goroutine and its read
// buffer, and each message is read where the runtime's poller wakes that
// goroutine, with no hand-off; a connection quiet for longer parks and
// holds neither.
const lingerFor = 500 * time.Millisecond

// linger waits for more bytes until a quiet spell of between lingerFor/2
// and lingerFor: more is true when some came or the connection was kicked
// (the burst's loop ends it), false when the wait ran out. Its deadline is
// set once and kept while bytes keep coming (moved only once less than
// lingerFor/2 of it is left), so a connection in play pays no timer
// update per message; a read within a frame that meets it goes on under
// the idle deadline (see next).
func (c *client) linger() (more bool, err error) {
	now := time.Now().UnixNano()
	if c.lingerDl-now < int64(lingerFor/2) {
		c.lingerDl = now + int64(lingerFor)
		_ = c.conn.SetReadDeadline(time.Unix(0, c.lingerDl))
		c.armed = time.Time{} // the idle deadline is re-armed by the next arm
	}
	if c.kicked.Load() {
		return true, nil
	}
	c.room(1)
	n, err := c.conn.Read(c.in[c.w:])
	c.w += n
	switch {
	case n > 0:
		c.lastNs.Store(time.Now().UnixNano())
		return true, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.lingerDl = 0
		c.chatty = false
		return c.kicked.Load(), nil
	case err == nil:
		return false, io.ErrNoProgress
	default:
		return false, err
	}
}

// arm pushes the read deadline to the idle window, at most once per
// quarter of it: a silent client is dropped between d and 1.25·d after
// its last frame.
func (c *client) arm() {
	if d := c.g.cfg.Idle; d > 0 {
		if now := time.Now(); now.Sub(c.armed) >= d/4 {
			c.armed = now
			c.lingerDl = 0
			_ = c.conn.SetReadDeadline(now.Add(d + d/4))
		}
	} else if c.lingerDl != 0 {
		c.lingerDl = 0
		_ = c.conn.SetReadDeadline(time.Time{})
	}
}

// armIdle replaces a linger's deadline with the idle window's.
func (c *client) armIdle() {
	c.armed = time.Time{}
	c.arm()
}

// park waits for the connection's next bytes with the idle deadline
// armed, then runs a burst.
func (c *client) park() {
	c.arm()
	if c.kicked.Load() {
		c.end()
		return
	}
	n, err := c.conn.Read(c.peek[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		c.readFailed(err, false)
		c.end()
		return
	}
	c.noteRead()
	c.room(n)
	c.w += copy(c.in[c.w:], c.peek[:n])
	c.burst()
}

// handle acts on one frame after the login; false ends the connection.
func (c *client) handle(kind wire.Kind, p []byte, acks *[]wire.Ack) bool {
	s := c.sess
	switch {
	case kind == wire.KindClientData && !s.v2:
		cmd, data, err := wire.DecodeData(p)
		if err != nil {
			c.fail(wire.CodeBadFrame, "bad_frame", err)
			return false
		}
		return c.relay(s, 0, cmd, data)
	case kind == wire.KindClientMsg && s.v2:
		seq, cmd, data, err := wire.DecodeMsg(p)
		if err != nil {
			c.fail(wire.CodeBadFrame, "bad_frame", err)
			return false
		}
		return c.relay(s, seq, cmd, data)
	case kind == wire.KindClientLogout && s.v2:
		if len(p) != 0 {
			c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: logout of %d bytes", common.ErrBadInput, len(p)))
			return false
		}
		c.mu.Lock()
		c.endWhy, c.fate = "logout", fateEnd
		c.mu.Unlock()
		return false
	case kind == wire.KindClientAck && s.v2:
		var err error
		if *acks, err = wire.DecodeAck((*acks)[:0], p); err != nil {
			c.fail(wire.CodeBadFrame, "bad_frame", err)
			return false
		}
		s.onClientAck(*acks)
		return true
	case kind == wire.KindClientPing:
		if len(p) != 8 {
			c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: ping of %d bytes", common.ErrBadInput, len(p)))
			return false
		}
		c.out.Append(append(wire.AppendHeader(make([]byte, 0, wire.HeaderSize+8), wire.KindClientPong, 8), p...))
		return true
	default:
		c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: unexpected %s frame", common.ErrBadInput, kind))
		return false
	}
}

// notice queues a ClientError. A client whose queue has no room for it
// is not reading: it is disconnected as too slow rather than left to
// miss, silently, that a message was not delivered.
func (c *client) notice(frame []byte) {
	if !c.out.Append(frame) {
		c.tooSlow()
	}
}

// tooSlow disconnects a client that does not read what it is sent.
func (c *client) tooSlow() {
	c.g.met.drops.WithLabelValues("slow_client").Inc()
	c.g.slowLog.Warn(c.logger(), "client cannot keep up; disconnecting")
	c.kick(wire.CodeSlow, "too slow to read")
}

// fail closes the connection for bad input, with a kick frame, a
// rate-limited log line and a counter.
func (c *client) fail(code uint16, metric string, err error) {
	c.g.met.drops.WithLabelValues(metric).Inc()
	c.g.badLog.Warn(c.logger().WithError(err).WithField("code", code), "closing client connection")
	c.kick(code, err.Error())
}

func (c *client) readFailed(err error, handshake bool) {
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		c.fail(wire.CodeTooLarge, "too_large", err)
	case errors.Is(err, wire.ErrFrameTooShort):
		c.fail(wire.CodeBadFrame, "bad_frame", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.mu.Lock()
		why := c.endWhy
		c.mu.Unlock()
		if why != "" { // we kicked it ourselves
			return
		}
		if handshake {
			c.fail(wire.CodeLoginTimeout, "login_timeout", errors.New("no login before the deadline"))
		} else {
			c.g.met.drops.WithLabelValues("idle").Inc()
			c.kick(wire.CodeIdle, "idle timeout")
		}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.setWhy("disconnect")
	default:
		c.setWhy("disconnect")
		c.logger().WithError(err).Debug("client connection lost")
	}
}

// newSessionID returns a random non-zero session id and, for version 2, a
// resume secret.
func newSessionID() (uint64, [wire.SecretSize]byte, error) {
	var b [8 + wire.SecretSize]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, [wire.SecretSize]byte{}, err
		}
		if id := binary.BigEndian.Uint64(b[:8]); id != 0 {
			var sec [wire.SecretSize]byte
			copy(sec[:], b[8:])
			return id, sec, nil
		}
	}
}

// login checks the token, records the new session (taking the account
// over from any older one) and loads the bindings.
func (c *client) login(lg wire.Login) bool {
	g := c.g
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
	defer cancel()
	err := login.VerifyToken(ctx, g.cfg.Redis, g.cfg.Cluster, lg.Account, lg.Token)
	var b map[common.NodeType]common.NodeID
	if err == nil {
		b, err = login.LoadBindings(ctx, g.cfg.Redis, g.cfg.Cluster, lg.Account)
		if len(b) == 0 {
			b = nil // an idle session keeps no empty map
		}
	}
	v2 := lg.Version == wire.ProtocolV2
	sid, secret, rerr := newSessionID()
	if err == nil && rerr != nil {
		err = fmt.Errorf("%w: %v", login.ErrUnavailable, rerr)
	}
	s := g.newSession(lg.Account, sid, v2, b)
	if v2 {
		s.secret = login.HashSecret(secret[:])
	}
	var old *login.SessionRecord
	mu := g.accountLock(lg.Account)
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		old, err = g.sessions.Create(ctx, lg.Account, s.record(), g.recordTTL(s))
	}
	if err != nil {
		code, metric := wire.CodeUnavailable, "unavailable"
		if errors.Is(err, login.ErrBadToken) {
			code, metric = wire.CodeBadToken, "bad_token"
		}
		g.met.logins.WithLabelValues(metric).Inc()
		g.badLog.Warn(c.logger().WithError(err).WithField("account", lg.Account), "login refused")
		c.setWhy("login refused")
		noteCloseCode(c.conn, code)
		c.out.CloseWith(wire.AppendCoded(nil, wire.KindClientLoginAck, code, wire.CodeText(code)))
		return false
	}
	// Other gateways: their session of this account is replaced.
	if err := g.cfg.Redis.Publish(ctx, g.kickCh, announce(g.node.GetID(), lg.Account, sid)).Err(); err != nil {
		c.logger().WithError(err).Debug("could not announce the login; an older session elsewhere ends at its next refresh")
		g.flushOwed.Store(true) // nodes may have found the account offline
	}
	if !g.addSession(s, c) {
		noteCloseCode(c.conn, wire.CodeShutdown)
		c.out.CloseWith(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeShutdown, wire.CodeText(wire.CodeShutdown)))
		return false
	}
	c.sess = s
	g.met.logins.WithLabelValues("ok").Inc()

	s.mu.Lock()
	// Where the client's broadcasts start is fixed before it learns it is
	// logged in: a broadcast it causes once it knows (another client's
	// reaction, a node's answer) comes after this position and reaches it.
	s.bpos, s.bready = g.bring.last(), true
	c.out.Append(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeOK, "ok"))
	if v2 {
		c.out.Append(wire.AppendSession(nil, &wire.Session{ID: sid, Secret: secret, WindowMs: s.windowMs(), MaxUnacked: wire.MaxUnacked}))
		c.out.Append(wire.AppendStreamOpen(nil, 0, g.node.GetID(), g.incarnation))
	}
	if len(s.groups) == 0 && old != nil && old.ID != sid {
		// Replacing a session held by another gateway: its memberships
		// carry over.
		s.inheritGroupsLocked(old.Groups)
	}
	// Owners of the previous session that this one is not bound to lose
	// the account; this one's owners learn the new session.
	if old != nil && old.ID != sid {
		for t, id := range old.Bindings {
			if s.bindings[t] != id {
				if l := g.link(id); l != nil {
					l.out.Append(wire.AppendLose(nil, lg.Account, old.ID, wire.LoseMoved))
				}
			}
		}
	}
	s.tellBoundLocked(func(*link) []byte {
		return wire.AppendSessionOnline(nil, lg.Account, sid, s.waitMs(), 0)
	})
	s.mu.Unlock()
	c.logger().WithField("resume", v2 && s.window > 0).Info("client logged in")
	return true
}

// resume takes a session over: on this gateway (a lost connection) or from
// another one (it died, or the client moved). The session record in Redis
// decides, even for a session held here: another gateway may have taken
// it over since without this one having heard yet. Only when Redis cannot
// answer, or lost the record, does this gateway's own copy decide.
func (c *client) resume(r *wire.Resume) bool {
	g := c.g
	self := g.node.GetID()

	refuse := func(code uint16, metric string, err error) bool {
		g.met.resumes.WithLabelValues(metric).Inc()
		g.badLog.Warn(c.logger().WithError(err).WithFields(logrus.Fields{"code": code, "account": r.Account}), "resume refused")
		c.setWhy("resume refused")
		c.out.CloseWith(wire.AppendResumed(nil, &wire.Resumed{Code: code, Text: wire.CodeText(code)}))
		return false
	}
	mu := g.accountLock(r.Account)
	mu.Lock()
	defer mu.Unlock()
	local := g.session([]byte(r.Account))
	if local != nil && local.sid != r.ID {
		local = nil
	}
	if local != nil && (!local.v2 || local.window == 0 || subtle.ConstantTimeCompare(local.secret[:], hashOf(r.Secret[:])) != 1) {
		return refuse(wire.CodeBadResume, "bad_secret", errors.New("secret does not match"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
	defer cancel()
	tctx := ctx
	if local != nil {
		// A resume here must not wait long on a Redis that does not answer.
		var tcancel context.CancelFunc
		tctx, tcancel = context.WithTimeout(ctx, holderCheckTimeout)
		defer tcancel()
	}
	rec, err := g.sessions.Takeover(tctx, r.Account, r.ID, r.Secret[:], r.Attempt, self, g.recordTTLFor(true, g.cfg.ResumeWindow))
	if f := g.afterTakeover.Load(); f != nil {
		(*f)(r.Attempt)
	}
	switch {
	case err == nil && local != nil && rec.Gateway == self:
		return c.resumeLocal(local, r, false, refuse)
	case err == nil:
		if local != nil {
			// This copy is stale: the session was resumed on another
			// gateway (rec.Gateway) since, and its announcement has not
			// arrived. It is taken back from there like any other.
			local.takenOver()
		}
	case errors.Is(err, login.ErrStaleResume):
		return refuse(wire.CodeTakenOver, "stale", err)
	case errors.Is(err, login.ErrBadSecret):
		return refuse(wire.CodeBadResume, "bad_secret", err)
	case local != nil && errors.Is(err, login.ErrReplaced):
		// A newer login holds the account; its announcement is on the way.
		local.replaced()
		return refuse(wire.CodeExpired, "expired", err)
	case local != nil:
		// Redis lost the record (the next refresh writes it back) or
		// cannot answer: this gateway holds the session as far as it knows.
		c.logger().WithError(err).Debug("resuming on this gateway's own record")
		return c.resumeLocal(local, r, true, refuse)
	case errors.Is(err, login.ErrNoSession):
		return refuse(wire.CodeExpired, "expired", err)
	default:
		return refuse(wire.CodeUnavailable, "unavailable", err)
	}
	if err := g.cfg.Redis.Publish(ctx, g.kickCh, announce(self, r.Account, r.ID)).Err(); err != nil {
		c.logger().WithError(err).Debug("could not announce the takeover; the old holder lets go at its next refresh")
		g.flushOwed.Store(true) // nodes may have found the account offline
	}
	s := g.newSession(r.Account, r.ID, true, rec.Bindings)
	s.window, s.secret, s.attempt = rec.Window, rec.SecretHash, r.Attempt
	if !g.addSession(s, c) {
		return refuse(wire.CodeShutdown, "shutdown", errors.New("gateway shutting down"))
	}
	c.sess = s
	s.adopt(c, r, rec.Gateway, rec.Groups)
	g.met.resumes.WithLabelValues("moved").Inc()
	c.logger().WithField("from", rec.Gateway.String()).Info("session resumed from another gateway")
	return true
}

// holderCheckTimeout bounds the Redis round trip of a resume on the
// gateway already holding the session; past it, the gateway's own copy
// decides.
const holderCheckTimeout = 500 * time.Millisecond

// resumeLocal attaches c to s, held here. record: Redis could not record
// the attempt in the takeover, so it is recorded in the background.
func (c *client) resumeLocal(s *session, r *wire.Resume, record bool, refuse func(uint16, string, error) bool) bool {
	switch code := s.resumeHere(c, r, record); code {
	case wire.CodeOK:
	case wire.CodeTakenOver:
		return refuse(code, "stale", errors.New("a later resume of this session was accepted"))
	default:
		return refuse(code, "expired", errors.New("session ended meanwhile"))
	}
	c.sess = s
	c.g.met.resumes.WithLabelValues("here").Inc()
	return true
}

func hashOf(secret []byte) []byte { h := login.HashSecret(secret); return h[:] }

// relay routes one client message to its node; false ends the connection.
func (c *client) relay(s *session, seq uint32, cmd uint64, data []byte) bool {
	g := c.g
	start := g.sampleStart()
	t := cmd / g.cfg.CmdOffset
	if t < uint64(common.FirstGameType) || t > 0xffff {
		c.fail(wire.CodeBadCmd, "bad_cmd", fmt.Errorf("%w: cmd %d names node type %d", common.ErrBadInput, cmd, t))
		return false
	}
	g.met.framesIn.Inc()
	g.met.bytesIn.Add(float64(len(data)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq != 0 {
		switch s.core.OnMsg(seq) {
		case resume.MsgDuplicate:
			g.met.drops.WithLabelValues("client_resent").Inc()
			return true
		case resume.MsgSkip:
			if f, ok := s.core.AckDue(16, false); ok {
				c.out.Append(wire.AppendMsgAck(nil, f))
			}
			return true
		case resume.MsgBad:
			c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: message %d out of sequence (expected %d)", common.ErrBadInput, seq, s.core.Floor()+1))
			return false
		}
	}
	typ := common.NodeType(t)
	if lim := g.cfg.RateLimits; len(lim) > 0 {
		now := g.clock()
		if s.rate == nil {
			s.rate = newBuckets(lim, now)
		}
		size := frameOverhead + len(data)
		if seq == 0 {
			size -= 4
		}
		if i := s.rate.take(lim, now, typ, cmd, size); i >= 0 {
			return c.rateLimitedLocked(s, &g.rateLimits[i], seq, cmd)
		}
	}
	if !s.forwardLocked(inflight{s: s, csq: seq, cmd: cmd - t*g.cfg.CmdOffset, full: cmd, typ: typ}, data) {
		g.met.drops.WithLabelValues("no_node").Inc()
		c.notice(wire.AppendClientError(nil, wire.CodeNoNode, cmd))
		if seq != 0 {
			// It counts as processed: the tick acknowledges it (ClientMsgAck).
			s.core.Done(seq)
			s.markDirtyLocked()
		}
		return true
	}
	g.sampleEnd(start)
	return true
}

// rateLimitedLocked handles a message over limit r: dropped with a
// ClientError (acknowledged like a processed message) or, when the limit
// says so, the end of the session with a kick. false ends the connection.
func (c *client) rateLimitedLocked(s *session, r *rateLimit, seq uint32, cmd uint64) bool {
	g := c.g
	if r.Kick {
		r.kicks.Inc()
		g.rateLog.Warn(c.logger().WithField("limit", r.String()), "client over its rate limit; kicking")
		c.kick(wire.CodeRateLimited, wire.CodeText(wire.CodeRateLimited))
		return false
	}
	r.errors.Inc()
	g.rateLog.Warn(c.logger().WithField("limit", r.String()), "client over its rate limit; dropping its messages")
	c.notice(wire.AppendClientError(nil, wire.CodeRateLimited, cmd))
	if seq != 0 {
		s.core.Done(seq)
		s.markDirtyLocked()
	}
	return true
}

// announce is the logins channel message: "<gateway id> <sid hex> <account>".
func announce(gw common.NodeID, account string, sid uint64) string {
	return login.Announcement{Gateway: gw, Sid: sid, Account: account}.String()
}
