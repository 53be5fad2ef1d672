package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/discovery"
)

// Config configures a Gateway. Redis and Secret are required.
type Config struct {
	Redis   redis.UniversalClient // tokens, bindings, cross-gateway kicks (required)
	Cluster string                // cluster name (default "xserver")
	Secret  string                // shared intranet secret (required, never logged)

	Listen   string // client TCP listener (port 0 = any free port)
	WSListen string // client WebSocket listener, path /ws ("" = none)
	Intranet string // node link listener
	InnerIP  string // address nodes dial (default: this machine's)
	OuterIP  string // address clients dial (default: InnerIP)
	Admin    string // admin HTTP address ("" = none)
	Version  string // published version

	ClientTLS   *tls.Config // serve clients (TCP and WebSocket) over TLS (nil = plain)
	IntranetTLS *tls.Config // serve node links over TLS (nil = plain)
	NodeTLS     *tls.Config // dial the mgrserver over TLS (see node.Config.TLS)

	CmdOffset    uint64         // target node type = cmd / CmdOffset (default 1000)
	Idle         time.Duration  // a client silent this long is disconnected (default 5m)
	LoginTimeout time.Duration  // connect to login frame (default 5s)
	Affinity     time.Duration  // binding window kept after a session ends (default 5m)
	Selector     discovery.Mode // stateless routing (default RoundRobin; ConsistentHash keys by account)

	// ResumeWindow is how long a session of a client that asked for one
	// (protocol version 2) waits for the client to come back after its
	// connection is lost, on this gateway or another (default 30s; a
	// negative value turns resume off: sessions end with their connection).
	ResumeWindow time.Duration
	// SessionRefresh is how often live sessions' Redis records are
	// refreshed and checked against it (default 10s).
	SessionRefresh time.Duration
	// BroadcastHistory is how many bytes of recent broadcasts are kept to
	// replay to a client that resumes here (default 1 MiB).
	BroadcastHistory int

	MaxFrame         int           // largest client frame (default 64 KiB)
	MaxClients       int           // concurrent client connections (default 100000)
	MaxPreLogin      int           // of those, connections not logged in yet (default MaxClients/10, at least 1; at most MaxClients)
	ClientQueueBytes int           // per-client send queue; overflow disconnects the client (default 256 KiB)
	LinkMaxFrame     int           // largest node link frame (default 16 MiB)
	LinkQueueBytes   int           // per-node send queue (default 64 MiB)
	PingInterval     time.Duration // node link heartbeat (default 1s)
	PingMisses       int           // silent intervals before a link is dropped (default 3)
	WriteTimeout     time.Duration // one socket write (default 10s)

	// RateLimits bound what each client session may send (none by
	// default); see RateLimit and ParseRateLimits. At most 16.
	RateLimits []RateLimit

	Logger logrus.FieldLogger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Cluster:          "xserver",
		Listen:           "127.0.0.1:0",
		Intranet:         "127.0.0.1:0",
		CmdOffset:        1000,
		Idle:             5 * time.Minute,
		LoginTimeout:     5 * time.Second,
		Affinity:         5 * time.Minute,
		Selector:         discovery.RoundRobin,
		ResumeWindow:     30 * time.Second,
		SessionRefresh:   10 * time.Second,
		BroadcastHistory: 1 << 20,
		MaxFrame:         64 << 10,
		MaxClients:       100000,
		ClientQueueBytes: 256 << 10,
		LinkMaxFrame:     16 << 20,
		LinkQueueBytes:   64 << 20,
		PingInterval:     time.Second,
		PingMisses:       3,
		WriteTimeout:     10 * time.Second,
	}
}

// Errors.
var (
	ErrConfig  = errors.New("gateway: invalid config")
	ErrStarted = errors.New("gateway: already started")
)

func (c *Config) validate() error {
	d := DefaultConfig()
	if c.Redis == nil {
		return fmt.Errorf("%w: Redis client required", ErrConfig)
	}
	if c.Secret == "" {
		return fmt.Errorf("%w: a shared secret is required", ErrConfig)
	}
	if c.Cluster == "" {
		c.Cluster = d.Cluster
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.Intranet == "" {
		c.Intranet = d.Intranet
	}
	if c.CmdOffset == 0 {
		c.CmdOffset = d.CmdOffset
	}
	for _, p := range []struct {
		v *time.Duration
		d time.Duration
	}{{&c.Idle, d.Idle}, {&c.LoginTimeout, d.LoginTimeout}, {&c.Affinity, d.Affinity}, {&c.PingInterval, d.PingInterval}, {&c.WriteTimeout, d.WriteTimeout}, {&c.SessionRefresh, d.SessionRefresh}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	for _, p := range []struct {
		v *int
		d int
	}{{&c.MaxFrame, d.MaxFrame}, {&c.MaxClients, d.MaxClients}, {&c.ClientQueueBytes, d.ClientQueueBytes}, {&c.LinkMaxFrame, d.LinkMaxFrame}, {&c.LinkQueueBytes, d.LinkQueueBytes}, {&c.PingMisses, d.PingMisses}, {&c.BroadcastHistory, d.BroadcastHistory}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	if c.MaxPreLogin <= 0 {
		c.MaxPreLogin = max(1, c.MaxClients/10)
	}
	c.MaxPreLogin = min(c.MaxPreLogin, c.MaxClients)
	if err := c.Selector.Valid(); err != nil {
		return fmt.Errorf("%w: selector: %w", ErrConfig, err)
	}
	switch {
	case c.ResumeWindow == 0:
		c.ResumeWindow = d.ResumeWindow
	case c.ResumeWindow < 0:
		c.ResumeWindow = 0
	}
	if c.ResumeWindow > 0 && c.ResumeWindow < time.Second {
		return fmt.Errorf("%w: resume window %v is under a second", ErrConfig, c.ResumeWindow)
	}
	if c.ClientQueueBytes < c.MaxFrame+64 {
		return fmt.Errorf("%w: client queue smaller than one frame", ErrConfig)
	}
	if len(c.RateLimits) > maxRateLimits {
		return fmt.Errorf("%w: %d rate limits, at most %d", ErrConfig, len(c.RateLimits), maxRateLimits)
	}
	c.RateLimits = slices.Clone(c.RateLimits) // validate fills defaults: leave the caller's alone
	for i := range c.RateLimits {
		if err := c.RateLimits[i].validate(c.MaxFrame); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		c.Logger = l
	}
	return nil
}
