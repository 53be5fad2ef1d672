package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lease"
	pb "github.com/xserver/xserver/proto"
)

// PeerError is an error frame a peer (mgrserver or gateway) sent before
// closing.
type PeerError struct {
	Code   uint32
	Reason string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("node: peer closed the connection: %s (code %d)", e.Reason, e.Code)
}

// Errors classifying a failed attempt to join (see cause).
var (
	errDial         = errors.New("cannot reach the mgrserver")
	errWrongCluster = errors.New("mgrserver serves another cluster")
	errStaleRecord  = errors.New("leader record older than an epoch already seen")
	errNewerLeader  = errors.New("a newer leader is published")
)

// run is the node's life: find the leader, hold a session with it, repeat.
// Every failure backs off with jitter up to BackoffMax (see retry), and
// each cause gets one warning naming it and its fix, at most every 10 s.
func (n *Node) run() {
	defer n.wg.Done()
	r := &retry{min: n.cfg.BackoffMin, max: n.cfg.BackoffMax}
	for {
		var (
			rec    lease.Record
			lasted time.Duration
			reg    bool
		)
		rec, err := n.readLeader()
		if err == nil {
			start := time.Now()
			reg, err = n.session(rec)
			lasted = time.Since(start)
		}
		select {
		case <-n.stop:
			return
		default:
		}
		var wait time.Duration
		if reg {
			var pe *PeerError
			handover := errors.Is(err, errNewerLeader) ||
				errors.As(err, &pe) && (pe.Code == intranet.CodeShutdown || pe.Code == intranet.CodeNotLeader)
			n.log.WithError(err).WithField("leader", rec.Addr).Info("mgrserver session ended; looking for the leader")
			wait = r.ended(handover, lasted)
		} else {
			c := classify(err)
			var warn bool
			wait, warn = r.failed(c, time.Now())
			msg := n.describe(c, rec, err, r.failingFor(time.Now()))
			n.mu.Lock()
			n.lastCause = &causeError{msg: msg, err: err}
			n.mu.Unlock()
			if warn {
				n.warnLog.Log(n.log.WithField("leader", rec.Addr), logrus.WarnLevel, c.key(), msg)
			} else {
				n.log.WithError(err).WithField("leader", rec.Addr).Debug("joining the cluster failed; retrying")
			}
		}
		if wait > 0 && !n.sleep(min(n.jitter(wait), n.cfg.BackoffMax)) {
			return
		}
	}
}

// causeError is the last reason the node could not join, as WaitReady
// reports it.
type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// classify maps a failed attempt's error to its cause.
func classify(err error) cause {
	var pe *PeerError
	switch {
	case errors.Is(err, lease.ErrNoLeader):
		return causeNoLeader
	case errors.Is(err, errStaleRecord), errors.Is(err, discovery.ErrStaleEpoch):
		return causeStaleRecord
	case errors.Is(err, errDial):
		return causeUnreachable
	case errors.Is(err, errWrongCluster):
		return causeCluster
	case errors.As(err, &pe):
		switch pe.Code {
		case intranet.CodeAuth:
			return causeAuth
		case intranet.CodeNotLeader, intranet.CodeShutdown:
			return causeRefused
		case intranet.CodeStaleEpoch:
			return causeStaleRecord
		}
		return causeLost
	case errors.Is(err, errReadLeader):
		return causeRedis
	}
	return causeLost
}

// describe is the warning for a cause: what is wrong and what to do.
func (n *Node) describe(c cause, rec lease.Record, err error, failing time.Duration) string {
	key := lease.KeysFor(n.cfg.Cluster).Leader
	switch c {
	case causeRedis:
		return fmt.Sprintf("cannot reach Redis at %s (%v): is it running and reachable from this node?", lease.Where(n.cfg.Redis), err)
	case causeNoLeader:
		return fmt.Sprintf("no leader published under %s for %s: is an mgrserver running for cluster %s?",
			key, failing.Round(time.Second), n.cfg.Cluster)
	case causeStaleRecord:
		return fmt.Sprintf("the leader published under %s is older than one already seen (%v): raised the epoch floor so it steps down", key, err)
	case causeUnreachable:
		return fmt.Sprintf("%v (published under %s): is the mgrserver's advertised address reachable from this node?", err, key)
	case causeRefused:
		return fmt.Sprintf("the mgrserver at %s published under %s refuses registration (%v): it is not leading; waiting for the lease to move",
			rec.Addr, key, err)
	case causeAuth:
		return "authentication failed: every member must share XSERVER_SECRET"
	case causeCluster:
		return fmt.Sprintf("%v: every member must use the same cluster name (this node: %s)", err, n.cfg.Cluster)
	}
	return fmt.Sprintf("joining through the mgrserver at %s failed: %v", rec.Addr, err)
}

// errReadLeader marks a failure to read the leader record from Redis.
var errReadLeader = errors.New("cannot read the leader record")

// readLeader reads the leader record once. A record older than an epoch
// already seen is never followed; the node raises the cluster's epoch floor
// so that leader steps down and a new one is numbered above.
func (n *Node) readLeader() (lease.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout)
	defer cancel()
	rec, err := lease.Read(ctx, n.cfg.Redis, n.cfg.Cluster)
	switch {
	case errors.Is(err, lease.ErrNoLeader):
		return rec, err
	case errors.Is(err, lease.ErrBadRecord):
		return rec, err
	case err != nil:
		return rec, fmt.Errorf("%w: %w", errReadLeader, err)
	}
	n.mu.Lock()
	seen := n.view.Epoch()
	n.mu.Unlock()
	if rec.Epoch >= seen {
		return rec, nil
	}
	if err := lease.RaiseEpoch(ctx, n.cfg.Redis, n.cfg.Cluster, seen); err != nil {
		n.log.WithError(err).Debug("raise epoch floor")
	}
	return rec, fmt.Errorf("%w: epoch %d, seen %d", errStaleRecord, rec.Epoch, seen)
}

// link is one connection to the mgrserver.
type link struct {
	n          *Node
	conn       net.Conn
	out        *intranet.CtlQueue
	registered bool      // n.mu
	snapCh     chan bool // a snapshot arrived; value: complete
	stop       chan struct{}
	stopOnce   sync.Once
	switched   atomic.Bool // closed because a newer leader is published
}

func (l *link) close() {
	l.stopOnce.Do(func() { close(l.stop) })
	_ = l.conn.Close()
}

func (l *link) send(kind wire.Kind, m wire.Marshaler) bool {
	f, err := wire.Frame(kind, m)
	if err != nil {
		return false
	}
	return l.out.Bulk(f)
}

// heartbeat sends a ping or pong ahead of anything else queued.
func (l *link) heartbeat(kind wire.Kind, m wire.Marshaler) bool {
	f, err := wire.Frame(kind, m)
	if err != nil {
		return false
	}
	return l.out.Urgent(f)
}

func (l *link) sendUpdate(u *pb.UpdateSelf) {
	if !l.send(wire.KindUpdateSelf, u) {
		// Queue full: the next registration or resync carries the truth.
		l.n.log.Warn("update not queued; mgrserver queue full")
	}
}

// leave sends a graceful goodbye, waits briefly for it to be written and
// closes the connection.
func (l *link) leave() {
	f, _ := wire.Frame(wire.KindLeave, &pb.Leave{})
	l.out.CloseWith(f)
	select {
	case <-l.out.Done():
	case <-time.After(time.Second):
	}
	l.close()
}

// session holds one connection to the leader until it ends; registered
// reports whether it got as far as a member list.
func (n *Node) session(rec lease.Record) (registered bool, err error) {
	c, err := n.dial(context.Background(), rec.Addr)
	if err != nil {
		return false, fmt.Errorf("%w %s: %w", errDial, rec.Addr, err)
	}
	l := &link{n: n, conn: c, out: intranet.NewCtlQueue(n.cfg.QueueBytes), snapCh: make(chan bool, 1), stop: make(chan struct{})}
	defer l.close()
	r := wire.NewReader(intranet.Rechecked(c), n.cfg.MaxFrame, 32<<10)

	_ = c.SetReadDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	kind, p, err := r.ReadFrame()
	if err != nil {
		return false, fmt.Errorf("node: handshake: %w", err)
	}
	if kind == wire.KindError {
		return false, peerError(p)
	}
	var hello pb.Hello
	if kind != wire.KindHello || hello.Unmarshal(p) != nil {
		return false, fmt.Errorf("%w: expected hello, got %s", common.ErrBadInput, kind)
	}
	if hello.Cluster != n.cfg.Cluster {
		return false, fmt.Errorf("%w: the mgrserver at %s serves cluster %q", errWrongCluster, rec.Addr, hello.Cluster)
	}
	if hello.PingIntervalMs <= 0 || hello.PingIntervalMs > 60_000 || hello.PingMisses == 0 || hello.PingMisses > 100 {
		return false, fmt.Errorf("%w: heartbeat settings %dms x %d", common.ErrBadInput, hello.PingIntervalMs, hello.PingMisses)
	}
	interval := time.Duration(hello.PingIntervalMs) * time.Millisecond
	silence := time.Duration(hello.PingMisses) * interval

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false, errClosed
	}
	if err := n.view.Begin(hello.Epoch); err != nil {
		n.mu.Unlock()
		return false, err
	}
	reg := &pb.Register{Mac: intranet.MAC(n.cfg.Secret, hello.Nonce, n.cfg.ID.Bytes()), Info: n.self.info, MaxEpoch: n.view.Epoch()}
	n.link = l
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.link == l {
			n.link = nil
		}
		n.mu.Unlock()
	}()
	f, err := wire.Frame(wire.KindRegister, reg)
	if err != nil {
		return false, err
	}
	l.out.UrgentForce(f) // before any heartbeat

	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.close()
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		if err := l.out.WriteLoop(c, silence, l.stop); err != nil {
			l.close()
		}
	}()
	// Heartbeat from the moment of registering: the mgrserver's silence
	// clock starts then, and a busy leader may take a while to answer.
	go func() { defer wg.Done(); l.pingLoop(interval) }()

	// The first frame after registering must be the snapshot.
	kind, p, err = r.ReadFrame()
	if err != nil {
		return false, fmt.Errorf("node: registration: %w", err)
	}
	if kind == wire.KindError {
		return false, peerError(p)
	}
	if kind != wire.KindSnapshot {
		return false, fmt.Errorf("%w: expected snapshot, got %s", common.ErrBadInput, kind)
	}
	if err := n.onSnapshot(l, p); err != nil {
		return false, err
	}
	n.log.WithFields(map[string]any{"leader": rec.Addr, "epoch": hello.Epoch}).Info("registered with mgrserver")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sync, _ := discovery.NewSyncLoop(discovery.SyncConfig{
		Interval: n.cfg.ResyncInterval,
		MinGap:   interval,
		Synced:   true, // the registration snapshot was a full sync
		Sync: func(ctx context.Context) (discovery.SyncKind, error) {
			if !l.send(wire.KindSyncRequest, &pb.SyncRequest{}) {
				return discovery.PartialSync, errors.New("node: sync request not queued")
			}
			select {
			case <-l.snapCh:
				// A partial snapshot (the leader's settle window) needs no
				// retry: the leader pushes a complete one when the window
				// closes.
				return discovery.CompleteSync, nil
			case <-time.After(silence):
				return discovery.PartialSync, errors.New("node: no snapshot in time")
			case <-ctx.Done():
				return discovery.PartialSync, ctx.Err()
			}
		},
	})
	wg.Add(2)
	go func() { defer wg.Done(); n.resyncLoop(ctx, sync) }()
	go func() { defer wg.Done(); n.watchLeader(l, rec) }()

	for {
		_ = c.SetReadDeadline(time.Now().Add(silence))
		kind, p, err := r.ReadFrame()
		if err != nil {
			if l.switched.Load() {
				return true, errNewerLeader
			}
			return true, fmt.Errorf("node: mgrserver connection: %w", err)
		}
		switch kind {
		case wire.KindMemberEvent:
			var ev pb.MemberEvent
			if err := ev.Unmarshal(p); err != nil {
				return true, fmt.Errorf("%w: member event: %v", common.ErrBadInput, err)
			}
			n.mu.Lock()
			ch, gap, err := n.view.ApplyEvent(&ev)
			n.applyLocked(ch)
			n.mu.Unlock()
			if err != nil {
				return true, err
			}
			if gap {
				n.log.WithField("seq", ev.Seq).Info("event sequence gap; forcing a full sync")
				sync.Force()
			}
		case wire.KindSnapshot:
			if err := n.onSnapshot(l, p); err != nil {
				return true, err
			}
		case wire.KindPing:
			var m pb.Ping
			if err := m.Unmarshal(p); err != nil {
				return true, fmt.Errorf("%w: ping: %v", common.ErrBadInput, err)
			}
			l.heartbeat(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
		case wire.KindPong:
		case wire.KindError:
			return true, peerError(p)
		default:
			return true, fmt.Errorf("%w: unexpected %s frame from mgrserver", common.ErrBadInput, kind)
		}
	}
}

// dial connects to an intranet peer, over TLS when configured.
func (n *Node) dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if n.cfg.TLS == nil {
		return c, nil
	}
	cfg := n.cfg.TLS
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

func peerError(p []byte) error {
	var e pb.Error
	if err := e.Unmarshal(p); err != nil {
		return fmt.Errorf("%w: error frame: %v", common.ErrBadInput, err)
	}
	return &PeerError{Code: e.Code, Reason: e.Reason}
}

func (n *Node) onSnapshot(l *link, p []byte) error {
	var s pb.Snapshot
	if err := s.Unmarshal(p); err != nil {
		return fmt.Errorf("%w: snapshot: %v", common.ErrBadInput, err)
	}
	n.mu.Lock()
	ch, err := n.view.ApplySnapshot(&s)
	n.applyLocked(ch)
	l.registered = true
	first := !n.ready
	n.ready = true
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if first {
		close(n.readyCh)
	}
	select {
	case l.snapCh <- s.Complete:
	default:
	}
	return nil
}

func (n *Node) resyncLoop(ctx context.Context, s *discovery.SyncLoop) { s.Run(ctx) }

func (l *link) pingLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.heartbeat(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
		case <-l.stop:
			return
		}
	}
}

// watchLeader re-reads the leader record while connected: a newer epoch
// elsewhere means this leader is stale, so the session is dropped.
func (n *Node) watchLeader(l *link, cur lease.Record) {
	t := time.NewTicker(n.cfg.LeaderCheck)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaderCheck)
		rec, err := lease.Read(ctx, n.cfg.Redis, n.cfg.Cluster)
		cancel()
		if err == nil && rec.Epoch > cur.Epoch {
			n.log.WithField("epoch", rec.Epoch).Info("a newer leader is published; switching")
			l.switched.Store(true)
			l.close()
			return
		}
	}
}
