package discovery

import (
	"context"
	"io"
	"math"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults for ManagerConfig, taken from Consul's client-side server manager.
const (
	// DefaultMinRebalance is the shortest time a client keeps using the same
	// server before rebalancing (Consul's clientRPCMinReuseDuration).
	DefaultMinRebalance = 2 * time.Minute
	// DefaultJitterFraction bounds the random stagger added to MinRebalance:
	// the delay is drawn from [Min, Min+Min/JitterFraction).
	DefaultJitterFraction = 2
	// DefaultConnsPerSecPerServer caps the cluster-wide rate of new
	// connections each server should see because of rebalancing.
	DefaultConnsPerSecPerServer = 64.0
)

// Server is an entry the Manager tracks. Key is the stable identity: AddServer
// with a known key updates the entry in place. Values are compared with ==
// (NotifyFailedServer), so S should be a pointer or a small comparable value.
type Server interface {
	comparable
	Key() string
}

// Pinger checks that a server answers. Ping may block and must honour ctx;
// it is called without any Manager lock held, so it may call back into the
// Manager. It must be safe for concurrent use if several goroutines call
// RebalanceServers.
type Pinger[S Server] interface {
	Ping(ctx context.Context, s S) (bool, error)
}

// ClusterInfo reports the cluster size, which scales the rebalance delay so
// that the whole cluster does not reconnect faster than the servers can bear.
// NumNodes must be safe for concurrent use and must not block.
type ClusterInfo interface {
	NumNodes() int
}

// ManagerConfig configures a Manager. Zero (or negative) numeric fields take
// their defaults; see DefaultManagerConfig.
type ManagerConfig[S Server] struct {
	// Pinger is required for RebalanceServers; without it rebalancing is a
	// logged no-op.
	Pinger Pinger[S]
	// Cluster is optional; nil counts as a single node.
	Cluster ClusterInfo
	// Rand drives the shuffle and the jitter; nil means a time-seeded
	// source. The Manager guards its use with a mutex, so the caller must
	// not use it concurrently elsewhere.
	Rand *rand.Rand
	// Logger receives debug and warning messages; nil discards them.
	Logger logrus.FieldLogger
	// MinRebalance is the minimum delay between rebalances (default 2m).
	MinRebalance time.Duration
	// JitterFraction: the delay is drawn from [Min, Min+Min/JitterFraction)
	// (default 2).
	JitterFraction int
	// ConnsPerSecPerServer: the delay is at least
	// NumNodes/(servers*ConnsPerSecPerServer) seconds (default 64).
	ConnsPerSecPerServer float64
}

// DefaultManagerConfig returns a config with every numeric default filled in.
// Pinger, Cluster, Rand and Logger are left for the caller.
func DefaultManagerConfig[S Server]() ManagerConfig[S] {
	return ManagerConfig[S]{
		MinRebalance:         DefaultMinRebalance,
		JitterFraction:       DefaultJitterFraction,
		ConnsPerSecPerServer: DefaultConnsPerSecPerServer,
	}
}

// withDefaults fills the zero and out-of-range fields of c.
func (c ManagerConfig[S]) withDefaults() ManagerConfig[S] {
	if c.MinRebalance <= 0 {
		c.MinRebalance = DefaultMinRebalance
	}
	if c.JitterFraction <= 0 {
		c.JitterFraction = DefaultJitterFraction
	}
	if !(c.ConnsPerSecPerServer > 0) || math.IsInf(c.ConnsPerSecPerServer, 0) {
		c.ConnsPerSecPerServer = DefaultConnsPerSecPerServer
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewSource(time.Now().UnixNano()))
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
	return c
}

// Manager keeps the ordered list of servers a client talks to, in the manner
// of Consul's client-side server manager: the head of the list is the server
// in use; a server that fails is rotated to the tail; the list is shuffled
// periodically (after pinging the new head) so that long-lived clients do not
// all fixate on long-lived servers.
//
// Concurrency: atomic copy-on-write snapshot. The list is an immutable slice
// behind an atomic.Pointer; readers (FindServer, NumServers, Servers,
// IsOffline) never lock. Writers take listMu, copy the published slice,
// modify the copy and publish it; a published slice is never mutated. Pings
// run without any lock. All methods are safe for concurrent use.
type Manager[S Server] struct {
	// list is the published server list; the slice it points to is never
	// modified after being stored.
	list atomic.Pointer[[]S]
	// offline is true when no server is known to be healthy.
	offline atomic.Bool
	// notifyBarrier lets one NotifyFailedServer of a burst take the lock.
	notifyBarrier atomic.Bool

	// listMu guards the read-copy-store sequence of writers to list.
	listMu sync.Mutex

	// randMu guards rnd.
	randMu sync.Mutex
	rnd    *rand.Rand

	// resetCh (capacity 1) asks Run to re-arm its timer.
	resetCh chan struct{}

	// beforeNotifyLock, when set (tests only), runs in NotifyFailedServer
	// between the lock-free head check and taking listMu: the window in
	// which another writer may change the head.
	beforeNotifyLock func()

	pinger      Pinger[S]
	cluster     ClusterInfo
	log         logrus.FieldLogger
	minDelay    time.Duration
	jitterFrac  int
	connsPerSec float64
}

// NewManager returns a Manager with an empty list, in the offline state.
func NewManager[S Server](cfg ManagerConfig[S]) *Manager[S] {
	cfg = cfg.withDefaults()
	m := &Manager[S]{
		rnd:         cfg.Rand,
		resetCh:     make(chan struct{}, 1),
		pinger:      cfg.Pinger,
		cluster:     cfg.Cluster,
		log:         cfg.Logger.WithField("component", "discovery.manager"),
		minDelay:    cfg.MinRebalance,
		jitterFrac:  cfg.JitterFraction,
		connsPerSec: cfg.ConnsPerSecPerServer,
	}
	empty := []S{}
	m.list.Store(&empty)
	m.offline.Store(true)
	return m
}

// load returns the published list. The caller must not modify it.
func (m *Manager[S]) load() []S { return *m.list.Load() }

// store publishes l, which must not be modified afterwards. Callers hold
// listMu.
func (m *Manager[S]) store(l []S) { m.list.Store(&l) }

// indexOfKey returns the position of the server with key k, or -1.
func indexOfKey[S Server](l []S, k string) int {
	for i, s := range l {
		if s.Key() == k {
			return i
		}
	}
	return -1
}

// cycled returns a new slice with the head of l moved to the tail.
func cycled[S Server](l []S) []S {
	out := make([]S, 0, len(l))
	if len(l) == 0 {
		return out
	}
	out = append(out, l[1:]...)
	return append(out, l[0])
}

// AddServer adds s at the tail of the list, or, if a server with the same
// key is known, replaces it in place (keeping its position). Either way the
// Manager is no longer offline. It does not block on IO.
func (m *Manager[S]) AddServer(s S) {
	m.listMu.Lock()
	defer m.listMu.Unlock()
	old := m.load()
	var l []S
	if i := indexOfKey(old, s.Key()); i >= 0 {
		l = make([]S, len(old))
		copy(l, old)
		l[i] = s
		m.log.WithField("server", s.Key()).Debug("updated server")
	} else {
		l = make([]S, len(old), len(old)+1)
		copy(l, old)
		l = append(l, s)
		m.log.WithField("server", s.Key()).Debug("added server")
	}
	m.offline.Store(false)
	m.store(l)
}

// RemoveServer removes the server with s's key. It is a no-op if no such
// server is known. The offline flag is left alone, as in Consul: the next
// rebalance of an empty list sets it.
func (m *Manager[S]) RemoveServer(s S) {
	m.listMu.Lock()
	defer m.listMu.Unlock()
	old := m.load()
	i := indexOfKey(old, s.Key())
	if i < 0 {
		return
	}
	l := make([]S, 0, len(old)-1)
	l = append(l, old[:i]...)
	l = append(l, old[i+1:]...)
	m.store(l)
	m.log.WithField("server", s.Key()).Debug("removed server")
}

// FindServer returns the server at the head of the list, or the zero value
// and false when the list is empty. It never locks.
func (m *Manager[S]) FindServer() (S, bool) {
	l := m.load()
	if len(l) == 0 {
		m.log.Debug("no servers available")
		var zero S
		return zero, false
	}
	return l[0], true
}

// NotifyFailedServer rotates s to the tail of the list if it is the current
// head (compared with ==, so a stale copy of an updated server is ignored)
// and at least one other server exists. Of a burst of concurrent
// notifications only one takes the lock; the condition is re-checked under
// the lock so a server is rotated at most once per failure report.
func (m *Manager[S]) NotifyFailedServer(s S) {
	l := m.load()
	if len(l) <= 1 || l[0] != s {
		return
	}
	if !m.notifyBarrier.CompareAndSwap(false, true) {
		return
	}
	defer m.notifyBarrier.Store(false)

	if m.beforeNotifyLock != nil {
		m.beforeNotifyLock()
	}
	m.listMu.Lock()
	defer m.listMu.Unlock()
	l = m.load()
	if len(l) > 1 && l[0] == s {
		m.store(cycled(l))
		m.log.WithField("server", s.Key()).Debug("cycled failed server to the tail")
	}
}

// RebalanceServers shuffles a copy of the list and pings its head until a
// healthy server is found, cycling each failed one to the tail. If none
// answers, the Manager goes offline and the list is left as it was.
// Otherwise the Manager is online and the shuffled list is reconciled with
// the adds and removes made while pinging (added servers are appended,
// removed ones dropped) and published, unless the chosen head itself was
// removed meanwhile, in which case the list is left as it was.
//
// It blocks while pinging. If ctx ends before a healthy server is found,
// it returns without changing the list or the offline flag.
func (m *Manager[S]) RebalanceServers(ctx context.Context) {
	if m.pinger == nil {
		m.log.Warn("rebalance skipped: no pinger configured")
		return
	}
	snapshot := m.load()
	l := make([]S, len(snapshot))
	copy(l, snapshot)
	m.shuffle(l)

	found := false
	for range len(l) {
		head := l[0]
		ok, err := m.pinger.Ping(ctx, head)
		if ok {
			found = true
			break
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			m.log.WithError(ctxErr).Debug("rebalance aborted")
			return
		}
		m.log.WithField("server", head.Key()).WithError(err).Debug("ping failed during rebalance")
		l = cycled(l)
	}
	if !found {
		m.offline.Store(true)
		m.log.Debug("no healthy servers during rebalance")
		return
	}
	m.offline.Store(false)

	if m.reconcile(l) {
		m.log.WithField("servers", len(l)).WithField("head", l[0].Key()).Debug("rebalanced servers")
	} else {
		m.log.Debug("rebalance discarded: list changed under it")
	}
}

// reconcile merges the rebalanced list l (whose head was found healthy) with
// the changes made to the published list since the rebalance started, and
// publishes the result. It reports whether it published anything.
func (m *Manager[S]) reconcile(l []S) bool {
	m.listMu.Lock()
	defer m.listMu.Unlock()
	cur := m.load()
	if len(cur) == 0 || len(l) == 0 {
		return false
	}
	curIdx := make(map[string]int, len(cur))
	for i, s := range cur {
		curIdx[s.Key()] = i
	}
	if _, ok := curIdx[l[0].Key()]; !ok {
		// The chosen head was removed while we pinged it.
		return false
	}
	seen := make(map[string]bool, len(l))
	out := make([]S, 0, len(cur))
	for _, s := range l {
		k := s.Key()
		if i, ok := curIdx[k]; ok {
			// Still known: keep the rebalanced position, the current value
			// (it may have been updated in place meanwhile).
			out = append(out, cur[i])
			seen[k] = true
		}
	}
	for _, s := range cur {
		if !seen[s.Key()] {
			out = append(out, s) // added meanwhile
		}
	}
	m.store(out)
	return true
}

// shuffle permutes l in place; l must be private to the caller.
func (m *Manager[S]) shuffle(l []S) {
	m.randMu.Lock()
	defer m.randMu.Unlock()
	m.rnd.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
}

// IsOffline reports whether no server is known to be healthy: true for a new
// Manager and after a rebalance in which every ping failed; false after
// AddServer or a successful rebalance. It never locks.
func (m *Manager[S]) IsOffline() bool { return m.offline.Load() }

// NumServers returns the number of servers, healthy or not. It never locks.
func (m *Manager[S]) NumServers() int { return len(m.load()) }

// Servers returns a copy of the list, in order. It never locks.
func (m *Manager[S]) Servers() []S {
	l := m.load()
	out := make([]S, len(l))
	copy(out, l)
	return out
}

// RebalanceDelay returns the delay before the next rebalance: MinRebalance
// plus a random stagger in [0, MinRebalance/JitterFraction), raised to
// NumNodes/(NumServers*ConnsPerSecPerServer) seconds if that is longer.
func (m *Manager[S]) RebalanceDelay() time.Duration {
	var jitter time.Duration
	if span := m.minDelay / time.Duration(m.jitterFrac); span > 0 {
		m.randMu.Lock()
		jitter = time.Duration(m.rnd.Int63n(int64(span)))
		m.randMu.Unlock()
	}
	nodes := 1
	if m.cluster != nil {
		nodes = m.cluster.NumNodes()
	}
	return rebalanceDelay(m.minDelay+jitter, nodes, m.NumServers(), m.connsPerSec)
}

// rebalanceDelay is the pure part of RebalanceDelay: base (the minimum plus
// its jitter) raised to the time numNodes clients need to reconnect to
// numServers servers at connsPerSec connections per second per server.
// numNodes and numServers below 1 count as 1.
func rebalanceDelay(base time.Duration, numNodes, numServers int, connsPerSec float64) time.Duration {
	numNodes = max(numNodes, 1)
	numServers = max(numServers, 1)
	secs := float64(numNodes) / (float64(numServers) * connsPerSec)
	scaled := secs * float64(time.Second)
	if scaled >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return max(base, time.Duration(scaled))
}

// ResetRebalanceTimer asks Run to re-arm its timer with a fresh
// RebalanceDelay. It never blocks; requests made before Run picks them up
// collapse into one.
func (m *Manager[S]) ResetRebalanceTimer() {
	select {
	case m.resetCh <- struct{}{}:
	default:
	}
}

// Run rebalances the list every RebalanceDelay until ctx is done, then
// returns. It owns the timer; call it once, from its own goroutine.
func (m *Manager[S]) Run(ctx context.Context) {
	timer := time.NewTimer(m.RebalanceDelay())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			m.log.Debug("manager stopped")
			return
		case <-m.resetCh:
			timer.Reset(m.RebalanceDelay())
		case <-timer.C:
			m.RebalanceServers(ctx)
			timer.Reset(m.RebalanceDelay())
		}
	}
}
