package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/intranet"
)

// Config configures a Node. Redis, Secret and Type are required.
type Config struct {
	Redis   redis.UniversalClient // finds the mgrserver leader (required)
	Cluster string                // cluster name (default "xserver")
	Secret  string                // shared intranet secret (required, never logged)

	ID       common.NodeID   // zero: a random UUID
	Type     common.NodeType // this node's type (required; not Client or MgrServer)
	InnerIP  string          // intranet address (default: this machine's)
	OuterIP  string          // address clients use (default: InnerIP)
	Ports    []int32         // service ports, published to members
	Overload []uint32        // initial load figures
	Version  string          // build version (gray releases)

	// Selector is how GetNodeOne and SendOne choose (default Random):
	// Random, RoundRobin or LeastLoad. ConsistentHash is refused here: it
	// needs a key per call, so use GetNodeByKey and SendOneByKey for it.
	Selector discovery.Mode

	// Rollouts are gray releases: GetNodeByKey (and what uses it) picks
	// among the instances of the key's side of a type's rollout (the key
	// is taken as the account), and GetNodeOne sends the rollout's share
	// of its picks to the rollout's version, the rest to the others.
	Rollouts discovery.Rollouts

	// TLS, when set, secures the connections this node dials (to the
	// mgrserver and to gateways). ServerName defaults to the dialled host.
	TLS *tls.Config

	ResyncInterval   time.Duration // periodic full resync (default 30s)
	DialTimeout      time.Duration // connect to the mgrserver (default 3s)
	HandshakeTimeout time.Duration // connect to snapshot (default 5s)
	BackoffMin       time.Duration // first retry delay looking for a leader (default 20ms)
	BackoffMax       time.Duration // retry delay cap (default 500ms)
	LeaderCheck      time.Duration // how often a connected node re-reads the leader record (default 1s)
	QueueBytes       int           // send queue to the mgrserver (default 1 MiB)
	RelayQueueBytes  int           // send queue to each gateway (default 64 MiB)
	RelayRebalance   time.Duration // how often the gateway order is reshuffled (default 30s, scaled up with cluster size)
	MaxFrame         int           // largest frame accepted (default 16 MiB: snapshots)
	// StreamLimit bounds the messages to one player kept until its client
	// acknowledges them (default 256 KiB); beyond it a send fails and the
	// player's session ends with wire.CodeLost. StreamTotal bounds them for
	// all players (default 64 MiB).
	StreamLimit int
	StreamTotal int
	// MessageTTL bounds a node message's way through a gateway (default
	// 2s): a gateway does not deliver it later, and the sender reports it
	// undeliverable. Gateways' and nodes' clocks must agree well within it.
	MessageTTL time.Duration
	// CallTimeout bounds a call whose ctx has no deadline (default 5s).
	CallTimeout time.Duration
	// OfflineCache bounds the players remembered as offline (default
	// 65536; negative: none). A message to a player with no session costs
	// a Redis lookup of its holder; once a lookup found the player
	// offline, further messages to it are reported undeliverable at once,
	// for as long as the node's subscription to the gateways' login
	// announcements stays up and no login of the player is announced.
	// The node subscribes when a lookup first finds a player offline.
	// Beyond the bound, the least recently used entry is evicted.
	OfflineCache int
	// OfflineMaxAge is the longest an offline answer is used (default
	// 1m; negative: no limit). Invalidation is by event; this only bounds
	// the harm of an announcement lost without the subscription failing.
	OfflineMaxAge time.Duration

	Logger logrus.FieldLogger
	Rand   *rand.Rand // jitter and random selection; nil = time-seeded
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Cluster:          "xserver",
		Selector:         discovery.Random,
		ResyncInterval:   30 * time.Second,
		DialTimeout:      3 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		BackoffMin:       20 * time.Millisecond,
		BackoffMax:       500 * time.Millisecond,
		LeaderCheck:      time.Second,
		QueueBytes:       1 << 20,
		RelayQueueBytes:  64 << 20,
		RelayRebalance:   30 * time.Second,
		MaxFrame:         16 << 20,
		StreamLimit:      256 << 10,
		MessageTTL:       2 * time.Second,
		CallTimeout:      5 * time.Second,
		StreamTotal:      64 << 20,
		OfflineCache:     1 << 16,
		OfflineMaxAge:    time.Minute,
	}
}

// Errors.
var (
	ErrConfig  = errors.New("node: invalid config")
	ErrStarted = errors.New("node: already started")
)

func (c *Config) validate() error {
	d := DefaultConfig()
	if c.Redis == nil {
		return fmt.Errorf("%w: Redis client required", ErrConfig)
	}
	if c.Secret == "" {
		return fmt.Errorf("%w: a shared secret is required", ErrConfig)
	}
	if c.Type == common.Client || c.Type == common.MgrServer {
		return fmt.Errorf("%w: type %s cannot be a node", ErrConfig, c.Type)
	}
	if c.Cluster == "" {
		c.Cluster = d.Cluster
	}
	if c.ID.IsZero() {
		c.ID = common.NewNodeID()
	}
	if c.InnerIP == "" {
		c.InnerIP = intranet.OutboundIP()
	}
	if c.OuterIP == "" {
		c.OuterIP = c.InnerIP
	}
	for _, p := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&c.ResyncInterval, d.ResyncInterval}, {&c.DialTimeout, d.DialTimeout},
		{&c.HandshakeTimeout, d.HandshakeTimeout}, {&c.BackoffMin, d.BackoffMin},
		{&c.BackoffMax, d.BackoffMax}, {&c.LeaderCheck, d.LeaderCheck}, {&c.RelayRebalance, d.RelayRebalance},
		{&c.MessageTTL, d.MessageTTL}, {&c.CallTimeout, d.CallTimeout},
	} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("%w: backoff max below min", ErrConfig)
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = d.QueueBytes
	}
	if c.RelayQueueBytes <= 0 {
		c.RelayQueueBytes = d.RelayQueueBytes
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.StreamLimit <= 0 {
		c.StreamLimit = d.StreamLimit
	}
	if c.StreamTotal <= 0 {
		c.StreamTotal = d.StreamTotal
	}
	switch {
	case c.OfflineCache == 0:
		c.OfflineCache = d.OfflineCache
	case c.OfflineCache < 0:
		c.OfflineCache = 0
	}
	switch {
	case c.OfflineMaxAge == 0:
		c.OfflineMaxAge = d.OfflineMaxAge
	case c.OfflineMaxAge < 0:
		c.OfflineMaxAge = 0
	}
	if c.MaxFrame < wire.HeaderSize {
		return fmt.Errorf("%w: max frame too small", ErrConfig)
	}
	if err := c.Selector.Valid(); err != nil {
		return fmt.Errorf("%w: selector: %w", ErrConfig, err)
	}
	if c.Selector == discovery.ConsistentHash {
		return fmt.Errorf("%w: selector %v needs a key per call, which GetNodeOne and SendOne do not take: "+
			"call GetNodeByKey or SendOneByKey for hashed choice and set Selector to random, round-robin or least-load", ErrConfig, c.Selector)
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		c.Logger = l
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewSource(time.Now().UnixNano()))
	}
	return nil
}
