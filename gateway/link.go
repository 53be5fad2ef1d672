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
	left bool // the node said goodbye (set by the reader before unlink)

	// Owned by the reader goroutine.
	nodeFrames uint64 // node messages read on this link
	nodeAcked  uint64 // the last NodeAck sent

	fifoMu sync.Mutex // guards fifo, arena, nacked; taken before out's lock
	fifo   []inflight // client messages sent and not yet acknowledged, in order
	arena  []byte     // their encoded frames (version 2 messages)
	nacked uint64     // messages acknowledged on this link
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
		// Accepted goes first: publishing the link (addLink) queues what
		// waited for the node and the sessions bound to it, and the node
		// takes any other frame before Accepted for a refusal.
		l.out.Force(wire.AppendHeader(nil, wire.KindAccepted, 0))
		if !g.addLink(l) {
			l.closeWith(intranet.CodeShutdown, "gateway shutting down")
			return false
		}
		l.log.Info("node linked")
		return true
	}
	return false
}

func (l *link) reject(metric string, code uint32, err error) {
	l.g.met.drops.WithLabelValues("link_" + metric).Inc()
	l.g.badLog.Warn(l.log.WithError(err).WithField("code", code), "closing node link")
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
				l.left = true
				l.log.Info("node left")
				l.out.Close()
				return
			}
			l.reject("malformed", intranet.CodeMalformed, err)
			return
		}
		if l.nodeFrames > l.nodeAcked && r.Buffered() == 0 {
			// Everything read is handled: tell the sender, once per batch.
			l.nodeAcked = l.nodeFrames
			l.out.Append(wire.AppendNodeAck(nil, l.nodeFrames))
		}
	}
}

func (l *link) handle(kind wire.Kind, p []byte) error {
	g := l.g
	switch kind {
	case wire.KindPush:
		start := g.sampleStart()
		f, err := wire.DecodePushFrame(p)
		if err != nil {
			return err
		}
		s := g.session(f.Account)
		if s == nil || s.sid != f.Sid {
			g.met.drops.WithLabelValues("no_client").Inc()
			l.out.Append(wire.AppendRef(nil, wire.KindNotHere, string(f.Account), f.Sid))
			return nil
		}
		s.push(l, &f)
		g.sampleEnd(start)
	case wire.KindLinkAck:
		n, err := wire.DecodeLinkAck(p)
		if err != nil {
			return err
		}
		l.acked(n)
	case wire.KindResumeState:
		st, err := wire.DecodeResumeState(p)
		if err != nil {
			return err
		}
		if g.ignoreResumeStates.Load() {
			break
		}
		if s := g.session(st.Account); s != nil && s.sid == st.Sid {
			s.onResumeState(l, &st)
		}
	case wire.KindClaim:
		r, err := wire.DecodeRef(p)
		if err != nil {
			return err
		}
		g.claim(l, r)
	case wire.KindNodeMsg:
		start := g.sampleStart()
		op, dst, cmd, id, expire, ok := wire.NodeMsgRoute(p)
		if !ok {
			return fmt.Errorf("%w: short node message", common.ErrBadInput)
		}
		l.nodeFrames++
		code := wire.CodeNoNode
		if expire != 0 && g.now().UnixMilli() > expire {
			// Stale (this gateway or the link was stalled): the sender
			// has reported it undeliverable; never deliver it late.
			code = wire.CodeExpired
		} else if to := g.link(dst); to != nil {
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
		g.met.drops.WithLabelValues("node_undeliverable").Inc()
		if op != wire.OpCancel {
			l.out.Append(wire.AppendUndeliverable(nil, &wire.Undeliverable{To: dst, Cmd: cmd, Code: code, Op: op, ID: id}))
		}
	case wire.KindBroadcast:
		cmd, data, err := wire.DecodeBroadcast(p)
		if err != nil {
			return err
		}
		g.broadcast(cmd, data)
	case wire.KindGroupJoin, wire.KindGroupLeave:
		group, account, err := wire.DecodeGroupMember(p)
		if err != nil {
			return err
		}
		if kind == wire.KindGroupJoin {
			g.joinGroup(group, account)
		} else {
			g.leaveGroup(group, account)
		}
	case wire.KindGroupBroadcast:
		group, cmd, data, err := wire.DecodeGroupBroadcast(p)
		if err != nil {
			return err
		}
		g.groupBroadcast(group, cmd, data)
	case wire.KindGroupQuery:
		id, group, err := wire.DecodeGroupQuery(p)
		if err != nil {
			return err
		}
		g.groupQuery(l, id, group)
	case wire.KindKick:
		account, code, reason, err := wire.DecodeKick(p)
		if err != nil {
			return err
		}
		if s := g.session(account); s != nil {
			if code == 0 {
				code = wire.CodeKicked
			}
			s.kick(code, reason)
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

// inflight is one client message sent to a node and not yet acknowledged
// by it (LinkAck), kept so that it can be sent again if the link drops.
type inflight struct {
	s    *session
	csq  uint32 // 0: a version 1 message, never sent twice
	cmd  uint64 // the node's cmd (type offset stripped)
	full uint64 // the client's cmd, for ClientError
	typ  common.NodeType
	off  int // the encoded Deliver frame in the link's arena (version 2)
	n    int
}

// deliver queues one client message to the node and keeps it until the
// node acknowledges it. false: the link's queue is full.
func (l *link) deliver(f inflight, data []byte) bool {
	s := f.s
	size := wire.DeliverSize(s.account, len(data))
	l.fifoMu.Lock()
	defer l.fifoMu.Unlock()
	ok := l.out.AppendWith(size, func(b []byte) {
		wire.PutDeliver(b, s.account, s.sid, f.csq, f.cmd, data)
		if f.csq != 0 {
			f.off = len(l.arena)
			f.n = size
			l.arena = append(l.arena, b...)
		}
	})
	if !ok {
		return false
	}
	l.fifo = append(l.fifo, f)
	l.g.met.nodeOut.Inc()
	return true
}

// redeliver queues an already encoded version 2 message again.
func (l *link) redeliver(f inflight, frame []byte) bool {
	l.fifoMu.Lock()
	defer l.fifoMu.Unlock()
	if !l.out.Append(frame) {
		return false
	}
	f.off = len(l.arena)
	f.n = len(frame)
	l.arena = append(l.arena, frame...)
	l.fifo = append(l.fifo, f)
	return true
}

// acked takes the node's count of processed messages: those are done.
func (l *link) acked(n uint64) {
	l.fifoMu.Lock()
	var done []inflight
	for l.nacked < n && len(l.fifo) > 0 {
		done = append(done, l.fifo[0])
		l.fifo = l.fifo[1:]
		l.nacked++
	}
	if len(l.fifo) == 0 {
		l.fifo = nil
		l.arena = l.arena[:0]
		if cap(l.arena) > 1<<20 {
			l.arena = nil
		}
	}
	l.fifoMu.Unlock()
	for _, f := range done {
		if f.csq != 0 {
			f.s.done(f.csq)
		}
	}
}

// takeUnacked removes and returns the messages the node never
// acknowledged, with copies of their frames.
func (l *link) takeUnacked() []pendingMsg {
	l.fifoMu.Lock()
	defer l.fifoMu.Unlock()
	out := make([]pendingMsg, 0, len(l.fifo))
	for _, f := range l.fifo {
		var fr []byte
		if f.csq != 0 {
			fr = append([]byte(nil), l.arena[f.off:f.off+f.n]...)
		}
		out = append(out, pendingMsg{f: f, frame: fr})
	}
	l.fifo, l.arena = nil, nil
	return out
}

// addLink records a link, replacing an older link of the same node (whose
// unacknowledged messages move to the new one).
func (g *Gateway) addLink(l *link) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	old := g.links[l.id]
	g.mu.Unlock()
	if old != nil {
		old.closeWith(intranet.CodeReplaced, "replaced by a new link of the same node")
	}
	g.linked(l, old)
	g.mu.RLock()
	n := len(g.links)
	g.mu.RUnlock()
	g.met.links.Set(float64(n))
	return true
}

func (g *Gateway) unlink(l *link) {
	g.mu.Lock()
	gone := g.links[l.id] == l
	if gone {
		delete(g.links, l.id)
		g.reindexLocked(l.typ)
	}
	n := len(g.links)
	g.mu.Unlock()
	g.met.links.Set(float64(n))
	if gone {
		g.unlinked(l)
	}
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

// pick chooses a linked node of type t for a stateless message of
// account (the key of consistent-hash routing).
func (g *Gateway) pick(t common.NodeType, account string) *link {
	g.mu.RLock()
	sel := g.byType[t]
	g.mu.RUnlock()
	if sel == nil {
		return nil
	}
	if r := g.cfg.Rollouts.For(t); r != nil {
		return g.pickGray(r, sel, account)
	}
	l, err := sel.Get(g.cfg.Selector, account)
	if err != nil {
		return nil
	}
	return l
}

// pickGray picks among the instances of the account's side of a gray
// release: by account (rendezvous hashing) with the consistent-hash
// selector, in turn otherwise.
func (g *Gateway) pickGray(r *discovery.Rollout, sel *discovery.Selector[*link], account string) *link {
	all := discovery.Narrow(r, r.In(account), sel.GetAll(), (*link).version)
	switch {
	case len(all) == 0:
		return nil
	case g.cfg.Selector == discovery.ConsistentHash:
		return discovery.Rendezvous(account, all)
	}
	return all[g.grayTurn.Add(1)%uint64(len(all))]
}

// version is the version the link's node publishes.
func (l *link) version() string {
	if m := l.g.node.GetNode(l.id); m != nil {
		return m.GetVersion()
	}
	return ""
}

// leastLoaded is the linked node of type t with the lowest overload (ties
// by ID), for rebinding account: a new binding, so on the account's side
// of a gray release of t.
func (g *Gateway) leastLoaded(t common.NodeType, account string) *link {
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
	if r := g.cfg.Rollouts.For(t); r != nil {
		all = discovery.Narrow(r, r.In(account), all, (*link).version)
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
