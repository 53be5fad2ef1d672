package admin

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

// runtimeRegistry holds the Go runtime and process collectors
// (go_goroutines, go_memstats_*, process_resident_memory_bytes,
// process_open_fds …). They describe the whole process, so there is one
// set however many servers a process runs; every /metrics serves it next
// to its own registry.
var runtimeRegistry = sync.OnceValue(func() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
})

// LeaderEpoch is a gauge, xserver_leader_epoch, reading the highest leader
// epoch this process has seen from epoch at each scrape. A process whose
// value lags the others' follows a stale leader.
func LeaderEpoch(epoch func() uint64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xserver_leader_epoch",
		Help: "Highest mgrserver leader epoch this process has seen.",
	}, func() float64 { return float64(epoch()) })
}

// WatchRedis adds a hook to c that notes every failed command, pipeline
// and dial, and returns the metrics that show them:
// xserver_redis_errors_total and xserver_redis_last_error_age_seconds
// (seconds since the last failure, +Inf when none since start). A key that
// does not exist, a transaction aborted by WATCH, a script cache miss, a
// cancelled context and the optional connection set-up commands go-redis
// tolerates on older servers (HELLO, CLIENT SETINFO …) are not failures.
func WatchRedis(c redis.UniversalClient) prometheus.Collector {
	h := &redisErrors{}
	c.AddHook(h)
	return h
}

type redisErrors struct {
	count atomic.Uint64
	last  atomic.Int64 // unix nanoseconds of the last failure; 0 = none
}

var (
	redisErrorsDesc = prometheus.NewDesc("xserver_redis_errors_total", "Redis commands, pipelines and dials that failed.", nil, nil)
	redisAgeDesc    = prometheus.NewDesc("xserver_redis_last_error_age_seconds", "Seconds since the last failed Redis command (+Inf when none since start).", nil, nil)
)

func (h *redisErrors) note(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) ||
		errors.Is(err, context.Canceled) || strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return
	}
	h.count.Add(1)
	h.last.Store(time.Now().UnixNano())
}

func (h *redisErrors) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		h.note(err)
		return c, err
	}
}

func (h *redisErrors) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !tolerated(cmd, err) {
			h.note(err)
		}
		return err
	}
}

func (h *redisErrors) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil {
			return nil
		}
		for _, c := range cmds {
			if c.Err() != nil && !tolerated(c, c.Err()) {
				h.note(c.Err())
				return err
			}
		}
		if !tolerated(nil, err) {
			h.note(err)
		}
		return err
	}
}

// tolerated reports a server's refusal of a connection set-up command
// that go-redis does without (HELLO on servers before 6, CLIENT SETINFO,
// CLIENT MAINT_NOTIFICATIONS): not a fault of the deployment.
func tolerated(cmd redis.Cmder, err error) bool {
	var re redis.Error
	if err == nil || !errors.As(err, &re) {
		return false
	}
	if cmd == nil {
		return true // the pipeline's error is one of its commands' (checked)
	}
	switch cmd.Name() {
	case "hello", "client":
		return true
	}
	return false
}

func (h *redisErrors) Describe(ch chan<- *prometheus.Desc) {
	ch <- redisErrorsDesc
	ch <- redisAgeDesc
}

func (h *redisErrors) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(redisErrorsDesc, prometheus.CounterValue, float64(h.count.Load()))
	age := math.Inf(1)
	if last := h.last.Load(); last != 0 {
		age = time.Since(time.Unix(0, last)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(redisAgeDesc, prometheus.GaugeValue, age)
}
