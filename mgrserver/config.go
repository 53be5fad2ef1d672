package mgrserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common/wire"
)

// Config configures a Server. Zero fields take the defaults of
// DefaultConfig; Redis and Secret are required.
type Config struct {
	Redis   redis.UniversalClient // lease and leader record (required)
	Cluster string                // cluster name; several clusters may share a Redis
	Secret  string                // shared intranet secret (required, never logged)

	Listen    string      // intranet listen address; port 0 picks a free port
	Advertise string      // address published for nodes; default the bound address
	Admin     string      // admin HTTP address (/healthz, /metrics, /nodes); "" = none
	TLS       *tls.Config // serve the intranet listener over TLS (nil = plain TCP)

	LeaseTTL         time.Duration // lease lifetime; renewed every TTL/3
	CampaignInterval time.Duration // how often a standby polls the lease
	RedisGrace       time.Duration // how long past the TTL a leader that cannot reach Redis keeps its connections (serving nothing) before stepping down
	SettleWindow     time.Duration // after taking over, snapshots are partial for this long

	PingInterval     time.Duration // heartbeat period, sent to nodes in Hello
	PingMisses       int           // silent periods before a peer is declared failed
	HandshakeTimeout time.Duration // connect to registration
	WriteTimeout     time.Duration // one write to a peer
	MaxFrame         int           // largest accepted frame
	MaxConns         int           // concurrent intranet connections
	QueueBytes       int           // per-peer send queue; overflowing events are dropped and the peer resynced
	EventDelay       time.Duration // membership changes gathered into one batch for this long before they are sent

	Logger logrus.FieldLogger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Cluster:          "xserver",
		Listen:           "127.0.0.1:0",
		LeaseTTL:         3 * time.Second,
		CampaignInterval: 100 * time.Millisecond,
		RedisGrace:       30 * time.Second,
		PingInterval:     time.Second,
		PingMisses:       3,
		HandshakeTimeout: 5 * time.Second,
		MaxFrame:         wire.DefaultMaxFrame,
		MaxConns:         20000,
		QueueBytes:       8 << 20,
		EventDelay:       10 * time.Millisecond,
	}
}

// Errors.
var (
	ErrConfig  = errors.New("mgrserver: invalid config")
	ErrStarted = errors.New("mgrserver: already started")
)

// validate fills defaults and rejects bad combinations.
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
	setDur(&c.LeaseTTL, d.LeaseTTL)
	setDur(&c.CampaignInterval, d.CampaignInterval)
	setDur(&c.PingInterval, d.PingInterval)
	setDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&c.EventDelay, d.EventDelay)
	if c.RedisGrace < 0 {
		return fmt.Errorf("%w: negative redis grace", ErrConfig)
	}
	if c.PingMisses <= 0 {
		c.PingMisses = d.PingMisses
	}
	if c.SettleWindow <= 0 {
		c.SettleWindow = c.LeaseTTL + time.Duration(c.PingMisses)*c.PingInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = time.Duration(c.PingMisses) * c.PingInterval
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = d.QueueBytes
	}
	if c.LeaseTTL < 30*time.Millisecond {
		return fmt.Errorf("%w: lease TTL %v too short", ErrConfig, c.LeaseTTL)
	}
	if c.CampaignInterval >= c.LeaseTTL {
		return fmt.Errorf("%w: campaign interval must be shorter than the lease TTL", ErrConfig)
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		c.Logger = l
	}
	return nil
}

func setDur(p *time.Duration, d time.Duration) {
	if *p <= 0 {
		*p = d
	}
}
