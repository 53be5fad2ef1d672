package mgrserver

import "github.com/prometheus/client_golang/prometheus"

// metrics are registered on the server's own registry, never globally.
type metrics struct {
	leader        prometheus.Gauge
	epoch         prometheus.Gauge
	members       prometheus.Gauge
	conns         prometheus.Gauge
	registrations prometheus.Counter
	leaves        *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	dropped       prometheus.Counter
	renewFailures prometheus.Counter
	leaderChanges prometheus.Counter
	registerTime  prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		leader:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_mgr_leader", Help: "1 while this mgrserver holds the lease."}),
		epoch:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_mgr_epoch", Help: "Epoch of the lease last held."}),
		members:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_mgr_members", Help: "Registered members."}),
		conns:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_mgr_connections", Help: "Open intranet connections."}),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_mgr_registrations_total", Help: "Successful registrations."}),
		leaves:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_mgr_leaves_total", Help: "Members gone, by reason."}, []string{"reason"}),
		rejected:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_mgr_rejected_total", Help: "Connections closed for bad input or state, by reason."}, []string{"reason"}),
		dropped:       prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_mgr_events_dropped_total", Help: "Events not queued to a slow peer (it is resynced)."}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_mgr_lease_renew_failures_total", Help: "Lease renewals Redis did not answer."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_mgr_leadership_changes_total", Help: "Times this mgrserver started or stopped leading."}),
		registerTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "xserver_mgr_register_seconds",
			Help:    "From accepting a connection to reading its registration: the Hello's way out and the node's answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. 8 s
		}),
	}
	reg.MustRegister(m.leader, m.epoch, m.members, m.conns, m.registrations, m.leaves, m.rejected, m.dropped, m.renewFailures, m.leaderChanges, m.registerTime)
	return m
}
