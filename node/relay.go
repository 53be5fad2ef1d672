package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lograte"
	"github.com/xserver/xserver/internal/resume"
	"github.com/xserver/xserver/internal/testhook"
	"github.com/xserver/xserver/login"
	pb "github.com/xserver/xserver/proto"
)

// relay keeps one data link to every gateway in the membership and sends
// node messages through the head of a Consul-style server list: on a
// failed write the head is reported failed and the send retried once on
// the new head; the list is reshuffled periodically (RebalanceServers with
// a ping over the link) so load spreads over gateways.
//
// Messages to players go through the per-account state of a
// resume.NodeCore: each account's stream is kept until its client
// acknowledges it, goes to the gateway holding the session (learned from
// traffic, else looked up in Redis by background workers, never on the
// caller's goroutine) and is sent again after a lost link or a resume.
type relay struct {
	n   *Node
	mgr *discovery.Manager[*gwLink]

	mu      sync.Mutex // guards enabled, links, dialing, core; held while frames are queued to links
	enabled bool
	links   map[common.NodeID]*gwLink
	dialing map[common.NodeID]bool
	retry   map[common.NodeID]*linkRetry // gateways whose last link failed
	core    *resume.NodeCore

	lookups chan string // accounts whose holder to look up
	kick    chan struct{}
	cb      *lanes // the user callbacks, off the links' readers
	wg      sync.WaitGroup
	lookLog *lograte.Limiter
	linkLog *lograte.Limiter // links refused or failed, per gateway
	gq      groupQueries     // GroupMembers calls waiting for the gateways

	inlineN       atomic.Int64  // links whose reader runs a callback now (gwLink.runInline)
	undeliverable atomic.Uint64 // node messages gateways reported undeliverable
	dropped       atomic.Uint64 // client messages that could not be delivered

	subStarted bool           // the logins subscription runs (guarded by mu)
	hook       *testhook.Node // nil outside this module's tests
}

func newRelay(n *Node) *relay {
	r := &relay{n: n, links: make(map[common.NodeID]*gwLink), dialing: make(map[common.NodeID]bool),
		retry: make(map[common.NodeID]*linkRetry), kick: make(chan struct{}, 1), lookups: make(chan string, 4096),
		lookLog: lograte.New(10 * time.Second), linkLog: lograte.New(30 * time.Second), cb: newLanes()}
	r.core = resume.NewNodeCore(resume.NodeConfig{
		StreamLimit:   n.cfg.StreamLimit,
		TotalLimit:    n.cfg.StreamTotal,
		OfflineCache:  n.cfg.OfflineCache,
		OfflineMaxAge: n.cfg.OfflineMaxAge,
		Rand:          func() uint32 { n.mu.Lock(); defer n.mu.Unlock(); return n.cfg.Rand.Uint32() },
	})
	r.mgr = discovery.NewManager(discovery.ManagerConfig[*gwLink]{
		Pinger:       r,
		Cluster:      clusterSize{n},
		MinRebalance: n.cfg.RelayRebalance,
		Logger:       n.log,
	})
	return r
}

type clusterSize struct{ n *Node }

func (c clusterSize) NumNodes() int { return c.n.NumMembers() }

func (r *relay) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run reconciles the links with the gateway members until the node stops.
func (r *relay) run(ctx context.Context) {
	r.wg.Add(1 + lookupWorkers)
	go func() { defer r.wg.Done(); r.mgr.Run(ctx) }()
	for i := 0; i < lookupWorkers; i++ {
		go func() { defer r.wg.Done(); r.lookupLoop(ctx) }()
	}
	t := time.NewTicker(relayTick)
	defer t.Stop()
	for {
		r.reconcile(ctx)
		select {
		case <-r.kick:
		case now := <-t.C:
			r.do(func() *resume.Output { return r.core.Tick(now) })
			r.checkStalls(now)
		case <-ctx.Done():
			for _, l := range r.linkList() {
				l.leave()
			}
			r.wg.Wait()
			return
		}
	}
}

// reconcile dials gateways not yet linked and drops links to gateways that
// left (or all of them when relay is disabled).
func (r *relay) reconcile(ctx context.Context) {
	want := make(map[common.NodeID]common.Member)
	r.mu.Lock()
	enabled := r.enabled
	r.mu.Unlock()
	if enabled {
		for _, m := range r.n.GetNodeList(common.Gateway) {
			if m.GetID() != r.n.cfg.ID {
				want[m.GetID()] = m
			}
		}
	}
	r.mu.Lock()
	var drop []*gwLink
	for id, l := range r.links {
		if _, ok := want[id]; !ok {
			drop = append(drop, l)
		}
	}
	var dial []common.Member
	now := time.Now()
	for id, m := range want {
		if rt := r.retry[id]; rt != nil && now.Before(rt.until) {
			continue
		}
		if r.links[id] == nil && !r.dialing[id] {
			r.dialing[id] = true
			dial = append(dial, m)
		}
	}
	for id := range r.retry {
		if _, ok := want[id]; !ok {
			delete(r.retry, id) // it left the cluster
		}
	}
	r.mu.Unlock()
	for _, l := range drop {
		l.leave()
	}
	for _, m := range dial {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.link(ctx, m)
		}()
	}
}

// link dials one gateway and serves the link until it ends.
func (r *relay) link(ctx context.Context, m common.Member) {
	n := r.n
	id := m.GetID()
	defer func() {
		r.mu.Lock()
		delete(r.dialing, id)
		r.mu.Unlock()
	}()
	addr := net.JoinHostPort(m.GetIP(common.IPInner), strconv.Itoa(int(m.GetPort(2))))
	start := time.Now()
	c, err := n.dial(ctx, addr)
	if err != nil {
		n.log.WithError(err).WithField("gateway", id.String()).Debug("gateway dial failed")
		r.linkEnded(id, false, 0)
		return
	}
	l := &gwLink{r: r, id: id, conn: c, out: intranet.NewOutbox(n.cfg.RelayQueueBytes), stop: make(chan struct{}),
		pong: make(chan struct{}, 1), log: n.log.WithField("gateway", id.String())}
	accepted := l.serve(ctx)
	r.linkEnded(id, accepted, time.Since(start))
}

// linkRetry is the backoff of the links to one gateway: the connect
// loop's decision core (retry), and when the next dial may go.
type linkRetry struct {
	retry
	until time.Time // no dial before
}

// Links to a gateway that fail (dial, handshake, refusal) or end before
// relayRetryMax are tried again after a delay doubling from relayRetryMin
// to relayRetryMax, jittered; a link that lasted longer resets it.
const (
	relayRetryMin = relayTick
	relayRetryMax = 5 * time.Second
)

// linkEnded records how a link to gateway id ended: accepted, after
// lasting as long.
func (r *relay) linkEnded(id common.NodeID, accepted bool, lasted time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.retry[id]
	if rt == nil {
		rt = &linkRetry{retry: retry{min: relayRetryMin, max: relayRetryMax}}
		r.retry[id] = rt
	}
	now := time.Now()
	var d time.Duration
	if accepted {
		if lasted >= relayRetryMax {
			delete(r.retry, id) // a link that lasted: dial again at the next tick
			return
		}
		d = rt.ended(false, lasted)
	} else {
		d, _ = rt.failed(causeRefused, now)
	}
	rt.until = now.Add(r.n.jitter(d))
}

// gwLink is the data link to one gateway.
type gwLink struct {
	r    *relay
	id   common.NodeID
	conn net.Conn
	out  *intranet.Outbox
	log  logrus.FieldLogger
	stop chan struct{}
	once sync.Once
	pong chan struct{} // a pong arrived (for the rebalance pinger)

	pmu     sync.Mutex // guards pending, packed
	pending []sentMsg  // node messages sent on this link and not yet acknowledged (NodeAck)
	packed  uint64     // node messages acknowledged, or expired here

	// Owned by the reader goroutine.
	epochs []wire.EpochFrom
	tail   bool      // the frame being handled is the last one read so far
	rs     *linkRead // set before the reading starts
	inLane *lane     // a claim made by handle, for the reader to run
	inCb   func()    // its callback

	readEnd chan struct{} // closed when the link's reading ended

	rmu        sync.Mutex // guards rgen, inline, inlineSeq, watch*
	rgen       uint64     // the generation of the reader goroutine
	inline     bool       // the reader runs a callback (runInline)
	inlineSeq  uint64     // callbacks run inline so far
	watch      *time.Timer
	watchArmed bool
	watchSeen  uint64 // inlineSeq at the watch's last look

	// processed counts the Deliver frames handed to the callbacks on this
	// link; only the reader adds to it.
	processed atomic.Uint64
	sent      atomic.Uint64 // ackedSent, for a check without the lock

	ackMu     sync.Mutex // guards ackTo, ackedSent, ackTimer, ackArmed
	ackTo     uint64     // processed, as of the end of the last read batch
	ackedSent uint64     // the last LinkAck sent
	ackTimer  *time.Timer
	ackArmed  bool
}

// linkAckDelay is how long a LinkAck may wait after the read batch that
// owes it. The gateway needs it only to release what it keeps for a
// resend and to acknowledge the client (within about 20 ms), so one ack
// per delay is enough; an ack per message would cost one more frame, one
// more write and one more wake-up of the gateway per round trip.
const linkAckDelay = 2 * time.Millisecond

// ackLater records that every Deliver read so far is processed and makes
// sure a LinkAck says so within linkAckDelay.
func (l *gwLink) ackLater() {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	l.ackTo = max(l.ackTo, l.processed.Load())
	if l.ackArmed || l.ackTo == l.ackedSent {
		return
	}
	l.ackArmed = true
	if l.ackTimer == nil {
		l.ackTimer = time.AfterFunc(linkAckDelay, l.ackNow)
	} else {
		l.ackTimer.Reset(linkAckDelay)
	}
}

// ackNow sends the LinkAck owed, if any.
func (l *gwLink) ackNow() {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	l.ackArmed = false
	if l.ackTo > l.ackedSent {
		l.ackedSent = l.ackTo
		l.sent.Store(l.ackTo)
		l.out.Force(wire.AppendLinkAck(nil, l.ackTo))
	}
}

// owedAck returns, appended to buf, the LinkAck owed for every Deliver
// handed to the callbacks so far (nothing when none is owed), and counts
// it as sent: the caller queues it in the same append as what it sends,
// in front. Everything this node sends a gateway that a callback may have
// caused (a push, a broadcast, a group change, a node message) goes out
// behind it, so a gateway that sees the answer to a message has seen its
// acknowledgement first, on the same link, and never gives that message to
// another node if this one stops right after answering (a reply, then the
// same message answered again elsewhere, was a duplicate).
func (l *gwLink) owedAck(buf []byte) []byte {
	if l.processed.Load() <= l.sent.Load() {
		return buf
	}
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	n := l.processed.Load()
	if n <= l.ackedSent {
		return buf
	}
	l.ackTo = max(l.ackTo, n)
	l.ackedSent = n
	l.sent.Store(n)
	return wire.AppendLinkAck(buf, n)
}

// queue queues frame behind the LinkAck owed (see owedAck), in one step;
// force ignores the queue's limit (see intranet.Outbox.Force). false when
// the queue refused frame (the LinkAck goes out all the same).
func (l *gwLink) queue(frame []byte, force bool) bool {
	var b [32]byte
	ack := l.owedAck(b[:0])
	switch {
	case len(ack) == 0 && force:
		return l.out.Force(frame)
	case len(ack) == 0:
		return l.out.Append(frame)
	case force:
		return l.out.ForcePair(ack, frame)
	case l.out.AppendPair(ack, frame):
		return true
	}
	l.out.Force(ack)
	return false
}

// send queues frame behind the LinkAck owed, under the queue's limit.
func (l *gwLink) send(frame []byte) bool { return l.queue(frame, false) }

// flushAck queues the LinkAck owed, if any, on its own.
func (l *gwLink) flushAck() {
	var b [32]byte
	if ack := l.owedAck(b[:0]); len(ack) > 0 {
		l.out.Force(ack)
	}
}

// flushAcksLocked queues the LinkAck owed on every link but skip's: output
// caused by a message from one gateway may go to another. r.mu is held.
func (r *relay) flushAcksLocked(skip common.NodeID) {
	for id, l := range r.links {
		if id != skip {
			l.flushAck()
		}
	}
}

func (l *gwLink) stopAcks() {
	l.ackMu.Lock()
	defer l.ackMu.Unlock()
	if l.ackTimer != nil {
		l.ackTimer.Stop()
	}
}

// Key makes a link a discovery.Server: one per gateway.
func (l *gwLink) Key() string { return l.id.String() }

func (l *gwLink) close() {
	l.stopAcks()
	l.once.Do(func() { close(l.stop) })
	_ = l.conn.Close()
}

// leave says goodbye, flushes briefly and closes.
func (l *gwLink) leave() {
	l.ackNow() // what was processed is not sent again
	f, _ := wire.Frame(wire.KindLeave, &pb.Leave{})
	l.out.CloseWith(f)
	select {
	case <-l.out.Done():
	case <-time.After(time.Second):
	}
	l.close()
}

// Ping implements discovery.Pinger over a link: a ping answered within the
// context's deadline (default one second) means healthy.
func (r *relay) Ping(ctx context.Context, l *gwLink) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	select { // drop a stale pong
	case <-l.pong:
	default:
	}
	f, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
	if !l.out.Append(f) {
		return false, common.ErrNotConnected
	}
	select {
	case <-l.pong:
		return true, nil
	case <-l.stop:
		return false, common.ErrNotConnected
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (l *gwLink) serve(ctx context.Context) (accepted bool) {
	r, n := l.r, l.r.n
	defer l.close()
	rd := wire.NewReader(l.conn, n.cfg.MaxFrame, 64<<10)
	_ = l.conn.SetReadDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	kind, p, err := rd.ReadFrame()
	var hello pb.Hello
	if err != nil || kind != wire.KindHello || hello.Unmarshal(p) != nil {
		r.linkLog.Log(l.log.WithError(err), logrus.WarnLevel, l.id.String(), "gateway handshake failed; retrying with backoff")
		return false
	}
	if hello.PingIntervalMs <= 0 || hello.PingMisses == 0 {
		r.linkLog.Log(l.log, logrus.WarnLevel, l.id.String(), "gateway sent no heartbeat settings; retrying with backoff")
		return false
	}
	interval := time.Duration(hello.PingIntervalMs) * time.Millisecond
	silence := time.Duration(hello.PingMisses) * interval
	n.mu.Lock()
	info := n.self.info
	n.mu.Unlock()
	f, _ := wire.Frame(wire.KindRegister, &pb.Register{Mac: intranet.MAC(n.cfg.Secret, hello.Nonce, n.cfg.ID.Bytes()), Info: info})
	l.out.Force(f)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.out.WriteLoop(l.conn, silence, l.stop); err != nil {
			l.close()
		}
	}()
	kind, p, err = rd.ReadFrame()
	if err != nil || kind != wire.KindAccepted {
		if kind == wire.KindError {
			err = peerError(p)
		} else if err == nil {
			err = fmt.Errorf("%w: %s frame before Accepted", common.ErrBadInput, kind)
		}
		r.linkLog.Log(l.log.WithError(err), logrus.WarnLevel, l.id.String(), "gateway refused the link; retrying with backoff")
		return false
	}
	r.do(func() *resume.Output {
		r.links[l.id] = l
		return r.core.LinkUp(time.Now(), l.id)
	})
	r.mgr.AddServer(l)
	l.log.Info("linked to gateway")
	defer func() {
		r.mgr.RemoveServer(l)
		n.undelivered(l.takePending(true, time.Time{}), wire.CodeLinkLost, "the gateway link was lost before the gateway forwarded it")
		r.gq.linkDown(l.id)
		r.do(func() *resume.Output {
			if r.links[l.id] != l {
				return r.core.Tick(time.Now()) // replaced by a newer link: nothing went down
			}
			delete(r.links, l.id)
			return r.core.LinkDown(time.Now(), l.id)
		})
		l.log.Info("gateway link closed")
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
				l.out.Append(f)
			case <-l.stop:
				return
			}
		}
	}()
	l.rs = &linkRead{rd: rd, dl: intranet.NewLazyDeadline(l.conn, silence), silence: silence, mark: time.Now()}
	l.readEnd = make(chan struct{})
	go l.read(0)
	<-l.readEnd
	return true
}

// linkRead is a gateway link's reading: its frame reader, read deadline
// and last moment of known liveness. One goroutine at a time owns it:
// the link's reader, which may hand it to a new goroutine while it runs a
// callback itself (see runInline).
type linkRead struct {
	rd      *wire.Reader
	dl      *intranet.LazyDeadline
	silence time.Duration
	mark    time.Time // the reader's last moment of known liveness
}

// read reads and handles the link's frames while it is the link's reader
// (generation gen), and closes l.readEnd when the reading ends.
func (l *gwLink) read(gen uint64) {
	r, rs := l.r, l.rs
	end := func() { close(l.readEnd) }
	for {
		rs.dl.ArmAt(rs.mark)
		kind, p, err := rs.rd.ReadFrame()
		if err != nil {
			select {
			case <-l.stop:
			default:
				l.log.WithError(err).Info("gateway link lost")
			}
			end()
			return
		}
		now := time.Now() // the only clock read per frame on this path
		if gap := now.Sub(rs.mark) + time.Duration(linkSkew.Load()); gap > rs.silence {
			// This process did not run for longer than the gateway's
			// heartbeat allows (paused, or starved): the gateway has
			// declared the link dead and rerouted what this node had not
			// acknowledged, perhaps to another instance. What is still in
			// the socket is stale: handling it would serve an account twice.
			l.log.WithField("gap", gap.Round(time.Millisecond)).Warn("this node did not read from the gateway for longer than its heartbeat allows (was the process paused?); dropping the link without handling what it held")
			end()
			return
		}
		l.tail = rs.rd.Buffered() == 0
		err = l.handle(kind, p, now)
		if ln, cb := l.inLane, l.inCb; ln != nil { // a claim is always run, and so released
			l.inLane, l.inCb = nil, nil
			rs.mark = now // a reader taking over starts from here
			l.ackLater()  // it is the last frame read: all are handed over
			if !l.runInline(gen, ln, cb) {
				return // the reading went on in another goroutine
			}
		}
		// Too many callbacks queued: stop reading until they run. Handling
		// counts towards the gap; waiting for the lanes does not.
		rs.mark = now.Add(r.cb.wait(l.stop))
		if err == nil && rs.rd.Buffered() == 0 {
			// Everything read so far is processed: say so soon.
			l.ackLater()
		}
		if err != nil {
			var pe *PeerError
			if errors.As(err, &pe) && pe.Code == intranet.CodeShutdown {
				l.log.Info("gateway shutting down")
			} else if errors.As(err, &pe) {
				l.log.WithError(err).Warn("gateway closed the link")
			} else {
				l.log.WithError(err).Warn("bad frame from gateway; dropping the link")
			}
			end()
			return
		}
	}
}

// inlineWatch is how often a link checks on a callback its reader runs
// itself: one still running after between one and two of these hands the
// reading to a new goroutine.
const inlineWatch = time.Millisecond

// runInline runs cb, the callback of a message claimed on lane ln, on the
// reader's goroutine: the last message of a read has nothing behind it to
// wait, and handing it to a lane's goroutine would cost a wake-up of
// another thread per message (most of a node's cost at light load). A
// callback that takes longer than inlineWatch, or makes a call (whose
// reply this link may carry), has the reading handed to a new goroutine
// meanwhile, so pings, acknowledgements and replies are read on. false:
// that happened, and this goroutine is no longer the reader.
func (l *gwLink) runInline(gen uint64, ln *lane, cb func()) bool {
	l.rmu.Lock()
	l.inline = true
	l.r.inlineN.Add(1)
	l.inlineSeq++
	if !l.watchArmed {
		l.watchArmed = true
		if l.watch == nil {
			l.watch = time.AfterFunc(inlineWatch, l.watchInline)
		} else {
			l.watch.Reset(inlineWatch)
		}
	}
	l.rmu.Unlock()
	l.r.cb.run(ln, cb)
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.rgen != gen {
		return false
	}
	l.inline = false
	l.r.inlineN.Add(-1)
	return true
}

// watchInline hands the reading on when the same inline callback ran
// through a whole period.
func (l *gwLink) watchInline() {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	switch {
	case !l.inline:
		l.watchArmed = false
	case l.inlineSeq != l.watchSeen:
		l.watchSeen = l.inlineSeq
		l.watch.Reset(inlineWatch)
	default:
		l.watchArmed = false
		l.handOffLocked()
	}
}

// handOffLocked starts a new reader if the current one runs a callback.
// l.rmu is held.
func (l *gwLink) handOffLocked() {
	if !l.inline {
		return
	}
	l.inline = false
	l.r.inlineN.Add(-1)
	l.rgen++
	go l.read(l.rgen)
}

// releaseReaders hands the reading of every link whose reader runs a
// callback to a new goroutine: the caller is about to wait for something
// a link reads (a call's reply, a group query's answers), and may be that
// callback.
func (r *relay) releaseReaders() {
	if r.inlineN.Load() == 0 {
		return // the common case: a Call costs no lock and no list
	}
	for _, l := range r.linkList() {
		l.rmu.Lock()
		l.handOffLocked()
		l.rmu.Unlock()
	}
}

// linkList returns the links now.
func (r *relay) linkList() []*gwLink {
	r.mu.Lock()
	defer r.mu.Unlock()
	ls := make([]*gwLink, 0, len(r.links))
	for _, l := range r.links {
		ls = append(ls, l)
	}
	return ls
}

// linkSkew is added to the gaps the link readers' staleness check measures
// (tests simulate a paused process with it).
var linkSkew atomic.Int64

// handle acts on one frame from the gateway, read at now.
func (l *gwLink) handle(kind wire.Kind, p []byte, now time.Time) error {
	r, n := l.r, l.r.n
	switch kind {
	case wire.KindDeliver:
		d, err := wire.DecodeDeliver(p)
		if err != nil {
			return err
		}
		l.processed.Add(1)
		account := string(d.Account)
		r.do(func() *resume.Output {
			out, fresh := r.core.Deliver(now, l.id, account, d.Sid, d.Csq)
			if fresh { // else a message resent after a gateway died, processed before
				cmd, data := d.Cmd, append([]byte(nil), d.Data...)
				cb := func() {
					if f := n.relayFunc(); f != nil {
						f(common.Client, nil, account, cmd, data)
					}
				}
				if l.tail {
					l.inLane = r.cb.claim(account)
				}
				if l.inLane != nil {
					l.inCb = cb // the reader runs it, after the lock
				} else {
					r.cb.post(account, cb)
				}
			}
			return out
		})
	case wire.KindDelivered:
		ref, epoch, seq, err := wire.DecodeStreamSeq(p)
		if err != nil {
			return err
		}
		r.do(func() *resume.Output { return r.core.Delivered(now, l.id, string(ref.Account), ref.Sid, epoch, seq) })
	case wire.KindResend:
		ref, epoch, seq, err := wire.DecodeStreamSeq(p)
		if err != nil {
			return err
		}
		r.do(func() *resume.Output { return r.core.Resend(now, l.id, string(ref.Account), ref.Sid, epoch, seq) })
	case wire.KindNotHere:
		ref, err := wire.DecodeRef(p)
		if err != nil {
			return err
		}
		r.do(func() *resume.Output { return r.core.NotHere(now, l.id, string(ref.Account), ref.Sid) })
	case wire.KindSessionOnline:
		ref, win, _, err := wire.DecodeSessionOnline(p)
		if err != nil {
			return err
		}
		r.do(func() *resume.Output {
			return r.core.SessionOnline(now, l.id, string(ref.Account), ref.Sid, time.Duration(win)*time.Millisecond)
		})
	case wire.KindSessionPaused:
		ref, err := wire.DecodeRef(p)
		if err != nil {
			return err
		}
		r.do(func() *resume.Output { return r.core.SessionPaused(now, l.id, string(ref.Account), ref.Sid) })
	case wire.KindLoseAccount:
		ref, why, err := wire.DecodeLose(p)
		if err != nil {
			return err
		}
		r.do(func() *resume.Output { return r.core.Lose(now, l.id, string(ref.Account), ref.Sid, why) })
	case wire.KindResume:
		ref, streams, err := wire.DecodeResumeReq(l.epochs[:0], p)
		if err != nil {
			return err
		}
		l.epochs = streams
		r.do(func() *resume.Output { return r.core.Resume(now, l.id, string(ref.Account), ref.Sid, streams) })
	case wire.KindNodeMsg:
		m, err := wire.DecodeNodeMsg(p)
		if err != nil {
			return err
		}
		n.onNodeMsg(&m)
	case wire.KindNodeAck:
		c, err := wire.DecodeLinkAck(p) // the same layout: u64 count
		if err != nil {
			return err
		}
		l.nodeAcked(c)
	case wire.KindUndeliverable:
		u, err := wire.DecodeUndeliverable(p)
		if err != nil {
			return err
		}
		r.lookLog.Warn(l.log.WithFields(logrus.Fields{"to": u.To.String(), "cmd": u.Cmd, "why": wire.CodeText(u.Code)}), "node message undeliverable")
		n.undelivered([]sentMsg{{op: u.Op, to: u.To, cmd: u.Cmd, id: u.ID}}, u.Code, wire.CodeText(u.Code))
	case wire.KindGroupMembers:
		id, last, accounts, err := wire.DecodeGroupMembers(nil, p)
		if err != nil {
			return err
		}
		r.gq.answer(l.id, id, last, accounts)
	case wire.KindPing:
		var m pb.Ping
		if err := m.Unmarshal(p); err != nil {
			return fmt.Errorf("%w: ping", common.ErrBadInput)
		}
		f, _ := wire.Frame(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
		l.out.Append(f)
	case wire.KindPong:
		select {
		case l.pong <- struct{}{}:
		default:
		}
	case wire.KindError:
		return peerError(p)
	default:
		return fmt.Errorf("%w: unexpected %s frame from gateway", common.ErrBadInput, kind)
	}
	return nil
}

// relayTick is how often the account state's timers run (lookup retries,
// ownership waits, forgetting idle accounts).
const relayTick = 250 * time.Millisecond

// lookupWorkers is how many holder lookups run at once.
const lookupWorkers = 4

// do runs one core call and carries out its output: frames are queued to
// the gateways' links under r.mu (so a stream's frames stay in order),
// lookups are handed to the workers, and callbacks are posted to the
// account's lane, in the order the core decided them.
func (r *relay) do(call func() *resume.Output) {
	r.mu.Lock()
	out := call()
	if len(out.Frames) > 0 && len(r.links) > 1 {
		r.flushAcksLocked(out.Frames[0].GW)
	}
	for _, f := range out.Frames {
		if l := r.links[f.GW]; l != nil {
			l.queue(f.Bytes, true) // kept by the core: a full queue must not lose them
		}
	}
	for _, a := range out.Lookups {
		select {
		case r.lookups <- a:
		default:
			r.core.LookupFailed(time.Now(), a) // retried from the tick
		}
	}
	for _, e := range out.Events {
		r.cb.post(e.Account, func() { r.n.fire(e) })
	}
	r.mu.Unlock()
}

// lookupLoop resolves accounts' holders from Redis, off every caller's
// goroutine.
func (r *relay) lookupLoop(ctx context.Context) {
	for {
		select {
		case a := <-r.lookups:
			lctx, cancel := context.WithTimeout(ctx, r.n.cfg.DialTimeout)
			gw, sid, err := r.n.sessions.Lookup(lctx, a)
			cancel()
			r.hook.AfterLookup(a, err == nil)
			now := time.Now()
			switch {
			case err == nil:
				r.do(func() *resume.Output { return r.core.Holder(now, a, gw, sid) })
			case errors.Is(err, login.ErrNoSession):
				r.subscribe(ctx)
				r.do(func() *resume.Output { return r.core.Offline(now, a) })
			default:
				r.lookLog.Warn(r.n.log.WithError(err), "cannot look up a player's gateway in Redis; retrying")
				r.do(func() *resume.Output { return r.core.LookupFailed(now, a) })
			}
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) relayFunc() common.FuncTypeOnRelayMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.onRelay
}

// memberOrStub returns the member, or a minimal one when the sender is not
// (yet) in this node's view.
func (n *Node) memberOrStub(id common.NodeID, t common.NodeType) common.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m, ok := n.members[id]; ok {
		return m
	}
	return &member{n: n, id: id, info: &pb.NodeInfo{Id: id.Bytes(), Type: uint32(t)}}
}

// --- public messaging API ---

// EnableMessageRelay turns gateway links on or off. It may be called
// before or after Start.
func (n *Node) EnableMessageRelay(v bool) {
	n.rl.mu.Lock()
	n.rl.enabled = v
	n.rl.mu.Unlock()
	n.rl.poke()
}

// RegisterFuncOnRelayMsg sets the handler of relayed messages. A player's
// messages run on the lane of the account, in the order the player sent
// them (a message resent after a gateway died is not handed over twice);
// a node's messages on the lane of the sending node, in its order.
// Different lanes run concurrently, never on a gateway link's reader, so
// the handler may make a Call. Keep it quick or hand work off: a slow
// handler delays its lane.
func (n *Node) RegisterFuncOnRelayMsg(f common.FuncTypeOnRelayMsg) {
	n.mu.Lock()
	n.onRelay = f
	n.mu.Unlock()
}

// RegisterFuncOnLoseAccount sets the lose-account handler: the account is
// no longer bound to this node (its session ended, or it was rebound to
// another instance). It is called exactly once per time the account was
// bound here, never for a session that resumed. It runs on the lane of
// the account, after every message of that session.
func (n *Node) RegisterFuncOnLoseAccount(f common.FuncTypeOnLoseAccount) {
	n.mu.Lock()
	n.onLose = f
	n.mu.Unlock()
}

// RegisterFuncOnDisconnect sets the handler called when the client of an
// account bound here lost its connection (or the gateway holding it went
// away) and may resume: the session is kept until it comes back
// (RegisterFuncOnResume) or ends (lose-account). Same goroutines as
// lose-account.
func (n *Node) RegisterFuncOnDisconnect(f common.FuncTypeOnAccount) {
	n.mu.Lock()
	n.onAway = f
	n.mu.Unlock()
}

// RegisterFuncOnResume sets the handler called when the client of an
// account bound here came back after RegisterFuncOnDisconnect's callback.
func (n *Node) RegisterFuncOnResume(f common.FuncTypeOnAccount) {
	n.mu.Lock()
	n.onBack = f
	n.mu.Unlock()
}

// RegisterFuncOnUndeliverable sets the handler of messages that could not
// be delivered: a message to a player that is offline or whose session
// ended before it got the message, or a node message a gateway could not
// forward. It runs on the lane of the account, or of the node the message
// was for (see the package doc); keep it quick.
func (n *Node) RegisterFuncOnUndeliverable(f common.FuncTypeOnUndeliverable) {
	n.mu.Lock()
	n.onUndeliv = f
	n.mu.Unlock()
}

// fire runs one account callback.
func (n *Node) fire(e resume.Event) {
	n.mu.Lock()
	lose, away, back, undeliv := n.onLose, n.onAway, n.onBack, n.onUndeliv
	n.mu.Unlock()
	switch e.Kind {
	case resume.EvLose:
		if lose != nil {
			lose(e.Account)
		}
	case resume.EvPaused:
		if away != nil {
			away(e.Account)
		}
	case resume.EvResumed:
		if back != nil {
			back(e.Account)
		}
	case resume.EvUndeliverable:
		n.rl.dropped.Add(1)
		if undeliv != nil {
			undeliv(common.Undeliverable{Account: e.Account, Cmd: e.Cmd, Code: e.Code})
		}
	}
}

// fireUndeliverable reports an undeliverable node message on the lane of
// the node it was for.
func (n *Node) fireUndeliverable(u common.Undeliverable) {
	n.rl.cb.post(u.To.String(), func() {
		n.mu.Lock()
		f := n.onUndeliv
		n.mu.Unlock()
		if f != nil {
			f(u)
		}
	})
}

// GatewayLinks is the number of gateways linked for relay.
func (n *Node) GatewayLinks() int { return n.rl.mgr.NumServers() }

// Undeliverable counts node messages gateways reported undeliverable.
func (n *Node) Undeliverable() uint64 { return n.rl.undeliverable.Load() }

// Dropped counts messages to players that could not be delivered (the
// player was offline, or its session ended first).
func (n *Node) Dropped() uint64 { return n.rl.dropped.Load() }

// PendingBytes is the size of the messages to players kept until their
// clients acknowledge them.
func (n *Node) PendingBytes() int {
	n.rl.mu.Lock()
	defer n.rl.mu.Unlock()
	return n.rl.core.Bytes()
}

func (n *Node) relayCheck() error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return common.ErrClosed
	}
	n.rl.mu.Lock()
	defer n.rl.mu.Unlock()
	if !n.rl.enabled {
		return common.ErrRelayDisabled
	}
	return nil
}

func (n *Node) sendNode(to common.NodeID, cmd uint64, data []byte) error {
	expire := time.Now().Add(n.cfg.MessageTTL)
	m := wire.NodeMsg{Op: wire.OpMessage, SrcType: n.cfg.Type, Src: n.cfg.ID, Dst: to, Cmd: cmd, Expire: expire.UnixMilli(), Data: data}
	return n.rl.sendTracked(&m, expire)
}

func marshal(msg proto.Message) ([]byte, error) {
	if msg == nil {
		return nil, nil
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("node: marshal: %w", err)
	}
	return b, nil
}

// SendByID sends msg to one member through a gateway.
func (n *Node) SendByID(id common.NodeID, cmd uint64, msg proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if !n.HaveNode(id) {
		return fmt.Errorf("%w: %s", common.ErrNoNode, id)
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	return n.sendNode(id, cmd, data)
}

// SendOne sends msg to one member of type t chosen by the selector.
func (n *Node) SendOne(t common.NodeType, cmd uint64, msg proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	m, err := n.pick(t, n.cfg.Selector, "")
	if err != nil {
		return err
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	return n.sendNode(m.id, cmd, data)
}

// SendOneByKey sends msg to the member of type t that key maps to on a
// consistent-hash ring, the member GetNodeByKey(t, key) returns: while the
// membership is stable every message of one key reaches one instance, and
// different keys spread over the instances.
func (n *Node) SendOneByKey(t common.NodeType, key string, cmd uint64, msg proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	m, err := n.pick(t, discovery.ConsistentHash, key)
	if err != nil {
		return err
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	return n.sendNode(m.id, cmd, data)
}

// SendByType sends msg to every member of type t. It returns the first
// error; the other members are still tried.
func (n *Node) SendByType(t common.NodeType, cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.sendMany(func(m common.Member) bool { return m.GetType() == t }, cmd, msg, excludeSelf, t.String())
}

// SendAll sends msg to every member except gateways (which relay but do
// not receive node messages).
func (n *Node) SendAll(cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.sendMany(func(m common.Member) bool { return m.GetType() != common.Gateway }, cmd, msg, excludeSelf, "any type")
}

func (n *Node) sendMany(match func(common.Member) bool, cmd uint64, msg proto.Message, excludeSelf bool, what string) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	var first error
	sent := 0
	for _, m := range n.GetNodeAll() {
		if !match(m) || excludeSelf && m.GetID() == n.cfg.ID {
			continue
		}
		sent++
		if err := n.sendNode(m.GetID(), cmd, data); err != nil && first == nil {
			first = err
		}
	}
	if sent == 0 {
		return fmt.Errorf("%w: no member of %s", common.ErrNoNode, what)
	}
	return first
}

// SendClientMsgByRelay sends data to a player's client through the gateway
// holding its session. It only queues: the message is kept until the
// client acknowledges it, sent again if a connection or a gateway is lost,
// and delivered exactly once, in order with this node's other messages to
// the account. An error means it was not queued (the account's or the
// node's unacknowledged messages are over their limit, wrapping
// common.ErrQueueFull); a message that later turns out undeliverable (the
// player is offline) is reported to RegisterFuncOnUndeliverable.
func (n *Node) SendClientMsgByRelay(account string, cmd uint64, data []byte) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	now := time.Now()
	var err error
	n.rl.do(func() *resume.Output {
		var out *resume.Output
		out, err = n.rl.core.Send(now, account, cmd, data)
		return out
	})
	if err != nil {
		return fmt.Errorf("%w: %v", common.ErrQueueFull, err)
	}
	return nil
}

// BroadcastClientMsg sends data to every client of every gateway.
func (n *Node) BroadcastClientMsg(cmd uint64, data []byte) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	links := n.rl.mgr.Servers()
	if len(links) == 0 {
		return common.ErrNoGateway
	}
	var first error
	frame := wire.AppendBroadcast(nil, cmd, data)
	for _, l := range links {
		if !l.send(frame) && first == nil {
			first = fmt.Errorf("%w: gateway %s not accepting", common.ErrNotConnected, l.id)
		}
	}
	return first
}

// Kick ends a player's session on its gateway (the client gets
// wire.CodeKicked and cannot resume); the bound nodes get lose-account. It
// only queues, after this node's earlier messages to the account.
func (n *Node) Kick(account, reason string) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	now := time.Now()
	n.rl.do(func() *resume.Output { return n.rl.core.Kick(now, account, wire.CodeKicked, reason) })
	return nil
}
