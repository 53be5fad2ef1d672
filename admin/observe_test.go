package admin

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/internal/redistest"
)

// value gathers reg and returns the value of the metric called name.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// WatchRedis counts failures, not misses, and its age gauge tells how long
// ago the last one was.
func TestWatchRedis(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(WatchRedis(rdb), LeaderEpoch(func() uint64 { return 7 }))
	ctx := context.Background()

	if a := value(t, reg, "xserver_redis_last_error_age_seconds"); !math.IsInf(a, 1) {
		t.Fatalf("age %v before any failure, want +Inf", a)
	}
	if err := rdb.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	rdb.Set(ctx, "s", "v", 0)
	if err := rdb.LPush(ctx, "s", "x").Err(); err == nil { // WRONGTYPE
		t.Fatal("LPUSH on a string succeeded")
	}
	if got := value(t, reg, "xserver_redis_errors_total"); got != 1 {
		t.Fatalf("errors_total %v after one failure and one miss, want 1", got)
	}
	if a := value(t, reg, "xserver_redis_last_error_age_seconds"); math.IsInf(a, 1) || a < 0 || a > 5 {
		t.Fatalf("age %v right after a failure", a)
	}

	// Redis gone: failed commands and dials count.
	srv.Stop()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = rdb.Ping(cctx).Err()
	if got := value(t, reg, "xserver_redis_errors_total"); got < 2 {
		t.Fatalf("errors_total %v with Redis stopped", got)
	}
	if got := value(t, reg, "xserver_leader_epoch"); got != 7 {
		t.Fatalf("xserver_leader_epoch %v, want 7", got)
	}
}
