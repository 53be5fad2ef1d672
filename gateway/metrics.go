package gateway

import "github.com/prometheus/client_golang/prometheus"

// metrics live on the gateway's own registry. Label values are resolved
// once so the hot path only does atomic adds.
type metrics struct {
	clients         prometheus.Gauge
	links           prometheus.Gauge
	framesIn        prometheus.Counter // from clients
	framesOut       prometheus.Counter // to clients
	bytesIn         prometheus.Counter
	bytesOut        prometheus.Counter
	nodeIn          prometheus.Counter // frames from node links
	nodeOut         prometheus.Counter // frames to node links
	drops           *prometheus.CounterVec
	logins          *prometheus.CounterVec
	ended           *prometheus.CounterVec
	loseAccounts    prometheus.Counter
	relay           prometheus.Histogram
	detached        prometheus.Gauge
	resumes         *prometheus.CounterVec
	rebinds         prometheus.Counter
	restored        prometheus.Counter
	holderLost      prometheus.Counter
	staleAnnounce   prometheus.Counter
	shed            prometheus.Counter
	shedNotices     prometheus.Counter
	groupBroadcasts prometheus.Counter
	rateLimited     *prometheus.CounterVec
	parks           prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_frames_total", Help: "Frames relayed, by direction."}, []string{"dir"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_bytes_total", Help: "Client payload bytes, by direction."}, []string{"dir"})
	m := &metrics{
		clients:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_gateway_clients", Help: "Logged-in client sessions."}),
		links:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_gateway_node_links", Help: "Connected node links."}),
		framesIn:     frames.WithLabelValues("client_in"),
		framesOut:    frames.WithLabelValues("client_out"),
		nodeIn:       frames.WithLabelValues("node_in"),
		nodeOut:      frames.WithLabelValues("node_out"),
		bytesIn:      bytes.WithLabelValues("client_in"),
		bytesOut:     bytes.WithLabelValues("client_out"),
		drops:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_drops_total", Help: "Frames not delivered and connections closed, by reason."}, []string{"reason"}),
		logins:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_logins_total", Help: "Client logins, by result."}, []string{"result"}),
		ended:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_sessions_ended_total", Help: "Client sessions ended, by reason."}, []string{"reason"}),
		loseAccounts: prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_lose_account_total", Help: "Lose-account notices sent to nodes."}),
		relay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "xserver_gateway_relay_seconds", Help: "Time from reading a frame to queueing it for its destination (sampled 1/16).",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
	}
	m.detached = prometheus.NewGauge(prometheus.GaugeOpts{Name: "xserver_gateway_sessions_detached", Help: "Sessions whose client is away, waiting for a resume."})
	m.resumes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_resumes_total", Help: "Client resumes, by result (here, moved, expired, bad_secret, unavailable, shutdown)."}, []string{"result"})
	m.rebinds = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_rebinds_total", Help: "Accounts rebound from an unreachable instance to another."})
	m.restored = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_sessions_restored_total", Help: "Session records restored after Redis lost them."})
	m.holderLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_sessions_superseded_total", Help: "Sessions ended because the Redis record named another holder."})
	m.staleAnnounce = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_stale_login_announcements_total", Help: "Other gateways' login announcements ignored because the Redis record still names this gateway's session (an older login's, delivered late)."})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_broadcasts_shed_total", Help: "Broadcast and group messages dropped for clients too slow to read them (each client is told, ClientShed)."})
	m.shedNotices = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_shed_notices_total", Help: "ClientShed notices sent: to slow clients, and to every client after a node's link was down (broadcasts may be missing)."})
	m.groupBroadcasts = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_group_broadcasts_total", Help: "Group broadcasts received from nodes (each fanned out to the members held here)."})
	reg.MustRegister(m.shed, m.shedNotices, m.groupBroadcasts)
	reg.MustRegister(m.clients, m.links, frames, bytes, m.drops, m.logins, m.ended, m.loseAccounts, m.relay, m.detached, m.resumes, m.rebinds, m.restored, m.holderLost, m.staleAnnounce)
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xserver_gateway_rate_limited_total", Help: "Client messages over a rate limit, by the limit's scope and the action taken (error, kick)."}, []string{"limit", "action"})
	reg.MustRegister(m.rateLimited)
	m.parks = prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_gateway_client_parks_total", Help: "Times a quiet client connection was parked in the gateway's poller (no goroutine, no read buffer). A connection sending more often than every 500 ms keeps its reader instead."})
	reg.MustRegister(m.parks)
	return m
}
