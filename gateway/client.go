package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/login"
)

// client is one player connection. bindings is owned by the reader
// goroutine (run) until the session ends.
type client struct {
	g        *Gateway
	conn     net.Conn
	out      *intranet.Outbox
	log      logrus.FieldLogger
	account  string
	bindings map[common.NodeType]common.NodeID
	stop     chan struct{} // closed to make the writer give up at once
	kicked   atomic.Bool   // set before the reader is woken to stop

	endOnce  sync.Once
	mu       sync.Mutex // guards replaced, endWhy
	replaced bool       // ended by a newer login of the same account
	endWhy   string
}

func newClient(g *Gateway, c net.Conn) *client {
	return &client{
		g: g, conn: c, out: intranet.NewOutbox(g.cfg.ClientQueueBytes), stop: make(chan struct{}),
		log: g.log.WithField("client", c.RemoteAddr().String()),
	}
}

// refuse tells a connection why it is not served and closes it.
func refuse(c net.Conn, code uint16, timeout time.Duration) {
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientKick, code, wire.CodeText(code)))
	_ = c.Close()
}

// kick queues a kick frame and ends the connection once it is written.
func (c *client) kick(code uint16, reason string) {
	c.setWhy(wire.CodeText(code))
	c.out.CloseWith(wire.AppendCoded(nil, wire.KindClientKick, code, reason))
	c.kicked.Store(true)
	// The writer wakes the reader once the kick is written: waking it now
	// would let a WebSocket close before the kick goes out. A client too
	// slow to read will not read the kick either: stop it at once.
	if code == wire.CodeSlow {
		_ = c.conn.SetReadDeadline(time.Now())
	}
}

func (c *client) setWhy(why string) {
	c.mu.Lock()
	if c.endWhy == "" {
		c.endWhy = why
	}
	c.mu.Unlock()
}

func (c *client) run() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if err := c.out.WriteLoop(c.conn, c.g.cfg.WriteTimeout, c.stop); err != nil {
			c.log.WithError(err).Debug("client write failed")
			c.setWhy("write failed")
		}
		// Everything queued (a kick included) is written, or never will
		// be: wake the reader so the session ends.
		_ = c.conn.SetReadDeadline(time.Now())
	}()
	c.read()
	if c.account != "" {
		c.g.endSession(c)
	}
	c.out.Close()
	select {
	case <-writerDone:
	case <-time.After(c.g.cfg.WriteTimeout):
		close(c.stop)
		<-writerDone
	}
	_ = c.conn.Close()
}

// read handles the login and then relays frames until the connection ends.
func (c *client) read() {
	cfg := &c.g.cfg
	r := wire.NewReader(c.conn, cfg.MaxFrame, 1024)
	_ = c.conn.SetReadDeadline(time.Now().Add(cfg.LoginTimeout))
	kind, p, err := r.ReadFrame()
	if err != nil {
		c.readFailed(err, true)
		return
	}
	if kind != wire.KindClientLogin {
		c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: %s frame before login", common.ErrBadInput, kind))
		return
	}
	lg, err := wire.DecodeLogin(p)
	if err == nil {
		err = login.ValidateAccount(lg.Account)
	}
	if err != nil {
		c.fail(wire.CodeBadFrame, "bad_frame", err)
		return
	}
	if !c.login(lg) {
		return
	}
	idle := intranet.NewLazyDeadline(c.conn, cfg.Idle)
	for {
		idle.Arm()
		if c.kicked.Load() {
			return
		}
		kind, p, err := r.ReadFrame()
		if err != nil {
			c.readFailed(err, false)
			return
		}
		switch kind {
		case wire.KindClientData:
			if !c.relay(p) {
				return
			}
		case wire.KindClientPing:
			if len(p) != 8 {
				c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: ping of %d bytes", common.ErrBadInput, len(p)))
				return
			}
			c.out.Append(append(wire.AppendHeader(make([]byte, 0, wire.HeaderSize+8), wire.KindClientPong, 8), p...))
		default:
			c.fail(wire.CodeBadFrame, "bad_frame", fmt.Errorf("%w: unexpected %s frame", common.ErrBadInput, kind))
			return
		}
	}
}

// fail closes the connection for bad input, with a kick frame, a log line
// and a counter.
func (c *client) fail(code uint16, metric string, err error) {
	c.g.met.drops.WithLabelValues(metric).Inc()
	c.log.WithError(err).WithField("code", code).Warn("closing client connection")
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
		c.log.WithError(err).Debug("client connection lost")
	}
}

// login checks the token, takes over the account from any older session
// and loads the bindings.
func (c *client) login(lg wire.Login) bool {
	g := c.g
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
	defer cancel()
	err := login.VerifyToken(ctx, g.cfg.Redis, g.cfg.Cluster, lg.Account, lg.Token)
	var b map[common.NodeType]common.NodeID
	if err == nil {
		b, err = login.LoadBindings(ctx, g.cfg.Redis, g.cfg.Cluster, lg.Account)
	}
	if err != nil {
		code, metric := wire.CodeUnavailable, "unavailable"
		if errors.Is(err, login.ErrBadToken) {
			code, metric = wire.CodeBadToken, "bad_token"
		}
		g.met.logins.WithLabelValues(metric).Inc()
		c.log.WithError(err).WithField("account", lg.Account).Warn("login refused")
		c.setWhy("login refused")
		c.out.CloseWith(wire.AppendCoded(nil, wire.KindClientLoginAck, code, wire.CodeText(code)))
		return false
	}
	c.account, c.bindings = lg.Account, b
	c.log = c.log.WithField("account", lg.Account)

	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		c.account = ""
		c.out.CloseWith(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeShutdown, wire.CodeText(wire.CodeShutdown)))
		return false
	}
	old := g.clients[lg.Account]
	g.clients[lg.Account] = c
	g.mu.Unlock()
	if old != nil {
		old.replace()
	} else {
		g.nclients.Add(1)
		g.met.clients.Inc()
	}
	// Tell other gateways (their session of this account is replaced) and
	// record who holds the account.
	keys := login.KeysFor(g.cfg.Cluster, lg.Account)
	id := g.node.GetID().String()
	pipe := g.cfg.Redis.Pipeline()
	pipe.Publish(ctx, g.kickCh, id+" "+lg.Account)
	pipe.Set(ctx, keys.Holder, id, g.cfg.Affinity)
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.WithError(err).Warn("could not announce the login; an older session elsewhere may linger")
	}
	g.met.logins.WithLabelValues("ok").Inc()
	c.out.Append(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeOK, "ok"))
	for _, nid := range c.bindings {
		if l := g.link(nid); l != nil {
			l.out.Append(wire.AppendAccount(nil, wire.KindAccountOnline, c.account))
		}
	}
	c.log.Info("client logged in")
	return true
}

// replace ends this session because the account logged in again.
func (c *client) replace() {
	c.mu.Lock()
	c.replaced = true
	c.mu.Unlock()
	c.kick(wire.CodeDuplicate, "logged in elsewhere")
}

// relay routes one data frame to its node.
func (c *client) relay(p []byte) bool {
	g := c.g
	start := g.sampleStart()
	cmd, data, err := wire.DecodeData(p)
	if err != nil {
		c.fail(wire.CodeBadFrame, "bad_frame", err)
		return false
	}
	t := cmd / g.cfg.CmdOffset
	if t < uint64(common.FirstGameType) || t > 0xffff {
		c.fail(wire.CodeBadCmd, "bad_cmd", fmt.Errorf("%w: cmd %d names node type %d", common.ErrBadInput, cmd, t))
		return false
	}
	typ := common.NodeType(t)
	g.met.framesIn.Inc()
	g.met.bytesIn.Add(float64(len(data)))
	l := c.route(typ)
	if l == nil {
		g.met.drops.WithLabelValues("no_node").Inc()
		c.out.Append(wire.AppendClientError(nil, wire.CodeNoNode, cmd))
		return true
	}
	sub := cmd - t*g.cfg.CmdOffset
	if !l.out.AppendWith(wire.AccountMsgSize(c.account, len(data)), func(b []byte) {
		wire.PutAccountMsg(b, wire.KindFromClient, c.account, sub, data)
	}) {
		g.met.drops.WithLabelValues("node_queue_full").Inc()
		c.out.Append(wire.AppendClientError(nil, wire.CodeNoNode, cmd))
		return true
	}
	g.met.nodeOut.Inc()
	g.sampleEnd(start)
	return true
}

// route picks the link for a message of type t: the bound instance for a
// stateful type (rebinding when it is gone), else the selector's choice.
func (c *client) route(t common.NodeType) *link {
	g := c.g
	bound, stateful := c.bindings[t]
	if !stateful {
		return g.pick(t)
	}
	if l := g.link(bound); l != nil {
		return l
	}
	repl := g.leastLoaded(t)
	if repl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
	cur, err := login.Rebind(ctx, g.cfg.Redis, g.cfg.Cluster, c.account, t, bound, repl.id, g.cfg.Affinity)
	cancel()
	if err != nil {
		c.log.WithError(err).Warn("rebind failed; routing to a live instance without recording it")
		return repl
	}
	c.bindings[t] = cur
	l := g.link(cur)
	if l == nil {
		return repl
	}
	c.log.WithFields(logrus.Fields{"type": t.String(), "from": bound.String(), "to": cur.String()}).Info("account rebound")
	l.out.Append(wire.AppendAccount(nil, wire.KindAccountOnline, c.account))
	return l
}

// endSession runs once when a logged-in connection ends: unless a newer
// login replaced it, every bound node hears that the account is lost.
func (g *Gateway) endSession(c *client) {
	c.endOnce.Do(func() {
		g.mu.Lock()
		if g.clients[c.account] == c {
			delete(g.clients, c.account)
			g.nclients.Add(-1)
			g.met.clients.Dec()
		}
		g.mu.Unlock()
		c.mu.Lock()
		replaced, why := c.replaced, c.endWhy
		c.mu.Unlock()
		if why == "" {
			why = "disconnect"
		}
		g.met.ended.WithLabelValues(why).Inc()
		if replaced {
			c.log.Info("session replaced by a newer login")
			return
		}
		for _, nid := range c.bindings {
			if l := g.link(nid); l != nil {
				if l.out.Append(wire.AppendAccount(nil, wire.KindLoseAccount, c.account)) {
					g.met.loseAccounts.Inc()
					continue
				}
			}
			g.met.drops.WithLabelValues("lose_account_undelivered").Inc()
			c.log.WithField("bound", nid.String()).Warn("lose-account not delivered: node not linked")
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
		defer cancel()
		if len(c.bindings) > 0 {
			_ = login.TouchBindings(ctx, g.cfg.Redis, g.cfg.Cluster, c.account, g.cfg.Affinity)
		}
		keys := login.KeysFor(g.cfg.Cluster, c.account)
		_ = delIfScript.Run(ctx, g.cfg.Redis, []string{keys.Holder}, g.node.GetID().String()).Err()
		c.log.WithField("reason", why).Info("session ended")
	})
}

var delIfScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// kickLoop applies other gateways' login announcements: a local session of
// the same account is replaced.
func (g *Gateway) kickLoop() {
	defer g.wg.Done()
	ch := g.sub.Channel()
	self := g.node.GetID().String()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			gw, account, found := cut(m.Payload)
			if !found || gw == self {
				continue
			}
			g.mu.RLock()
			c := g.clients[account]
			g.mu.RUnlock()
			if c != nil {
				c.replace()
			}
		case <-g.stop:
			return
		}
	}
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func (g *Gateway) sampleStart() time.Time {
	if g.sampler.Add(1)&15 != 0 {
		return time.Time{}
	}
	return time.Now()
}

func (g *Gateway) sampleEnd(start time.Time) {
	if !start.IsZero() {
		g.met.relay.Observe(time.Since(start).Seconds())
	}
}
