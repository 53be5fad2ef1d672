package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/internal/lease"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/mgrserver"
)

func TestRetryBacksOffForEveryCause(t *testing.T) {
	const lo, hi = 20 * time.Millisecond, 500 * time.Millisecond
	t0 := time.Unix(1000, 0)
	for c := causeRedis; c <= causeLost; c++ {
		t.Run(c.key(), func(t *testing.T) {
			r := &retry{min: lo, max: hi}
			prev := time.Duration(0)
			for i := range 12 {
				d, _ := r.failed(c, t0.Add(time.Duration(i)*time.Second))
				if d < lo || d > hi || d < prev {
					t.Fatalf("failure %d: delay %v after %v, want growing within [%v, %v]", i, d, prev, lo, hi)
				}
				prev = d
			}
			if prev != hi {
				t.Fatalf("delay %v after 12 failures, want the ceiling %v", prev, hi)
			}
		})
	}
}

func TestRetryWarnings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := &retry{min: time.Millisecond, max: time.Second}
	if _, warn := r.failed(causeAuth, t0); !warn {
		t.Fatal("a wrong secret must warn at once")
	}
	r = &retry{min: time.Millisecond, max: time.Second}
	for _, c := range []cause{causeNoLeader, causeRedis, causeUnreachable, causeRefused} {
		if _, warn := r.failed(c, t0.Add(9*time.Second)); warn {
			t.Fatalf("%s warned within 10 s of failing: a hand-over or a blip heals sooner", c.key())
		}
	}
	r.failingSince = t0
	if _, warn := r.failed(causeNoLeader, t0.Add(warnAfter)); !warn {
		t.Fatal("no leader for 10 s must warn")
	}
}

func TestRetryHandOverFastOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := &retry{min: 20 * time.Millisecond, max: 500 * time.Millisecond}
	for i := range 10 {
		r.failed(causeRefused, t0.Add(time.Duration(i)*time.Second))
	}
	if d := r.ended(true, time.Minute); d != 0 {
		t.Fatalf("after a hand-over: %v, want an immediate retry", d)
	}
	if r.failingFor(t0) != 0 {
		t.Fatal("a registered session ends the failing streak")
	}
	d1, _ := r.failed(causeRefused, t0)
	d2, _ := r.failed(causeRefused, t0)
	if d1 != 20*time.Millisecond || d2 != 40*time.Millisecond {
		t.Fatalf("after the fast retry: %v then %v, want the backoff from its minimum", d1, d2)
	}
	if d := r.ended(false, time.Minute); d != 20*time.Millisecond {
		t.Fatalf("after a lost session: %v, want the minimum", d)
	}
	// A leader that accepts and drops at once is not retried fast.
	r = &retry{min: 20 * time.Millisecond, max: 500 * time.Millisecond}
	var last time.Duration
	for range 10 {
		last = r.ended(true, time.Millisecond)
	}
	if last != 500*time.Millisecond {
		t.Fatalf("sessions ending at once: delay %v, want the ceiling", last)
	}
}

// warnHook collects warnings.
type warnHook struct {
	mu    sync.Mutex
	lines []string
}

func (h *warnHook) Levels() []logrus.Level { return []logrus.Level{logrus.WarnLevel} }
func (h *warnHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	h.lines = append(h.lines, e.Message)
	h.mu.Unlock()
	return nil
}

func (h *warnHook) count(text string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		if strings.Contains(l, text) {
			n++
		}
	}
	return n
}

func rejected(t *testing.T, m *mgrserver.Server, reason string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "xserver_mgr_rejected_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// dialWindow is how long the storm tests count dials; short enough for CI,
// long enough for the backoff to reach its ceiling (default 500ms).
const dialWindow = 2 * time.Second

// startFailing starts a node that cannot join, lets it try for dialWindow
// and returns what WaitReady said and the warnings logged.
func startFailing(t *testing.T, cfg Config) (error, *warnHook) {
	t.Helper()
	h := &warnHook{}
	l := logrus.New()
	l.SetOutput(discard{})
	l.SetLevel(logrus.WarnLevel) // the library's default level
	l.AddHook(h)
	cfg.Logger = l
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), dialWindow)
	defer cancel()
	err = n.WaitReady(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady: %v, want DeadlineExceeded with the cause", err)
	}
	return err, h
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Each way of failing to join backs off to the ceiling instead of
// redialling in a loop, and says why: in WaitReady's error and, for a
// misconfiguration, in one warning at the library's default log level.
func TestJoinFailuresBackOffAndSayWhy(t *testing.T) {
	// Without the backoff, a node redialled about 46 times a second with a
	// wrong secret and thousands of times a second against a standby; with
	// it, about 8 dials in the first 2 s and 2 a second after.
	const maxDials = 20

	t.Run("wrong secret", func(t *testing.T) {
		c := newTestCluster(t)
		cfg := c.config(lobby)
		cfg.Secret = "not-the-secret"
		before := rejected(t, c.mgr, "auth")
		err, h := startFailing(t, cfg)
		dials := rejected(t, c.mgr, "auth") - before
		t.Logf("%v dials in %v; WaitReady: %v", dials, dialWindow, err)
		if dials > maxDials {
			t.Fatalf("%v dials in %v with a wrong secret, want at most %d", dials, dialWindow, maxDials)
		}
		const want = "authentication failed: every member must share XSERVER_SECRET"
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("WaitReady: %v, want the cause %q", err, want)
		}
		if n := h.count(want); n != 1 {
			t.Fatalf("%d warnings %q in %v, want 1", n, want, dialWindow)
		}
	})

	t.Run("standby named by the record", func(t *testing.T) {
		r := redistest.Start(t)
		rdb := r.Client(t)
		cfg := mgrserver.DefaultConfig()
		cfg.Redis, cfg.Secret, cfg.Listen = rdb, testSecret, "127.0.0.1:0"
		cfg.Logger = quietLogger()
		standby, err := mgrserver.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The lease is held before the standby starts, or it may win it
		// first and lead (then the node registers).
		held := lease.Record{Epoch: 7, Addr: "127.0.0.1:1", Token: "stuck"}
		if err := rdb.Set(context.Background(), lease.KeysFor("xserver").Leader, held.String(), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := standby.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { standby.Close() })
		// A lease that names the standby: it never leads (the lease is
		// held), and the record keeps sending nodes to it.
		rec := lease.Record{Epoch: 7, Addr: standby.Addr(), Token: "stuck"}
		if err := rdb.Set(context.Background(), lease.KeysFor("xserver").Leader, rec.String(), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		ncfg := DefaultConfig()
		ncfg.Redis, ncfg.Secret, ncfg.Type, ncfg.InnerIP = rdb, testSecret, lobby, "127.0.0.1"
		err, _ = startFailing(t, ncfg)
		dials := rejected(t, standby, "not_leader")
		t.Logf("%v dials in %v; WaitReady: %v", dials, dialWindow, err)
		if dials > maxDials {
			t.Fatalf("%v dials in %v against a standby, want at most %d", dials, dialWindow, maxDials)
		}
		if !strings.Contains(err.Error(), "refuses registration") || !strings.Contains(err.Error(), standby.Addr()) {
			t.Fatalf("WaitReady: %v, want the refusal and the address", err)
		}
	})

	t.Run("no leader", func(t *testing.T) {
		r := redistest.Start(t)
		cfg := DefaultConfig()
		cfg.Redis, cfg.Secret, cfg.Type, cfg.InnerIP, cfg.Cluster = r.Client(t), testSecret, lobby, "127.0.0.1", "nosuch"
		err, _ := startFailing(t, cfg)
		for _, want := range []string{"no leader published under xserver:{nosuch}:leader", "is an mgrserver running for cluster nosuch?"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("WaitReady: %v, want %q", err, want)
			}
		}
	})

	t.Run("redis unreachable", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		cfg := DefaultConfig()
		cfg.Redis, cfg.Secret, cfg.Type, cfg.InnerIP = rdb, testSecret, lobby, "127.0.0.1"
		err, _ := startFailing(t, cfg)
		if want := "cannot reach Redis at 127.0.0.1:1"; !strings.Contains(err.Error(), want) {
			t.Fatalf("WaitReady: %v, want %q", err, want)
		}
	})
}
