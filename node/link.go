package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

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

// run is the node's life: find the leader, hold a session with it, repeat.
func (n *Node) run() {
	defer n.wg.Done()
	for {
		rec, ok := n.findLeader()
		if !ok {
			return
		}
		err := n.session(rec)
		select {
		case <-n.stop:
			return
		default:
		}
		n.log.WithError(err).WithField("leader", rec.Addr).Info("mgrserver session ended; looking for the leader")
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Code != intranet.CodeShutdown && pe.Code != intranet.CodeNotLeader {
			// Not a hand-over: do not hammer a failing leader.
			if !n.sleep(n.jitter(n.cfg.BackoffMin)) {
				return
			}
		}
	}
}

// findLeader polls Redis with jittered, bounded exponential backoff until a
// leader record with an acceptable epoch appears. A record older than an
// epoch already seen is never followed; the node raises the cluster's
// epoch floor so that leader steps down and a new one is numbered above.
func (n *Node) findLeader() (lease.Record, bool) {
	delay := n.cfg.BackoffMin
	var lastErr string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout)
		rec, err := lease.Read(ctx, n.cfg.Redis, n.cfg.Cluster)
		switch {
		case err == nil:
			n.mu.Lock()
			seen := n.view.Epoch()
			n.mu.Unlock()
			if rec.Epoch >= seen {
				cancel()
				return rec, true
			}
			if s := fmt.Sprint("stale ", rec.Epoch); s != lastErr {
				n.log.WithFields(map[string]any{"epoch": rec.Epoch, "seen": seen}).Warn("ignoring a leader with a lower epoch than one already seen; raising the epoch floor")
				lastErr = s
			}
			if err := lease.RaiseEpoch(ctx, n.cfg.Redis, n.cfg.Cluster, seen); err != nil {
				n.log.WithError(err).Debug("raise epoch floor")
			}
		case errors.Is(err, lease.ErrNoLeader):
		default:
			if s := err.Error(); s != lastErr {
				n.log.WithError(err).Warn("cannot read the leader record")
				lastErr = s
			}
		}
		cancel()
		if !n.sleep(n.jitter(delay)) {
			return lease.Record{}, false
		}
		delay = min(2*delay, n.cfg.BackoffMax)
	}
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

// session holds one connection to the leader until it ends.
func (n *Node) session(rec lease.Record) error {
	c, err := n.dial(context.Background(), rec.Addr)
	if err != nil {
		return fmt.Errorf("node: dial mgrserver: %w", err)
	}
	l := &link{n: n, conn: c, out: intranet.NewCtlQueue(n.cfg.QueueBytes), snapCh: make(chan bool, 1), stop: make(chan struct{})}
	defer l.close()
	r := wire.NewReader(intranet.Rechecked(c), n.cfg.MaxFrame, 32<<10)

	_ = c.SetReadDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	kind, p, err := r.ReadFrame()
	if err != nil {
		return fmt.Errorf("node: handshake: %w", err)
	}
	if kind == wire.KindError {
		return peerError(p)
	}
	var hello pb.Hello
	if kind != wire.KindHello || hello.Unmarshal(p) != nil {
		return fmt.Errorf("%w: expected hello, got %s", common.ErrBadInput, kind)
	}
	if hello.Cluster != n.cfg.Cluster {
		return fmt.Errorf("%w: mgrserver serves cluster %q", common.ErrBadInput, hello.Cluster)
	}
	if hello.PingIntervalMs <= 0 || hello.PingIntervalMs > 60_000 || hello.PingMisses == 0 || hello.PingMisses > 100 {
		return fmt.Errorf("%w: heartbeat settings %dms x %d", common.ErrBadInput, hello.PingIntervalMs, hello.PingMisses)
	}
	interval := time.Duration(hello.PingIntervalMs) * time.Millisecond
	silence := time.Duration(hello.PingMisses) * interval

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errClosed
	}
	if err := n.view.Begin(hello.Epoch); err != nil {
		n.mu.Unlock()
		return err
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
		return err
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
		return fmt.Errorf("node: registration: %w", err)
	}
	if kind == wire.KindError {
		return peerError(p)
	}
	if kind != wire.KindSnapshot {
		return fmt.Errorf("%w: expected snapshot, got %s", common.ErrBadInput, kind)
	}
	if err := n.onSnapshot(l, p); err != nil {
		return err
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
			return fmt.Errorf("node: mgrserver connection: %w", err)
		}
		switch kind {
		case wire.KindMemberEvent:
			var ev pb.MemberEvent
			if err := ev.Unmarshal(p); err != nil {
				return fmt.Errorf("%w: member event: %v", common.ErrBadInput, err)
			}
			n.mu.Lock()
			ch, gap, err := n.view.ApplyEvent(&ev)
			n.applyLocked(ch)
			n.mu.Unlock()
			if err != nil {
				return err
			}
			if gap {
				n.log.WithField("seq", ev.Seq).Info("event sequence gap; forcing a full sync")
				sync.Force()
			}
		case wire.KindSnapshot:
			if err := n.onSnapshot(l, p); err != nil {
				return err
			}
		case wire.KindPing:
			var m pb.Ping
			if err := m.Unmarshal(p); err != nil {
				return fmt.Errorf("%w: ping: %v", common.ErrBadInput, err)
			}
			l.heartbeat(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
		case wire.KindPong:
		case wire.KindError:
			return peerError(p)
		default:
			return fmt.Errorf("%w: unexpected %s frame from mgrserver", common.ErrBadInput, kind)
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
			l.close()
			return
		}
	}
}
