package node

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/internal/resume"
	"github.com/xserver/xserver/login"
)

// Players found offline are remembered (Config.OfflineCache) while this
// node is subscribed to the gateways' login announcements
// (login.LoginsChannel): a message to a player with no session then costs
// no Redis lookup. The rules, applied by the account state
// (resume.NodeCore):
//
//   - a lookup's offline answer is kept only if the subscription was
//     confirmed before the lookup was issued and has not been lost,
//     renewed or flushed since (a generation counter);
//   - a login announced for the account removes its entry; announced while
//     its lookup runs, the lookup's answer (perhaps read before the login)
//     is not kept and the holder is looked up again;
//   - a subscription error, an unanswered ping, a renewed subscription
//     (Redis reconnect, failover, restart) and a gateway's "restored"
//     announcement (records written back after Redis lost them) drop every
//     entry.

// subPing is how long the logins subscription may be silent before it is
// pinged; a ping unanswered for as long again counts as a lost
// subscription.
const subPing = 5 * time.Second

// subBackoffMax caps the wait between subscription attempts.
const subBackoffMax = 2 * time.Second

// subscribe starts the logins subscription once, when the offline cache is
// on.
func (r *relay) subscribe(ctx context.Context) {
	if r.n.cfg.OfflineCache <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subStarted || ctx.Err() != nil {
		return
	}
	r.subStarted = true
	r.wg.Add(1) // the caller, a lookup worker, holds the group open
	go func() { defer r.wg.Done(); r.subscribeLoop(ctx) }()
}

// subscribeLoop keeps the logins subscription until ctx ends.
func (r *relay) subscribeLoop(ctx context.Context) {
	ch := login.LoginsChannel(r.n.cfg.Cluster)
	var backoff time.Duration
	for first := true; ; first = false {
		if !first {
			r.hook.BeforeResubscribe()
		}
		ps := r.n.cfg.Redis.Subscribe(ctx, ch)
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks a read
		up, err := r.receive(ctx, ps, ch)
		stop()
		_ = ps.Close()
		r.do(func() *resume.Output { return r.core.SubDown(time.Now()) })
		if ctx.Err() != nil {
			return
		}
		r.lookLog.Warn(r.n.log.WithError(err), "lost the Redis subscription to login announcements; messages to offline players are looked up each until it is back")
		if up {
			backoff = 0
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), subBackoffMax)
		t := time.NewTimer(r.n.jitter(backoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

var errPingUnanswered = errors.New("node: the logins subscription did not answer a ping")

// receive applies announcements until the subscription fails; up reports
// whether it was confirmed.
func (r *relay) receive(ctx context.Context, ps *redis.PubSub, ch string) (up bool, err error) {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, subPing)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || ctx.Err() != nil {
				return up, err
			}
			if pinged {
				return up, errPingUnanswered
			}
			if err := ps.Ping(ctx); err != nil {
				return up, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Channel != ch {
				continue
			}
			if m.Kind != "subscribe" {
				return up, errors.New("node: unsubscribed from the logins channel")
			}
			// Confirmed (again: go-redis may have reconnected inside a
			// read): whatever was published before may have been missed.
			up = true
			r.do(func() *resume.Output { return r.core.SubUp(time.Now()) })
		case *redis.Message:
			a, ok := login.ParseAnnouncement(m.Payload)
			switch {
			case !ok:
			case a.Flush:
				r.do(func() *resume.Output { return r.core.FlushOffline(time.Now()) })
			default:
				r.do(func() *resume.Output { return r.core.Announced(time.Now(), a.Account) })
			}
		}
	}
}

// OfflineCacheStats describes the cache of players found offline
// (Config.OfflineCache).
type OfflineCacheStats = resume.OfflineStats

// OfflineCache returns the figures of the cache of players found offline.
func (n *Node) OfflineCache() OfflineCacheStats {
	n.rl.mu.Lock()
	defer n.rl.mu.Unlock()
	return n.rl.core.OfflineStats()
}

// Metrics returns the node's own metrics, for the game's registry:
// xserver_node_offline_cache_entries, _hits_total, _evictions_total,
// _invalidations_total, _flushes_total, and
// xserver_node_logins_subscribed.
func (n *Node) Metrics() prometheus.Collector { return nodeMetrics{n} }

type nodeMetrics struct{ n *Node }

var (
	offEntriesDesc = prometheus.NewDesc("xserver_node_offline_cache_entries", "Players remembered as offline: messages to them are reported undeliverable without a Redis lookup.", nil, nil)
	offHitsDesc    = prometheus.NewDesc("xserver_node_offline_cache_hits_total", "Messages and kicks to players known offline, dropped without a Redis lookup.", nil, nil)
	offEvictDesc   = prometheus.NewDesc("xserver_node_offline_cache_evictions_total", "Offline players forgotten because the cache was full (Config.OfflineCache).", nil, nil)
	offInvalDesc   = prometheus.NewDesc("xserver_node_offline_cache_invalidations_total", "Offline players forgotten because their login was announced or their session seen.", nil, nil)
	offFlushDesc   = prometheus.NewDesc("xserver_node_offline_cache_flushes_total", "Times every offline player was forgotten: the logins subscription was lost or renewed, or a gateway restored session records.", nil, nil)
	subUpDesc      = prometheus.NewDesc("xserver_node_logins_subscribed", "1 while the node's subscription to the gateways' login announcements is confirmed (offline players are cached only then).", nil, nil)
)

func (m nodeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{offEntriesDesc, offHitsDesc, offEvictDesc, offInvalDesc, offFlushDesc, subUpDesc} {
		ch <- d
	}
}

func (m nodeMetrics) Collect(ch chan<- prometheus.Metric) {
	s := m.n.OfflineCache()
	up := 0.0
	if s.Subscribed {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(offEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(offHitsDesc, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(offEvictDesc, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(offInvalDesc, prometheus.CounterValue, float64(s.Invalidations))
	ch <- prometheus.MustNewConstMetric(offFlushDesc, prometheus.CounterValue, float64(s.Flushes))
	ch <- prometheus.MustNewConstMetric(subUpDesc, prometheus.GaugeValue, up)
}
