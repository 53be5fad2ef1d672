package gateway

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/intranet"
	pb "github.com/xserver/xserver/proto"
)

// errLeave ends a link whose node said goodbye.
var errLeave = errors.New("gateway: node left")

// link is one node's data connection to this gateway.
type link struct {
	g    *Gateway
	conn net.Conn
	out  *intranet.Outbox
	log  logrus.FieldLogger
	id   common.NodeID
	typ  common.NodeType
	stop chan struct{}
	once sync.Once
}

// Key and Load make a link a discovery.Candidate: identity is the node ID,
// load is the node's published overload 0.
func (l *link) Key() string { return l.id.String() }
func (l *link) Load() uint32 {
	if m := l.g.node.GetNode(l.id); m != nil {
		return m.GetOverload(0)
	}
	return 0
}

// shutdown flushes what is queued and closes.
func (l *link) shutdown() {
	f, _ := wire.Frame(wire.KindError, &pb.Error{Code: intranet.CodeShutdown, Reason: "gateway shutting down"})
	l.out.CloseWith(f)
	_ = l.conn.SetReadDeadline(time.Now().Add(l.g.cfg.WriteTimeout))
}

func (l *link) closeWith(code uint32, reason string) {
	f, _ := wire.Frame(wire.KindError, &pb.Error{Code: code, Reason: reason})
	l.out.CloseWith(f)
	_ = l.conn.SetReadDeadline(time.Now().Add(l.g.cfg.WriteTimeout))
}

func (g *Gateway) acceptLinks() {
	defer g.wg.Done()
	g.acceptLoop(g.linkLn, func(c net.Conn) {
		setNoDelay(c)
		l := &link{g: g, conn: c, out: intranet.NewOutbox(g.cfg.LinkQueueBytes), stop: make(chan struct{}),
			log: g.log.WithField("peer", c.RemoteAddr().String())}
		g.linkWG.Add(1)
		go func() { defer g.linkWG.Done(); l.run() }()
	})
}

func (l *link) run() {
	g := l.g
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if err := l.out.WriteLoop(l.conn, g.cfg.WriteTimeout, l.stop); err != nil {
			l.log.WithError(err).Debug("link write failed")
			_ = l.conn.Close()
		}
	}()
	if l.handshake() {
		l.serve()
		g.unlink(l)
	}
	l.out.Close()
	select {
	case <-writerDone:
	case <-time.After(g.cfg.WriteTimeout):
		l.once.Do(func() { close(l.stop) })
		<-writerDone
	}
	_ = l.conn.Close()
}

// handshake authenticates the node exactly like the mgrserver does.
func (l *link) handshake() bool {
	g := l.g
	nonce, err := intranet.NewNonce()
	if err != nil {
		return false
	}
	hello, _ := wire.Frame(wire.KindHello, &pb.Hello{Nonce: nonce, Cluster: g.cfg.Cluster,
		PingIntervalMs: g.cfg.PingInterval.Milliseconds(), PingMisses: uint32(g.cfg.PingMisses)})
	l.out.Force(hello)
	_ = l.conn.SetReadDeadline(time.Now().Add(g.cfg.LoginTimeout))
	r := wire.NewReader(l.conn, 64<<10, 0)
	kind, p, err := r.ReadFrame()
	var reg pb.Register
	switch {
	case err != nil:
		l.reject("handshake", intranet.CodeHandshake, fmt.Errorf("no registration: %w", err))
	case kind != wire.KindRegister:
		l.reject("unexpected", intranet.CodeUnexpected, fmt.Errorf("%w: %s frame before registration", common.ErrBadInput, kind))
	case reg.Unmarshal(p) != nil:
		l.reject("malformed", intranet.CodeMalformed, fmt.Errorf("%w: register", common.ErrBadInput))
	default:
		if err := intranet.ValidateInfo(reg.Info); err != nil {
			l.reject("bad_info", intranet.CodeBadInfo, err)
			return false
		}
		if err := intranet.CheckMAC(g.cfg.Secret, nonce, reg.Info.Id, reg.Mac); err != nil {
			l.reject("auth", intranet.CodeAuth, err)
			return false
		}
		l.id, _ = common.NodeIDFromBytes(reg.Info.Id)
		l.typ = common.NodeType(reg.Info.Type)
		l.log = l.log.WithFields(logrus.Fields{"link": l.id.String(), "type": l.typ.String()})
		if !g.addLink(l) {
			l.closeWith(intranet.CodeShutdown, "gateway shutting down")
			return false
		}
		l.out.Force(wire.AppendHeader(nil, wire.KindAccepted, 0))
		l.log.Info("node linked")
		return true
	}
	return false
}

func (l *link) reject(metric string, code uint32, err error) {
	l.g.met.drops.WithLabelValues("link_" + metric).Inc()
	l.log.WithError(err).WithField("code", code).Warn("closing node link")
	l.closeWith(code, err.Error())
}

// serve reads relay frames until the link ends.
func (l *link) serve() {
	g := l.g
	r := wire.NewReader(l.conn, g.cfg.LinkMaxFrame, 64<<10)
	silence := time.Duration(g.cfg.PingMisses) * g.cfg.PingInterval
	pingStop := make(chan struct{})
	var pinger sync.WaitGroup
	pinger.Add(1)
	go func() {
		defer pinger.Done()
		t := time.NewTicker(g.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
				l.out.Append(f)
			case <-pingStop:
				return
			}
		}
	}()
	defer func() { close(pingStop); pinger.Wait() }()
	dl := intranet.NewLazyDeadline(l.conn, silence)
	for {
		dl.Arm()
		kind, p, err := r.ReadFrame()
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrFrameTooLarge):
				l.reject("too_large", intranet.CodeTooLarge, err)
			case errors.Is(err, wire.ErrFrameTooShort):
				l.reject("malformed", intranet.CodeMalformed, err)
			case errors.Is(err, os.ErrDeadlineExceeded):
				if !g.stopped() {
					l.reject("heartbeat", intranet.CodeHeartbeat, errors.New("node silent for too long"))
				}
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
				l.log.Info("node link closed")
			default:
				l.log.WithError(err).Info("node link lost")
			}
			return
		}
		g.met.nodeIn.Inc()
		if err := l.handle(kind, p); err != nil {
			if errors.Is(err, errLeave) {
				l.log.Info("node left")
				l.out.Close()
				return
			}
			l.reject("malformed", intranet.CodeMalformed, err)
			return
		}
	}
}

func (l *link) handle(kind wire.Kind, p []byte) error {
	g := l.g
	switch kind {
	case wire.KindToClient:
		start := g.sampleStart()
		account, cmd, data, err := wire.DecodeAccountMsg(p)
		if err != nil {
			return err
		}
		g.mu.RLock()
		c := g.clients[string(account)]
		g.mu.RUnlock()
		if c == nil {
			g.met.drops.WithLabelValues("no_client").Inc()
			return nil
		}
		c.send(cmd, data)
		g.sampleEnd(start)
	case wire.KindNodeMsg:
		start := g.sampleStart()
		dst, ok := wire.NodeMsgDst(p)
		if !ok {
			return fmt.Errorf("%w: short node message", common.ErrBadInput)
		}
		to := g.link(dst)
		code := wire.CodeNoNode
		if to != nil {
			if to.out.AppendWith(wire.HeaderSize+len(p), func(b []byte) {
				wire.AppendHeader(b[:0], wire.KindNodeMsg, len(p))
				copy(b[wire.HeaderSize:], p)
			}) {
				g.met.nodeOut.Inc()
				g.sampleEnd(start)
				return nil
			}
			code = wire.CodeSlow
		}
		m, _ := wire.DecodeNodeMsg(p)
		g.met.drops.WithLabelValues("node_undeliverable").Inc()
		l.out.Append(wire.AppendUndeliverable(nil, dst, m.Cmd, code))
	case wire.KindBroadcast:
		cmd, data, err := wire.DecodeBroadcast(p)
		if err != nil {
			return err
		}
		g.mu.RLock()
		all := make([]*client, 0, len(g.clients))
		for _, c := range g.clients {
			all = append(all, c)
		}
		g.mu.RUnlock()
		for _, c := range all {
			c.send(cmd, data)
		}
	case wire.KindKick:
		account, code, reason, err := wire.DecodeKick(p)
		if err != nil {
			return err
		}
		g.mu.RLock()
		c := g.clients[string(account)]
		g.mu.RUnlock()
		if c != nil {
			if code == 0 {
				code = wire.CodeKicked
			}
			c.kick(code, reason)
		}
	case wire.KindPing:
		var m pb.Ping
		if err := m.Unmarshal(p); err != nil {
			return fmt.Errorf("%w: ping", common.ErrBadInput)
		}
		f, _ := wire.Frame(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
		l.out.Append(f)
	case wire.KindPong:
	case wire.KindLeave:
		return errLeave
	default:
		return fmt.Errorf("%w: unexpected %s frame on a node link", common.ErrBadInput, kind)
	}
	return nil
}

// send queues a data frame to the client; a client that cannot keep up is
// disconnected.
func (c *client) send(cmd uint64, data []byte) {
	g := c.g
	if wire.DataSize(len(data)) > g.cfg.ClientQueueBytes {
		// It could never fit: the sender is wrong, not the client.
		g.met.drops.WithLabelValues("too_large_for_client").Inc()
		c.log.WithField("bytes", len(data)).Warn("message larger than a client's send queue dropped")
		return
	}
	if c.out.AppendWith(wire.DataSize(len(data)), func(b []byte) { wire.PutData(b, cmd, data) }) {
		g.met.framesOut.Inc()
		g.met.bytesOut.Add(float64(len(data)))
		return
	}
	g.met.drops.WithLabelValues("slow_client").Inc()
	c.log.Warn("client cannot keep up; disconnecting")
	c.kick(wire.CodeSlow, "too slow to read")
}

// addLink records a link, replacing an older link of the same node.
func (g *Gateway) addLink(l *link) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	old := g.links[l.id]
	g.links[l.id] = l
	g.reindexLocked(l.typ)
	n := len(g.links)
	g.mu.Unlock()
	g.met.links.Set(float64(n))
	if old != nil {
		old.closeWith(intranet.CodeReplaced, "replaced by a new link of the same node")
	}
	return true
}

func (g *Gateway) unlink(l *link) {
	g.mu.Lock()
	if g.links[l.id] == l {
		delete(g.links, l.id)
		g.reindexLocked(l.typ)
	}
	n := len(g.links)
	g.mu.Unlock()
	g.met.links.Set(float64(n))
}

// reindexLocked rebuilds the selector of type t; g.mu must be held.
func (g *Gateway) reindexLocked(t common.NodeType) {
	var list []*link
	for _, l := range g.links {
		if l.typ == t {
			list = append(list, l)
		}
	}
	sel := g.byType[t]
	if sel == nil {
		sel = discovery.NewSelector[*link](rand.New(rand.NewSource(time.Now().UnixNano())))
		g.byType[t] = sel
	}
	sel.Update(list)
}

func (g *Gateway) link(id common.NodeID) *link {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.links[id]
}

// pick chooses a linked node of type t for a stateless message.
func (g *Gateway) pick(t common.NodeType) *link {
	g.mu.RLock()
	sel := g.byType[t]
	g.mu.RUnlock()
	if sel == nil {
		return nil
	}
	l, err := sel.Get(g.cfg.Selector, "")
	if err != nil {
		return nil
	}
	return l
}

// leastLoaded is the linked node of type t with the lowest overload (ties
// by ID), for rebinding.
func (g *Gateway) leastLoaded(t common.NodeType) *link {
	g.mu.RLock()
	sel := g.byType[t]
	g.mu.RUnlock()
	if sel == nil {
		return nil
	}
	all := sel.GetAll()
	if len(all) == 0 {
		return nil
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].Load(), all[j].Load()
		if a != b {
			return a < b
		}
		return all[i].Key() < all[j].Key()
	})
	return all[0]
}
