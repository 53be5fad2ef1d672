package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/resume"
)

// Errors.
var (
	// ErrClosed: Close was called, or the session ended.
	ErrClosed = errors.New("client: closed")
	// ErrConfig: the Config cannot work.
	ErrConfig = errors.New("client: invalid config")
)

// KickError is the end of a session the gateway decided: Code is a wire
// code (wire.CodeDuplicate, wire.CodeKicked, wire.CodeExpired, …). A
// login refusal is a KickError too (wire.CodeBadToken, …).
type KickError struct {
	Code   uint16
	Reason string
}

func (e *KickError) Error() string {
	return fmt.Sprintf("client: session ended: %s (code %d): %s", wire.CodeText(e.Code), e.Code, e.Reason)
}

// Message is one message from a node.
type Message struct {
	Cmd  uint64
	Data []byte // the Client's copy
}

// EventKind names a session event.
type EventKind int

// Session events.
const (
	EvConnected    EventKind = iota + 1 // logged in (Gateway set)
	EvDisconnected                      // the connection was lost; resuming (Err set)
	EvResumed                           // resumed (Away, Resent, BroadcastGap, Gateway set)
	EvEnded                             // the session is over (Err set: a *KickError, or ErrClosed)
	EvNotDelivered                      // the gateway could not deliver a message (Code, Cmd set)
	EvShed                              // broadcasts for this client were dropped: it did not read fast enough, or a node's link to the gateway was down (Shed set; 0: an unknown number)
)

// Event is something that happened to the session.
type Event struct {
	Kind         EventKind
	Gateway      string        // the gateway address connected to
	Away         time.Duration // EvResumed: from the loss to the resume
	Resent       int           // EvResumed: messages sent again
	BroadcastGap bool          // EvResumed: broadcasts sent while away may be lost
	Code         uint16        // EvNotDelivered
	Cmd          uint64        // EvNotDelivered
	Shed         int           // EvShed: how many broadcast or group messages were dropped (0: unknown)
	Err          error
}

// Config configures a Client.
type Config struct {
	Account string
	Token   string // the login ticket's token
	// Addr is the gateway to log in at: "host:port" (TCP) or a ws:// or
	// wss:// URL (WebSocket; the path defaults to /ws).
	Addr string
	// Resume asks for a resumable session (protocol version 2, the
	// default); false logs in with version 1 (no resume, no sequencing).
	NoResume bool
	// Gateway is asked for a gateway address to resume at when the last
	// one cannot be reached (it died, or is draining); typically a call to
	// the game's login service. nil: always retry Addr's gateway.
	Gateway func(ctx context.Context) (string, error)
	// BackoffMin and BackoffMax bound the jittered exponential wait
	// between reconnect attempts (defaults 50ms and 2s).
	BackoffMin, BackoffMax time.Duration
	// PingEvery is the ClientPing period (default 5s); a connection silent
	// for 3 periods is considered lost.
	PingEvery time.Duration
	// DialTimeout bounds one connection attempt and its login (default 5s).
	DialTimeout time.Duration
	// MaxFrame is the largest frame accepted from the gateway (default 1 MiB).
	MaxFrame int
	// Buffer is the capacity of the Messages and Events channels (default
	// 1024). A client that does not drain them stalls its reader, and then
	// the gateway.
	Buffer int
	// Rand jitters the backoff (nil: time-seeded).
	Rand *rand.Rand
}

func (c *Config) validate() error {
	if c.Account == "" || len(c.Account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", ErrConfig, c.Account)
	}
	if c.Token == "" || c.Addr == "" {
		return fmt.Errorf("%w: token and address are required", ErrConfig)
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 50 * time.Millisecond
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(2*time.Second, c.BackoffMin)
	}
	if c.PingEvery <= 0 {
		c.PingEvery = 5 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = 1 << 20
	}
	if c.Buffer <= 0 {
		c.Buffer = 1024
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewSource(time.Now().UnixNano()))
	}
	return nil
}

// Client is a player's connection to an xserver cluster. With resume (the
// default), a lost connection is resumed automatically, on the same
// gateway or another one, without losing or repeating a message in either
// direction; Events says when. One goroutine owns the connection; Send is
// safe for concurrent use.
type Client struct {
	cfg  Config
	msgs chan Message
	evs  chan Event
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex // guards core, out, addr, closed, wake, endErr
	core     *resume.Client
	out      *intranet.Outbox // the current connection's queue; nil while away
	cur      net.Conn         // the current connection; nil while away
	draining bool             // the last gateway said it is draining: resume elsewhere
	addr     string
	closed   bool
	endErr   error
	wake     chan struct{} // Send waits on it while the window is full
	// quit is set by a Close made while away, and closed when a resume
	// attaches a connection the logout can go out on.
	quit     chan struct{}
	hurry    chan struct{} // cuts a reconnect's backoff short (Close)
	closeOne sync.Once
}

// Dial connects, logs in and starts the client. It returns once the login
// is accepted (or refused: a *KickError).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, msgs: make(chan Message, cfg.Buffer), evs: make(chan Event, cfg.Buffer),
		stop: make(chan struct{}), done: make(chan struct{}), addr: cfg.Addr, wake: make(chan struct{}),
		hurry: make(chan struct{}, 1)}
	l, err := c.login(ctx)
	if err != nil {
		return nil, err
	}
	c.event(Event{Kind: EvConnected, Gateway: c.addr})
	go c.run(l)
	return c, nil
}

// Messages delivers the nodes' messages, in order.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Events delivers session events. It is closed, after EvEnded, when the
// client stops.
func (c *Client) Events() <-chan Event { return c.evs }

// Done is closed when the client stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the client stopped (nil while it runs).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// Send queues a message to the node type cmd names. With resume, it is
// kept until the cluster acknowledges it and sent again after a lost
// connection, so it is delivered exactly once; Send blocks while
// wire.MaxUnacked messages wait for acknowledgement (until ctx ends). It
// never waits for the network otherwise.
func (c *Client) Send(ctx context.Context, cmd uint64, data []byte) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.core == nil { // version 1
			out := c.out
			c.mu.Unlock()
			if out == nil || !out.Append(wire.AppendData(nil, cmd, data)) {
				return fmt.Errorf("client: not connected")
			}
			return nil
		}
		f, err := c.core.Send(cmd, data)
		if err == nil {
			if c.out != nil {
				c.out.Force(f)
			}
			c.mu.Unlock()
			return nil
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stop:
			return ErrClosed
		}
	}
}

// Drop cuts the current connection abruptly, with no goodbye, as a lost
// network would; a resumable session then resumes. It exists for tests and
// chaos drills.
func (c *Client) Drop() {
	c.mu.Lock()
	conn := c.cur
	c.mu.Unlock()
	if conn == nil {
		return
	}
	if w, ok := conn.(*wsConn); ok && w.raw != nil {
		conn = w.raw // under the WebSocket: no close handshake
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	_ = conn.Close()
}

// wsConn is a WebSocket connection and the TCP connection under it.
type wsConn struct {
	net.Conn
	raw net.Conn
}

// Close logs out — the session ends at once (its nodes get lose-account):
// resume is for lost connections, not for a client that quits — and stops
// the client. Safe twice. Called while the client is between connections
// (resuming after a loss), it makes one more resume at once, waiting for
// it at most DialTimeout, to log out on; when none succeeds, the session
// ends when its resume window passes (lose-account then, once).
func (c *Client) Close() error {
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.closed = true
		if c.core != nil && c.out == nil && !c.ended() {
			q := make(chan struct{})
			c.quit = q
			c.mu.Unlock()
			select {
			case c.hurry <- struct{}{}:
			default:
			}
			t := time.NewTimer(c.cfg.DialTimeout)
			select {
			case <-q:
			case <-c.done:
			case <-t.C:
			}
			t.Stop()
			c.mu.Lock()
			c.quit = nil
		}
		if c.core != nil && c.out != nil {
			c.out.CloseWith(wire.AppendHeader(nil, wire.KindClientLogout, 0))
			out := c.out
			c.mu.Unlock()
			// Let the writer flush the logout, then wait for the gateway
			// to close the connection, as it does once it has the logout
			// (at most a second in all). Closing this side first, with
			// frames unread here, would reset the connection, and a reset
			// can drop the logout before the gateway reads it.
			t := time.NewTimer(time.Second)
			select {
			case <-out.Done():
				select {
				case <-c.done:
				case <-t.C:
				}
			case <-t.C:
			}
			t.Stop()
		} else {
			c.mu.Unlock()
		}
		close(c.stop)
	})
	<-c.done
	return nil
}

// Abandon stops the client without logging out: a resumable session is
// left for its window, as when the connection is lost (a process that
// will resume it from saved state, or a test of the window).
func (c *Client) Abandon() error {
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
	})
	<-c.done
	return nil
}

func (c *Client) event(e Event) {
	select {
	case c.evs <- e:
	case <-c.stop:
	}
}

// dial opens a TCP or WebSocket connection.
func (c *Client) dial(ctx context.Context, addr string) (net.Conn, error) {
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		u := addr
		if i := strings.Index(u[len("ws://"):], "/"); i < 0 {
			u += "/ws"
		}
		// Keep the TCP connection under the WebSocket, so Drop can cut it
		// without a close handshake.
		var raw net.Conn
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, a)
			raw = conn
			return conn, err
		}}}
		ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		ws.SetReadLimit(int64(c.cfg.MaxFrame) + 64)
		return &wsConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), raw: raw}, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return conn, nil
}

// login opens the first connection and logs in.
func (c *Client) login(ctx context.Context) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	conn, err := c.dial(ctx, c.addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	var version uint8
	if !c.cfg.NoResume {
		version = wire.ProtocolV2
	}
	l := newLink(conn, c.cfg.MaxFrame)
	l.out.Force(wire.AppendLoginVersion(nil, c.cfg.Account, c.cfg.Token, version))
	fail := func(err error) (*link, error) { l.close(); return nil, err }
	k, p, err := l.rd.ReadFrame()
	if err != nil {
		return fail(err)
	}
	if k != wire.KindClientLoginAck && k != wire.KindClientKick {
		return fail(fmt.Errorf("client: unexpected %s before the login answer", k))
	}
	code, text, err := wire.DecodeCoded(p)
	if err != nil {
		return fail(err)
	}
	if code != wire.CodeOK || k == wire.KindClientKick {
		return fail(&KickError{Code: code, Reason: text})
	}
	if version == wire.ProtocolV2 {
		k, p, err = l.rd.ReadFrame()
		if err == nil && k != wire.KindClientSession {
			err = fmt.Errorf("client: expected the session frame, got %s", k)
		}
		var s wire.Session
		if err == nil {
			s, err = wire.DecodeSession(p)
		}
		if err != nil {
			return fail(err)
		}
		c.core = resume.NewClient(resume.ClientConfig{}, c.cfg.Account, s)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.out, c.cur = l.out, conn // from here on, Send queues to this connection
	c.mu.Unlock()
	return l, nil
}

// resume opens a connection to addr and presents the session: the resume,
// the unacknowledged messages again, and (since Send queues to the new
// connection from the same moment) every new message after them.
func (c *Client) resume(addr string) (*link, wire.Resumed, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	go func() { // Close interrupts a dial
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return nil, wire.Resumed{}, 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(c.cfg.DialTimeout))
	l := newLink(conn, c.cfg.MaxFrame)
	c.mu.Lock()
	l.out.Force(c.core.ResumeFrames())
	resent := c.core.Unacked()
	c.out, c.cur = l.out, conn
	if c.quit != nil {
		close(c.quit) // Close waits to log out on this connection
		c.quit = nil
	}
	c.mu.Unlock()
	k, p, err := l.rd.ReadFrame()
	var r wire.Resumed
	switch {
	case err != nil:
	case k == wire.KindClientResumed:
		r, err = wire.DecodeResumed(p)
	case k == wire.KindClientKick:
		code, text, _ := wire.DecodeCoded(p)
		r = wire.Resumed{Code: code, Text: text}
	default:
		err = fmt.Errorf("client: unexpected %s before the resume answer", k)
	}
	if err != nil {
		c.detachOut(l.out)
		l.close()
		return nil, r, 0, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return l, r, resent, nil
}

// detachOut stops queueing to out (its connection failed).
func (c *Client) detachOut(out *intranet.Outbox) {
	c.mu.Lock()
	if c.out == out {
		c.out, c.cur = nil, nil
	}
	c.mu.Unlock()
}

// run owns the connection: it serves one, and on its loss resumes with
// jittered, capped backoff until the session resumes or ends.
func (c *Client) run(l *link) {
	defer close(c.done)
	defer close(c.evs)
	var err error
	for {
		err = c.serve(l)
		var ke *KickError
		if errors.As(err, &ke) || c.core == nil || c.isClosed() || c.closing() {
			break
		}
		lost := time.Now()
		c.event(Event{Kind: EvDisconnected, Err: err, Gateway: c.addr})
		l, err = c.reconnect(lost)
		if err != nil {
			break
		}
	}
	if c.isClosed() {
		err = ErrClosed
	}
	c.mu.Lock()
	c.closed = true
	c.endErr = err
	c.mu.Unlock()
	select {
	case c.evs <- Event{Kind: EvEnded, Err: err}:
	default:
	}
}

// closing reports whether Close or Abandon was called.
func (c *Client) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// ended reports whether the client's session is over (run returned).
func (c *Client) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Client) isClosed() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// reconnect resumes the session: on the last gateway first, then on one
// Config.Gateway names, with backoff between attempts.
func (c *Client) reconnect(lost time.Time) (*link, error) {
	delay := c.cfg.BackoffMin
	failures := 0
	c.mu.Lock()
	if c.draining {
		failures, c.draining = 1, false // straight to another gateway
	}
	c.mu.Unlock()
	for {
		addr := c.addr
		if failures > 0 && c.cfg.Gateway != nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
			if a, err := c.cfg.Gateway(ctx); err == nil && a != "" {
				addr = a
			}
			cancel()
		}
		l, r, resent, err := c.resume(addr)
		if err == nil {
			switch r.Code {
			case wire.CodeOK:
				c.mu.Lock()
				c.addr = addr
				c.core.OnResumed(r)
				c.mu.Unlock()
				c.event(Event{Kind: EvResumed, Gateway: addr, Away: time.Since(lost), Resent: resent,
					BroadcastGap: r.Flags&wire.ResumedBroadcastGap != 0})
				return l, nil
			case wire.CodeUnavailable, wire.CodeShutdown, wire.CodeFull:
				c.detachOut(l.out)
				l.close()
				failures++ // try elsewhere
			default:
				c.detachOut(l.out)
				l.close()
				return nil, &KickError{Code: r.Code, Reason: r.Text}
			}
		} else {
			failures++
		}
		j := time.Duration(c.cfg.Rand.Int63n(int64(delay)/2 + 1))
		select {
		case <-time.After(delay/2 + j + delay/4):
		case <-c.hurry: // Close: one more try at once, to log out
		case <-c.stop:
			return nil, ErrClosed
		}
		delay = min(2*delay, c.cfg.BackoffMax)
	}
}

// serve runs one connection until it ends.
func (c *Client) serve(l *link) error {
	conn, rd, out := l.nc, l.rd, l.out
	defer func() {
		c.detachOut(out)
		l.close()
	}()
	// Close and the ping timer interrupt a blocked read.
	tick := time.NewTicker(c.cfg.PingEvery)
	defer tick.Stop()
	readErr := make(chan error, 1)
	frames := make(chan frame, 64)
	go func() {
		for {
			_ = conn.SetReadDeadline(time.Now().Add(3 * c.cfg.PingEvery))
			k, p, err := rd.ReadFrame()
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			frames <- frame{k, append([]byte(nil), p...)}
		}
	}()
	defer func() {
		_ = conn.Close()
		for range frames { // let the reader finish
		}
	}()
	ackTimer := time.NewTimer(time.Hour)
	defer ackTimer.Stop()
	var ping [8]byte
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return <-readErr
			}
			if err := c.handle(f.k, f.p, out); err != nil {
				return err
			}
			c.mu.Lock()
			if c.core != nil {
				if a := c.core.AckDue(time.Now()); a != nil {
					out.Force(a)
				} else if t := c.core.NextAck(); !t.IsZero() {
					ackTimer.Reset(time.Until(t))
				}
			}
			c.mu.Unlock()
		case <-ackTimer.C:
			c.mu.Lock()
			if c.core != nil {
				if a := c.core.AckNow(); a != nil {
					out.Force(a)
				}
			}
			c.mu.Unlock()
		case <-tick.C:
			out.Append(wire.AppendFrame(nil, wire.KindClientPing, ping[:]))
		case <-c.stop:
			return ErrClosed
		}
	}
}

type frame struct {
	k wire.Kind
	p []byte
}

// link is one connection and its writer.
type link struct {
	nc   net.Conn
	rd   *wire.Reader
	out  *intranet.Outbox
	stop chan struct{}
	done chan struct{}
}

func newLink(nc net.Conn, maxFrame int) *link {
	l := &link{nc: nc, rd: wire.NewReader(nc, maxFrame, 0), out: intranet.NewOutbox(64 << 20),
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		if err := l.out.WriteLoop(nc, 10*time.Second, l.stop); err != nil {
			_ = nc.Close()
		}
	}()
	return l
}

// close stops the writer and closes the connection.
func (l *link) close() {
	l.out.Close()
	close(l.stop)
	<-l.done
	_ = l.nc.Close()
}

// handle takes one frame from the gateway.
func (c *Client) handle(k wire.Kind, p []byte, out *intranet.Outbox) error {
	switch k {
	case wire.KindClientData:
		cmd, data, err := wire.DecodeData(p)
		if err != nil {
			return err
		}
		return c.deliver(Message{Cmd: cmd, Data: data})
	case wire.KindClientPush:
		pu, err := wire.DecodePush(p)
		if err != nil {
			return err
		}
		c.mu.Lock()
		fresh, err := c.core.OnPush(time.Now(), pu.Stream, pu.Seq)
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if fresh {
			return c.deliver(Message{Cmd: pu.Cmd, Data: pu.Data})
		}
	case wire.KindClientStream:
		s, err := wire.DecodeStreamOpen(p)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.core.OnStream(s)
		c.mu.Unlock()
	case wire.KindClientStreamEnd:
		id, err := wire.DecodeStreamEnd(p)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.core.OnStreamEnd(id)
		c.mu.Unlock()
	case wire.KindClientMsgAck:
		seq, err := wire.DecodeMsgAck(p)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.core.OnMsgAck(seq)
		close(c.wake)
		c.wake = make(chan struct{})
		c.mu.Unlock()
	case wire.KindClientError:
		if len(p) == 10 {
			c.event(Event{Kind: EvNotDelivered, Code: uint16(p[0])<<8 | uint16(p[1]), Cmd: beUint64(p[2:])})
		}
	case wire.KindClientKick:
		code, text, err := wire.DecodeCoded(p)
		if err != nil {
			return err
		}
		if code == wire.CodeShutdown && c.core != nil && c.core.Session.WindowMs > 0 {
			// A draining gateway: resume elsewhere.
			c.mu.Lock()
			c.draining = true
			c.mu.Unlock()
			return fmt.Errorf("client: gateway shutting down: %s", text)
		}
		return &KickError{Code: code, Reason: text}
	case wire.KindClientShed:
		sh, err := wire.DecodeShed(p)
		if err != nil {
			return err
		}
		c.event(Event{Kind: EvShed, Shed: int(sh.Count)})
	case wire.KindClientPong, wire.KindClientResumed:
	}
	return nil
}

func (c *Client) deliver(m Message) error {
	select {
	case c.msgs <- m:
		return nil
	case <-c.stop:
		return ErrClosed
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, x := range b[:8] {
		v = v<<8 | uint64(x)
	}
	return v
}
