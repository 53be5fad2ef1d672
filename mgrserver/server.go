package mgrserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lease"
	"github.com/xserver/xserver/internal/lograte"
	pb "github.com/xserver/xserver/proto"
)

// Server is one mgrserver: leader or standby.
type Server struct {
	cfg  Config
	log  logrus.FieldLogger
	reg  *prometheus.Registry
	met  *metrics
	ln   net.Listener
	addr string           // advertised intranet address
	now  func() time.Time // the clock; tests in this package may replace it before Start
	// warnLog rate-limits warnings per cause: bad dials, refusals, Redis.
	warnLog *lograte.Limiter
	refuser *intranet.Refuser // refusals written off the accept loop
	pool    *intranet.CtlPool // writes the sessions' queues (plain TCP); set by Start

	admin     *admin.Server
	adminAddr string

	mu        sync.Mutex // guards every field below
	started   bool       // Start was called
	running   bool       // Start succeeded: Close has goroutines to stop
	closed    bool
	leading   bool
	rec       lease.Record // lease held while leading
	lease     lease.Holder // how long the lease is provably held
	maxEpoch  uint64       // highest epoch seen in Redis or from peers
	warm      bool         // inside the settle window: snapshots are partial
	warmTimer *time.Timer
	fan       *fanout[*session] // the members and what they are owed
	conns     map[*session]struct{}

	kick chan struct{} // cap 1: membership changed, flush soon
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// New validates cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	s := &Server{
		cfg:     cfg,
		now:     time.Now,
		warnLog: lograte.New(lograte.DefaultEvery),
		refuser: intranet.NewRefuser(cfg.WriteTimeout, 64),
		log:     cfg.Logger.WithField("component", "mgrserver"),
		reg:     reg,
		met:     newMetrics(reg),
		fan:     newFanout[*session](),
		conns:   make(map[*session]struct{}),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	s.lease = lease.Holder{TTL: cfg.LeaseTTL, Margin: lease.DefaultMargin(cfg.LeaseTTL), Grace: cfg.RedisGrace}
	reg.MustRegister(admin.WatchRedis(cfg.Redis), admin.LeaderEpoch(s.maxEpochSeen))
	return s, nil
}

// maxEpochSeen is the highest leader epoch seen in Redis or from peers.
func (s *Server) maxEpochSeen() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxEpoch
}

// Start binds the intranet listener (and the admin port if configured) and
// starts campaigning. It returns once listening; ctx bounds only the start.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return ErrStarted
	}
	s.started = true
	s.mu.Unlock()

	// No TCP keepalive: heartbeats find a dead peer within ping_misses ×
	// ping_interval, and keepalive costs four setsockopt calls per accept,
	// which count when thousands of nodes connect at once.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("mgrserver: listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = advertised(s.cfg.Advertise, ln.Addr().String())
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	s.log = s.log.WithField("addr", s.addr)

	if s.cfg.Admin != "" {
		s.admin = admin.New(s.reg, s.health, s.log)
		s.admin.Handle("/nodes", http.HandlerFunc(s.serveNodes))
		bound, err := s.admin.Start(s.cfg.Admin)
		if err != nil {
			ln.Close()
			return fmt.Errorf("mgrserver: admin: %w", err)
		}
		s.adminAddr = bound
		s.log.WithField("admin", bound).Info("admin listening")
	}

	s.pool = intranet.NewCtlPool(runtime.GOMAXPROCS(0))
	// Only now is there something for Close to stop: a Start that failed
	// above left nothing running.
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	s.wg.Add(4)
	go s.acceptLoop()
	go s.campaignLoop()
	go s.heartbeatLoop()
	go s.flushLoop()
	s.log.WithField("cluster", s.cfg.Cluster).Info("mgrserver started")
	return nil
}

// Addr is the advertised intranet address ("" before Start).
func (s *Server) Addr() string { return s.addr }

// AdminAddr is the bound admin address, "" when none.
func (s *Server) AdminAddr() string { return s.adminAddr }

// Registry exposes the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// IsLeader reports whether this server holds the lease.
func (s *Server) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading
}

// Settled reports whether this server leads and its settle window is over
// (snapshots it sends are complete).
func (s *Server) Settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading && !s.warm
}

// Epoch is the epoch of the lease held (or last held).
func (s *Server) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Epoch
}

// NodeStatus is one member as /nodes reports it.
type NodeStatus struct {
	ID       common.NodeID   `json:"id"`
	Type     common.NodeType `json:"type"`
	Addrs    []string        `json:"addrs"`
	Ports    []int32         `json:"ports"`
	Overload []uint32        `json:"overload"`
	Version  string          `json:"version"`
}

// Status is the /nodes document.
type Status struct {
	Leader bool         `json:"leader"`
	Epoch  uint64       `json:"epoch"`
	Nodes  []NodeStatus `json:"nodes"`
}

// Status returns the registered members, sorted by type then ID.
func (s *Server) Status() Status {
	s.mu.Lock()
	st := Status{Leader: s.leading, Epoch: s.rec.Epoch, Nodes: make([]NodeStatus, 0, s.fan.len())}
	s.fan.each(func(id common.NodeID, _ *session, in *pb.NodeInfo) {
		st.Nodes = append(st.Nodes, NodeStatus{
			ID: id, Type: common.NodeType(in.Type), Addrs: nonNil(in.Addrs),
			Ports: nonNil(in.Ports), Overload: nonNil(in.Overload), Version: in.Version,
		})
	})
	s.mu.Unlock()
	sort.Slice(st.Nodes, func(i, j int) bool {
		a, b := st.Nodes[i], st.Nodes[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.ID.String() < b.ID.String()
	})
	return st
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func (s *Server) serveNodes(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Status())
}

func (s *Server) health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return common.ErrClosed
	}
	return nil // a standby is healthy too
}

// Close stops the server: a leader releases its lease first so a standby
// can take over at once, then tells every node it is shutting down. Safe
// twice; waits for every goroutine.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	running := s.running
	rec, leading := s.rec, s.leading
	s.mu.Unlock()
	if !running {
		return nil
	}
	close(s.stop)
	_ = s.ln.Close()
	if leading {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaseTTL)
		if err := lease.Release(ctx, s.cfg.Redis, s.cfg.Cluster, rec); err != nil {
			s.log.WithError(err).Warn("lease not released; it will lapse")
		}
		cancel()
	}
	s.stepDown("shutting down", intranet.CodeShutdown)
	s.closeAll()
	s.wg.Wait()
	s.refuser.Wait()
	s.pool.Close()
	if s.admin != nil {
		_ = s.admin.Close()
	}
	s.log.Info("mgrserver stopped")
	return nil
}

// crash stops like a killed process would: no lease release, no goodbye.
func (s *Server) crash() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.leading = false
	s.fan.reset(0) // a dead process tells nobody
	running := s.running
	s.mu.Unlock()
	if !running {
		return
	}
	close(s.stop)
	_ = s.ln.Close()
	for _, c := range s.allConns() {
		c.abort()
	}
	s.wg.Wait()
	s.refuser.Wait()
	s.pool.Close()
	if s.admin != nil {
		_ = s.admin.Close()
	}
}

func (s *Server) allConns() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

func (s *Server) closeAll() {
	for _, c := range s.allConns() {
		c.closeWith(intranet.CodeShutdown, "mgrserver shutting down")
	}
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary (EMFILE ...): back off and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.WithError(err).Warn("accept failed")
			select {
			case <-time.After(backoff):
			case <-s.stop:
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		full := len(s.conns) >= s.cfg.MaxConns
		s.mu.Unlock()
		if full {
			s.met.rejected.WithLabelValues("too_many").Inc()
			s.warnLog.Warn(s.log.WithField("peer", c.RemoteAddr().String()), "connection limit reached; refusing connections")
			f, _ := wire.Frame(wire.KindError, &pb.Error{Code: intranet.CodeTooMany, Reason: "connection limit reached"})
			s.refuser.Refuse(c, f, nil) // never on this goroutine: a TLS peer may be silent
			continue
		}
		sess := newSession(s, c)
		s.mu.Lock()
		s.conns[sess] = struct{}{}
		leading, epoch := s.servingLocked(), s.rec.Epoch
		s.mu.Unlock()
		sess.greet(leading, epoch)
		s.met.conns.Inc()
		s.wg.Add(1)
		go sess.run()
	}
}

// advertised picks the address nodes should dial.
func advertised(adv, bound string) string {
	if adv != "" {
		return adv
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return bound
	}
	return net.JoinHostPort(intranet.OutboundIP(), port)
}
