package service

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/node"
)

// DefaultCluster is the -cluster default.
const DefaultCluster = "xserver"

// Common holds the flags every cluster process shares.
type Common struct {
	Cluster   string
	Secret    string // never logged
	LogLevel  string
	LogFormat string
	Redis     RedisConfig
	// TLSCA and TLSServerName configure TLS on the intranet connections
	// this process dials (see DialTLS).
	TLSCA, TLSServerName string
	// PlayerBuffer and PlayerBufferTotal bound what a game node keeps of
	// its messages to players until their clients acknowledge them (see
	// RegisterNodeFlags; 0: node.Config's defaults).
	PlayerBuffer, PlayerBufferTotal int
}

// RegisterNodeFlags registers the flags of a game node that sends to
// players: -player-buffer and -player-buffer-total.
func (c *Common) RegisterNodeFlags(fs *flag.FlagSet) {
	d := node.DefaultConfig()
	fs.IntVar(&c.PlayerBuffer, "player-buffer", d.StreamLimit,
		"`bytes` of messages to one player kept until its client acknowledges them; beyond, the player's session ends (code 16) and it logs in again")
	fs.IntVar(&c.PlayerBufferTotal, "player-buffer-total", d.StreamTotal,
		"`bytes` of messages to all players kept until acknowledged; beyond, sends fail")
}

// RegisterFlags registers -cluster, -secret, -log-level, -log-format and
// the -redis flags on fs, storing into c.
func (c *Common) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Cluster, "cluster", DefaultCluster,
		"cluster `name`; clusters with different names can share one Redis")
	fs.StringVar(&c.Secret, "secret", "",
		"shared intranet `secret` (required; prefer the environment variable: command lines are visible to other users)")
	fs.StringVar(&c.LogLevel, "log-level", "info",
		"log `level`: trace, debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text",
		"log `format`: text or json")
	c.Redis.RegisterFlags(fs)
	c.registerDialTLS(fs)
}

// Check validates c without side effects: the secret is set, the log
// level and format and the Redis configuration are valid. Every error is a
// UsageError.
func (c *Common) Check() error {
	if err := RequireSecret(c.Secret); err != nil {
		return err
	}
	if c.Cluster == "" {
		return Usagef("-cluster is empty")
	}
	if _, err := NewLogger(io.Discard, c.LogLevel, c.LogFormat); err != nil {
		return err
	}
	if _, err := c.Redis.Options(); err != nil {
		return Usage(err)
	}
	if c.PlayerBuffer < 0 || c.PlayerBufferTotal < 0 {
		return Usagef("-player-buffer and -player-buffer-total must not be negative")
	}
	if _, err := c.DialTLS(); err != nil {
		return err
	}
	return nil
}

// Logger returns the logger the flags describe, writing to w.
func (c *Common) Logger(w io.Writer) (*logrus.Logger, error) {
	return NewLogger(w, c.LogLevel, c.LogFormat)
}

// RedisClient returns a client for the -redis flags, with go-redis's own
// logging routed to log at debug level (see NewRedisClient).
func (c *Common) RedisClient(log logrus.FieldLogger) (redis.UniversalClient, error) {
	return NewRedisClient(c.Redis, log)
}

// ErrNoSecret is wrapped by RequireSecret's error.
var ErrNoSecret = errors.New("-secret is required")

// RequireSecret returns a UsageError wrapping ErrNoSecret when secret is
// empty. There is deliberately no built-in default: a default secret is no
// secret.
func RequireSecret(secret string) error {
	if secret != "" {
		return nil
	}
	return &UsageError{Err: fmt.Errorf("%w: every mgrserver, gateway and node of a cluster authenticates with the same shared secret; set %s_SECRET in the environment (preferred) or pass -secret",
		ErrNoSecret, EnvPrefix)}
}

// NodeConfig returns a node.Config carrying the common settings: Redis,
// cluster, secret, logger and intranet TLS. The caller sets the type and
// the rest.
func (c *Common) NodeConfig(rdb redis.UniversalClient, log logrus.FieldLogger) (node.Config, error) {
	cfg := node.DefaultConfig()
	cfg.Redis, cfg.Cluster, cfg.Secret, cfg.Logger = rdb, c.Cluster, c.Secret, log
	if c.PlayerBuffer > 0 {
		cfg.StreamLimit = c.PlayerBuffer
	}
	if c.PlayerBufferTotal > 0 {
		cfg.StreamTotal = c.PlayerBufferTotal
	}
	tlsCfg, err := c.DialTLS()
	if err != nil {
		return cfg, err
	}
	cfg.TLS = tlsCfg
	return cfg, nil
}
