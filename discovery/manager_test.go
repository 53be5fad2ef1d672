package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// tServer is a test server: name is the key, ver tells updates apart.
type tServer struct {
	name string
	ver  int
}

func (s tServer) Key() string    { return s.name }
func (s tServer) String() string { return fmt.Sprintf("%s/%d", s.name, s.ver) }

func srv(name string) tServer { return tServer{name: name} }

func srvs(names ...string) []tServer {
	out := make([]tServer, len(names))
	for i, n := range names {
		out[i] = srv(n)
	}
	return out
}

// pingFunc adapts a function to Pinger.
type pingFunc[S Server] func(ctx context.Context, s S) (bool, error)

func (f pingFunc[S]) Ping(ctx context.Context, s S) (bool, error) { return f(ctx, s) }

var errPing = errors.New("ping failed")

func alwaysHealthy() Pinger[tServer] {
	return pingFunc[tServer](func(context.Context, tServer) (bool, error) { return true, nil })
}

// fixedCluster is a ClusterInfo whose size can change under a running Run.
type fixedCluster struct{ n atomic.Int64 }

func newCluster(n int) *fixedCluster {
	c := &fixedCluster{}
	c.n.Store(int64(n))
	return c
}

func (c *fixedCluster) NumNodes() int { return int(c.n.Load()) }

// debugLogger logs everything to nowhere, so the logging paths run under
// -race without noise.
func debugLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)
	return l
}

func newTestManager(p Pinger[tServer], seed int64) *Manager[tServer] {
	return NewManager(ManagerConfig[tServer]{
		Pinger: p,
		Rand:   rand.New(rand.NewSource(seed)),
		Logger: debugLogger(),
	})
}

func keys(l []tServer) string {
	ks := make([]string, len(l))
	for i, s := range l {
		ks[i] = s.String()
	}
	return strings.Join(ks, ",")
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestManagerAddServer(t *testing.T) {
	a2 := tServer{name: "a", ver: 2}
	b2 := tServer{name: "b", ver: 2}
	c2 := tServer{name: "c", ver: 2}
	tests := []struct {
		name string
		add  []tServer
		want []tServer
	}{
		{"one", srvs("a"), srvs("a")},
		{"appends in order", srvs("a", "b", "c"), srvs("a", "b", "c")},
		{"duplicate is a no-op", srvs("a", "b", "a"), srvs("a", "b")},
		{"update head in place", append(srvs("a", "b", "c"), a2), []tServer{a2, srv("b"), srv("c")}},
		{"update middle in place", append(srvs("a", "b", "c"), b2), []tServer{srv("a"), b2, srv("c")}},
		{"update tail in place", append(srvs("a", "b", "c"), c2), []tServer{srv("a"), srv("b"), c2}},
		{"update then add", append(srvs("a", "b"), a2, srv("c")), []tServer{a2, srv("b"), srv("c")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestManager(alwaysHealthy(), 1)
			for _, s := range tt.add {
				m.AddServer(s)
			}
			if got := m.Servers(); !slices.Equal(got, tt.want) {
				t.Fatalf("Servers() = %v, want %v", keys(got), keys(tt.want))
			}
			if got := m.NumServers(); got != len(tt.want) {
				t.Fatalf("NumServers() = %d, want %d", got, len(tt.want))
			}
			if head, ok := m.FindServer(); !ok || head != tt.want[0] {
				t.Fatalf("FindServer() = %v, %v; want %v", head, ok, tt.want[0])
			}
		})
	}
}

func TestManagerServersIsACopy(t *testing.T) {
	m := newTestManager(alwaysHealthy(), 1)
	m.AddServer(srv("a"))
	m.AddServer(srv("b"))
	got := m.Servers()
	got[0] = srv("zzz")
	if head, _ := m.FindServer(); head != srv("a") {
		t.Fatalf("mutating Servers() result changed the manager: head %v", head)
	}
}

func TestManagerOffline(t *testing.T) {
	tests := []struct {
		name    string
		healthy []bool // ping result per rebalance, after adding servers
		add     []string
		want    bool
		wantLen int
	}{
		{name: "new manager is offline", want: true},
		{name: "rebalance of empty list stays offline", healthy: []bool{true}, want: true},
		{name: "add clears offline", add: []string{"a"}, want: false, wantLen: 1},
		{name: "all pings failing sets offline", add: []string{"a", "b", "c"}, healthy: []bool{false}, want: true, wantLen: 3},
		{name: "later success clears offline", add: []string{"a", "b"}, healthy: []bool{false, true}, want: false, wantLen: 2},
		{name: "success then failure", add: []string{"a", "b"}, healthy: []bool{true, false}, want: true, wantLen: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var healthy atomic.Bool
			m := newTestManager(pingFunc[tServer](func(context.Context, tServer) (bool, error) {
				if healthy.Load() {
					return true, nil
				}
				return false, errPing
			}), 7)
			for _, n := range tt.add {
				m.AddServer(srv(n))
			}
			for _, h := range tt.healthy {
				healthy.Store(h)
				before := m.Servers()
				m.RebalanceServers(context.Background())
				if !h && !slices.Equal(m.Servers(), before) {
					t.Fatalf("failed rebalance changed the list: %v -> %v", keys(before), keys(m.Servers()))
				}
			}
			if got := m.IsOffline(); got != tt.want {
				t.Fatalf("IsOffline() = %v, want %v", got, tt.want)
			}
			if got := m.NumServers(); got != tt.wantLen {
				t.Fatalf("NumServers() = %d, want %d", got, tt.wantLen)
			}
		})
	}
}

func TestManagerFindServerEmpty(t *testing.T) {
	m := newTestManager(alwaysHealthy(), 1)
	if s, ok := m.FindServer(); ok || s != (tServer{}) {
		t.Fatalf("FindServer() on empty = %v, %v; want zero, false", s, ok)
	}
	m.AddServer(srv("a"))
	m.RemoveServer(srv("a"))
	if _, ok := m.FindServer(); ok {
		t.Fatal("FindServer() after removing the only server returned ok")
	}
}

func TestManagerNotifyRotates(t *testing.T) {
	m := newTestManager(alwaysHealthy(), 1)
	for _, s := range srvs("a", "b", "c") {
		m.AddServer(s)
	}
	for _, want := range []string{"a", "b", "c", "a", "b"} {
		head, ok := m.FindServer()
		if !ok || head.name != want {
			t.Fatalf("FindServer() = %v, %v; want %s", head, ok, want)
		}
		m.NotifyFailedServer(head)
		if got := m.NumServers(); got != 3 {
			t.Fatalf("NumServers() = %d after notify, want 3", got)
		}
	}
}

func TestManagerNotifyNoOps(t *testing.T) {
	tests := []struct {
		name   string
		list   []tServer
		notify tServer
	}{
		{"non-head", srvs("a", "b", "c"), srv("b")},
		{"tail", srvs("a", "b", "c"), srv("c")},
		{"unknown", srvs("a", "b", "c"), srv("z")},
		{"stale copy of head", []tServer{{name: "a", ver: 2}, srv("b")}, srv("a")},
		{"single server", srvs("a"), srv("a")},
		{"empty", nil, srv("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestManager(alwaysHealthy(), 1)
			for _, s := range tt.list {
				m.AddServer(s)
			}
			before := m.Servers()
			m.NotifyFailedServer(tt.notify)
			if got := m.Servers(); !slices.Equal(got, before) {
				t.Fatalf("notify %v changed the list: %v -> %v", tt.notify, keys(before), keys(got))
			}
		})
	}
}

func TestManagerNotifyBurstRotatesOnce(t *testing.T) {
	m := newTestManager(alwaysHealthy(), 1)
	for _, s := range srvs("a", "b", "c", "d") {
		m.AddServer(s)
	}
	head, _ := m.FindServer()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			m.NotifyFailedServer(head)
		})
	}
	close(start)
	wg.Wait()
	if got, want := m.Servers(), srvs("b", "c", "d", "a"); !slices.Equal(got, want) {
		t.Fatalf("after a burst of notifications: %v, want %v", keys(got), keys(want))
	}
}

func TestManagerRemoveServer(t *testing.T) {
	tests := []struct {
		name   string
		remove tServer
		want   []tServer
	}{
		{"head", srv("a"), srvs("b", "c", "d")},
		{"middle", srv("c"), srvs("a", "b", "d")},
		{"tail", srv("d"), srvs("a", "b", "c")},
		{"unknown is a no-op", srv("z"), srvs("a", "b", "c", "d")},
		{"by key, any version", tServer{name: "b", ver: 9}, srvs("a", "c", "d")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestManager(alwaysHealthy(), 1)
			for _, s := range srvs("a", "b", "c", "d") {
				m.AddServer(s)
			}
			published := m.Servers()
			m.RemoveServer(tt.remove)
			if got := m.Servers(); !slices.Equal(got, tt.want) {
				t.Fatalf("Servers() = %v, want %v", keys(got), keys(tt.want))
			}
			if m.IsOffline() {
				t.Fatal("RemoveServer set offline")
			}
			if !slices.Equal(published, srvs("a", "b", "c", "d")) {
				t.Fatal("an earlier copy changed")
			}
		})
	}
}

func TestManagerRemoveAll(t *testing.T) {
	m := newTestManager(alwaysHealthy(), 1)
	for _, s := range srvs("a", "b", "c") {
		m.AddServer(s)
	}
	for _, s := range srvs("b", "a", "c", "c") {
		m.RemoveServer(s)
	}
	if n := m.NumServers(); n != 0 {
		t.Fatalf("NumServers() = %d, want 0", n)
	}
}

func TestManagerRebalanceManyOrders(t *testing.T) {
	pingRand := rand.New(rand.NewSource(42))
	var mu sync.Mutex // guards pingRand
	m := newTestManager(pingFunc[tServer](func(context.Context, tServer) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if pingRand.Intn(2) == 0 {
			return false, errPing
		}
		return true, nil
	}), 43)
	for i := range 100 {
		m.AddServer(srv(fmt.Sprintf("s%03d", i)))
	}
	orders := make(map[string]bool)
	heads := make(map[string]bool)
	for range 100 {
		m.RebalanceServers(context.Background())
		l := m.Servers()
		if len(l) != 100 {
			t.Fatalf("rebalance lost servers: %d left", len(l))
		}
		orders[keys(l)] = true
		heads[l[0].name] = true
	}
	if len(orders) < 50 {
		t.Fatalf("100 rebalances gave only %d distinct orders, want >= 50", len(orders))
	}
	if len(heads) < 20 {
		t.Fatalf("100 rebalances gave only %d distinct heads", len(heads))
	}
}

func TestManagerRebalanceSkipsFailingServer(t *testing.T) {
	tests := []struct {
		name    string
		seed    int64
		servers int
	}{
		{"two servers", 1, 2},
		{"three servers", 2, 3},
		{"ten servers", 3, 10},
		{"ten servers other seed", 4, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := srv("s0")
			m := newTestManager(pingFunc[tServer](func(_ context.Context, s tServer) (bool, error) {
				if s == bad {
					return false, errPing
				}
				return true, nil
			}), tt.seed)
			for i := range tt.servers {
				m.AddServer(srv(fmt.Sprintf("s%d", i)))
			}
			sawBadSecond := false
			for range 100 {
				m.RebalanceServers(context.Background())
				l := m.Servers()
				if l[0] == bad {
					t.Fatalf("failing server left at the head: %v", keys(l))
				}
				if len(l) != tt.servers {
					t.Fatalf("rebalance changed the count: %v", keys(l))
				}
				sawBadSecond = sawBadSecond || l[len(l)-1] == bad
			}
			if !sawBadSecond {
				t.Fatal("failing server was never cycled to the tail")
			}
		})
	}
}

func TestManagerRebalanceReconcile(t *testing.T) {
	x := srv("x")
	tests := []struct {
		name string
		// during runs inside the first ping, with the server being pinged.
		during func(m *Manager[tServer], pinged tServer)
		check  func(t *testing.T, pinged tServer, got []tServer)
	}{
		{
			name:   "server added during pings is kept at the tail",
			during: func(m *Manager[tServer], _ tServer) { m.AddServer(x) },
			check: func(t *testing.T, pinged tServer, got []tServer) {
				if len(got) != 5 || got[len(got)-1] != x || got[0] != pinged {
					t.Fatalf("got %v, want 5 servers headed by %v ending with x", keys(got), pinged)
				}
			},
		},
		{
			name: "server removed during pings is dropped",
			during: func(m *Manager[tServer], pinged tServer) {
				for _, s := range m.Servers() {
					if s != pinged {
						m.RemoveServer(s)
						return
					}
				}
			},
			check: func(t *testing.T, pinged tServer, got []tServer) {
				if len(got) != 3 || got[0] != pinged {
					t.Fatalf("got %v, want 3 servers headed by %v", keys(got), pinged)
				}
			},
		},
		{
			name: "server updated during pings keeps its new value",
			during: func(m *Manager[tServer], pinged tServer) {
				for _, s := range m.Servers() {
					if s != pinged {
						s.ver = 5
						m.AddServer(s)
						return
					}
				}
			},
			check: func(t *testing.T, pinged tServer, got []tServer) {
				updated := 0
				for _, s := range got {
					if s.ver == 5 {
						updated++
					}
				}
				if len(got) != 4 || updated != 1 || got[0] != pinged {
					t.Fatalf("got %v, want 4 servers, one updated, headed by %v", keys(got), pinged)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m *Manager[tServer]
			var calls atomic.Int32
			var pinged tServer
			m = newTestManager(pingFunc[tServer](func(_ context.Context, s tServer) (bool, error) {
				if calls.Add(1) == 1 {
					pinged = s
					tt.during(m, s)
				}
				return true, nil
			}), 11)
			for _, s := range srvs("a", "b", "c", "d") {
				m.AddServer(s)
			}
			m.RebalanceServers(context.Background())
			tt.check(t, pinged, m.Servers())
		})
	}
}

func TestManagerRebalanceHeadRemovedDuringPing(t *testing.T) {
	for seed := range int64(10) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			var m *Manager[tServer]
			var afterRemove []tServer
			m = newTestManager(pingFunc[tServer](func(_ context.Context, s tServer) (bool, error) {
				m.RemoveServer(s)
				afterRemove = m.Servers()
				return true, nil
			}), seed)
			for _, s := range srvs("a", "b", "c", "d", "e") {
				m.AddServer(s)
			}
			m.RebalanceServers(context.Background())
			if got := m.Servers(); !slices.Equal(got, afterRemove) {
				t.Fatalf("list touched after its head was removed: %v, want %v", keys(got), keys(afterRemove))
			}
			if m.IsOffline() {
				t.Fatal("a healthy ping left the manager offline")
			}
		})
	}
}

func TestManagerRebalanceCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := newTestManager(pingFunc[tServer](func(ctx context.Context, _ tServer) (bool, error) {
		cancel()
		return false, ctx.Err()
	}), 1)
	for _, s := range srvs("a", "b", "c") {
		m.AddServer(s)
	}
	m.RebalanceServers(ctx)
	if m.IsOffline() {
		t.Fatal("a cancelled rebalance set offline")
	}
	if got := m.Servers(); !slices.Equal(got, srvs("a", "b", "c")) {
		t.Fatalf("a cancelled rebalance changed the list: %v", keys(got))
	}
}

func TestManagerNoPinger(t *testing.T) {
	m := NewManager(ManagerConfig[tServer]{}) // defaults: no rand, no logger
	for _, s := range srvs("a", "b", "c") {
		m.AddServer(s)
	}
	m.RebalanceServers(context.Background())
	if got := m.Servers(); !slices.Equal(got, srvs("a", "b", "c")) || m.IsOffline() {
		t.Fatalf("rebalance without a pinger changed state: %v offline=%v", keys(got), m.IsOffline())
	}
	if d := m.RebalanceDelay(); d < DefaultMinRebalance || d >= DefaultMinRebalance*3/2 {
		t.Fatalf("default RebalanceDelay() = %v", d)
	}
}

func TestManagerConcurrent(t *testing.T) {
	m := newTestManager(pingFunc[tServer](func(_ context.Context, s tServer) (bool, error) {
		return s.name != "s3", nil
	}), 5)
	for i := range 8 {
		m.AddServer(srv(fmt.Sprintf("s%d", i)))
	}
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var readers, writers sync.WaitGroup
	for range 4 { // readers, until the writers are done
		readers.Go(func() {
			for !stopped() {
				if s, ok := m.FindServer(); ok {
					m.NotifyFailedServer(s)
				}
				l := m.Servers()
				seen := make(map[string]bool)
				for _, s := range l {
					if seen[s.name] {
						t.Errorf("duplicate key in %v", keys(l))
						return
					}
					seen[s.name] = true
				}
				_ = m.NumServers()
				_ = m.IsOffline()
				_ = m.RebalanceDelay()
			}
		})
	}
	for w := range 3 {
		writers.Go(func() {
			for i := range 2000 {
				s := tServer{name: fmt.Sprintf("w%d-%d", w, i%5), ver: i}
				m.AddServer(s)
				if i%3 == 0 {
					m.RemoveServer(s)
				}
			}
		})
	}
	writers.Go(func() {
		for range 200 {
			m.RebalanceServers(context.Background())
		}
	})
	writers.Wait()
	close(stop)
	readers.Wait()
	for i := range 8 {
		if !slices.ContainsFunc(m.Servers(), func(s tServer) bool { return s.name == fmt.Sprintf("s%d", i) }) {
			t.Fatalf("server s%d lost", i)
		}
	}
}

func TestRebalanceDelay(t *testing.T) {
	tests := []struct {
		name     string
		servers  int
		cluster  ClusterInfo
		min      time.Duration
		jitter   int
		conns    float64
		lo, hiEx time.Duration // want lo <= d < hiEx
	}{
		{name: "1 server, 1 node", servers: 1, cluster: newCluster(1), lo: 2 * time.Minute, hiEx: 3 * time.Minute},
		{name: "no cluster info", servers: 3, lo: 2 * time.Minute, hiEx: 3 * time.Minute},
		{name: "no servers", servers: 0, cluster: newCluster(1), lo: 2 * time.Minute, hiEx: 3 * time.Minute},
		{name: "1 server, 64*300 nodes", servers: 1, cluster: newCluster(64 * 300), lo: 300 * time.Second, hiEx: 300*time.Second + 1},
		{name: "3 servers, 64*3*1000 nodes", servers: 3, cluster: newCluster(64 * 3 * 1000), lo: 1000 * time.Second, hiEx: 1000*time.Second + 1},
		{name: "scaled below minimum", servers: 5, cluster: newCluster(64 * 5 * 100), lo: 2 * time.Minute, hiEx: 3 * time.Minute},
		{name: "custom min and jitter", servers: 1, cluster: newCluster(1), min: 10 * time.Second, jitter: 4, lo: 10 * time.Second, hiEx: 12500 * time.Millisecond},
		{name: "custom rate", servers: 2, cluster: newCluster(1000), conns: 1, lo: 500 * time.Second, hiEx: 500*time.Second + 1},
		{name: "negative nodes count as one", servers: 1, cluster: newCluster(-5), lo: 2 * time.Minute, hiEx: 3 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(ManagerConfig[tServer]{
				Pinger:               alwaysHealthy(),
				Cluster:              tt.cluster,
				Rand:                 rand.New(rand.NewSource(3)),
				MinRebalance:         tt.min,
				JitterFraction:       tt.jitter,
				ConnsPerSecPerServer: tt.conns,
			})
			for i := range tt.servers {
				m.AddServer(srv(fmt.Sprint(i)))
			}
			distinct := make(map[time.Duration]bool)
			for range 200 {
				d := m.RebalanceDelay()
				if d < tt.lo || d >= tt.hiEx {
					t.Fatalf("RebalanceDelay() = %v, want in [%v, %v)", d, tt.lo, tt.hiEx)
				}
				distinct[d] = true
			}
			if tt.hiEx-tt.lo > time.Second && len(distinct) < 100 {
				t.Fatalf("jitter gave only %d distinct delays out of 200", len(distinct))
			}
		})
	}
}

func TestRebalanceDelayPure(t *testing.T) {
	tests := []struct {
		name    string
		base    time.Duration
		nodes   int
		servers int
		conns   float64
		want    time.Duration
	}{
		{"base wins", time.Minute, 1, 1, 64, time.Minute},
		{"scaled wins", time.Minute, 6400, 1, 64, 100 * time.Second},
		{"zero servers count as one", time.Second, 64, 0, 64, time.Second},
		{"zero nodes count as one", 0, 0, 1, 1, time.Second},
		{"overflow clamps", time.Minute, 1 << 62, 1, 1e-9, time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rebalanceDelay(tt.base, tt.nodes, tt.servers, tt.conns); got != tt.want {
				t.Fatalf("rebalanceDelay(%v, %d, %d, %v) = %v, want %v", tt.base, tt.nodes, tt.servers, tt.conns, got, tt.want)
			}
		})
	}
}

func TestManagerRun(t *testing.T) {
	var pings atomic.Int32
	m := NewManager(ManagerConfig[tServer]{
		Pinger: pingFunc[tServer](func(context.Context, tServer) (bool, error) {
			pings.Add(1)
			return true, nil
		}),
		Rand:         rand.New(rand.NewSource(9)),
		Logger:       debugLogger(),
		MinRebalance: time.Millisecond,
	})
	m.AddServer(srv("a"))
	m.AddServer(srv("b"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	waitFor(t, "three rebalances", func() bool { return pings.Load() >= 3 })
	cancel()
	waitFor(t, "Run to return", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
}

func TestManagerResetRebalanceTimer(t *testing.T) {
	// A huge cluster makes the first delay an hour; shrinking it and
	// resetting the timer must bring the rebalance forward.
	cluster := newCluster(64 * 3600)
	var pings atomic.Int32
	m := NewManager(ManagerConfig[tServer]{
		Pinger: pingFunc[tServer](func(context.Context, tServer) (bool, error) {
			pings.Add(1)
			return true, nil
		}),
		Cluster:      cluster,
		Rand:         rand.New(rand.NewSource(9)),
		MinRebalance: time.Millisecond,
	})
	m.AddServer(srv("a"))
	if d := m.RebalanceDelay(); d != time.Hour {
		t.Fatalf("RebalanceDelay() = %v, want 1h", d)
	}
	// Never blocks, even with no Run to receive.
	m.ResetRebalanceTimer()
	m.ResetRebalanceTimer()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	cluster.n.Store(1)
	m.ResetRebalanceTimer()
	waitFor(t, "a rebalance after the reset", func() bool { return pings.Load() >= 1 })
	cancel()
	<-done
}

// A writer that changes the head between NotifyFailedServer's lock-free
// check and its lock (here the failed head is removed, or another notify
// already rotated it) must not make the notify rotate the new, healthy
// head: the head is checked again under the lock.
func TestManagerNotifyRechecksHeadUnderLock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m *Manager[tServer], head tServer)
		want   []tServer
	}{
		{"head removed", func(m *Manager[tServer], head tServer) { m.RemoveServer(head) }, srvs("b", "c")},
		{"head updated", func(m *Manager[tServer], head tServer) { m.AddServer(tServer{name: "a", ver: 2}) },
			[]tServer{{name: "a", ver: 2}, srv("b"), srv("c")}},
		{"head rotated by another writer", func(m *Manager[tServer], head tServer) {
			m.listMu.Lock()
			m.store(cycled(m.load()))
			m.listMu.Unlock()
		}, srvs("b", "c", "a")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(alwaysHealthy(), 1)
			for _, s := range srvs("a", "b", "c") {
				m.AddServer(s)
			}
			head, _ := m.FindServer()
			calls := 0
			m.beforeNotifyLock = func() { calls++; tc.change(m, head) }
			m.NotifyFailedServer(head)
			if calls != 1 {
				t.Fatalf("hook ran %d times, want 1", calls)
			}
			if got := m.Servers(); !slices.Equal(got, tc.want) {
				t.Fatalf("list %v, want %v: the notify acted on a head that had changed", keys(got), keys(tc.want))
			}
		})
	}
}
