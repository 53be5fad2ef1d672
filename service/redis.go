package service

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisAddr is the -redis default.
const DefaultRedisAddr = "127.0.0.1:6379"

// ErrRedisConfig is wrapped by every error RedisConfig.Options and
// RedisConfig.NewClient return for a bad configuration.
var ErrRedisConfig = errors.New("service: invalid Redis configuration")

// RedisConfig describes how to reach Redis: one server, Redis Cluster or
// Sentinel (see the package documentation). The zero value is not usable;
// start from DefaultRedisConfig or RegisterFlags.
type RedisConfig struct {
	// Addr is host:port or a redis:// / rediss:// URL; a comma-separated
	// list for Cluster seed nodes or Sentinel addresses. URLs and plain
	// addresses cannot be mixed, and URLs in a list must agree on
	// everything but the host.
	Addr string
	// MasterName selects Sentinel mode: Addr lists sentinels.
	MasterName string
	// Cluster selects Redis Cluster mode: Addr lists seed nodes.
	Cluster bool
	// Password authenticates to the data nodes. If a URL also carries a
	// password, the two must match.
	Password string
	// DB selects the database (not in Cluster mode). If a URL path also
	// selects one, the two must match unless one of them is 0.
	DB int
}

// DefaultRedisConfig returns a RedisConfig for a single Redis on 127.0.0.1:6379.
func DefaultRedisConfig() RedisConfig {
	return RedisConfig{Addr: DefaultRedisAddr}
}

// RegisterFlags registers the -redis* flags on fs, storing into c.
func (c *RedisConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "redis", DefaultRedisAddr,
		"Redis `address`: host:port or redis://[user:pass@]host:port[/db] (rediss:// for TLS); comma-separated for cluster seeds or sentinels")
	fs.StringVar(&c.MasterName, "redis-master", "",
		"Sentinel master `name`; -redis then lists sentinel addresses")
	fs.BoolVar(&c.Cluster, "redis-cluster", false,
		"use Redis Cluster; -redis then lists seed nodes")
	fs.StringVar(&c.Password, "redis-password", "",
		"Redis `password` (prefer setting it through the environment)")
	fs.IntVar(&c.DB, "redis-db", 0,
		"Redis database `number` (not with -redis-cluster)")
}

// String describes c with passwords redacted, for logs.
func (c RedisConfig) String() string {
	entries := splitAddrs(c.Addr)
	for i, e := range entries {
		if isURL(e) {
			if u, err := url.Parse(e); err == nil {
				entries[i] = u.Redacted()
			} else {
				entries[i] = "<unparsable URL>"
			}
		}
	}
	pw := ""
	if c.Password != "" {
		pw = "xxxxx"
	}
	return fmt.Sprintf("redis=%s master=%q cluster=%t password=%q db=%d",
		strings.Join(entries, ","), c.MasterName, c.Cluster, pw, c.DB)
}

// Options validates c and returns the go-redis options for it, with
// ContextTimeoutEnabled set so a command's context deadline bounds it. The
// result is fresh on each call; the caller may adjust it before creating a
// client.
func (c RedisConfig) Options() (*redis.UniversalOptions, error) {
	entries := splitAddrs(c.Addr)
	switch {
	case len(entries) == 0:
		return nil, invalid("-redis is empty")
	case c.Cluster && c.MasterName != "":
		return nil, invalid("-redis-cluster and -redis-master exclude each other")
	case len(entries) > 1 && !c.Cluster && c.MasterName == "":
		return nil, invalid("-redis lists %d addresses: use -redis-cluster or -redis-master for more than one", len(entries))
	case c.DB < 0:
		return nil, invalid("-redis-db %d is negative", c.DB)
	}

	opts := &redis.UniversalOptions{MasterName: c.MasterName, IsClusterMode: c.Cluster}
	nURL := 0
	for _, e := range entries {
		if isURL(e) {
			nURL++
		}
	}
	switch nURL {
	case 0:
		for _, e := range entries {
			if err := checkHostPort(e); err != nil {
				return nil, err
			}
		}
		opts.Addrs = entries
	case len(entries):
		if err := c.fromURLs(opts, entries); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("-redis mixes URLs and host:port addresses")
	}

	if c.Password != "" {
		if opts.Password != "" && opts.Password != c.Password {
			return nil, invalid("-redis-password differs from the password in the -redis URL")
		}
		opts.Password = c.Password
	}
	if c.DB != 0 {
		if opts.DB != 0 && opts.DB != c.DB {
			return nil, invalid("-redis-db %d differs from database %d in the -redis URL", c.DB, opts.DB)
		}
		opts.DB = c.DB
	}
	if c.Cluster && opts.DB != 0 {
		return nil, invalid("Redis Cluster has only database 0, not %d", opts.DB)
	}
	// Without it go-redis bounds commands only by its own read/write
	// timeouts and ignores our contexts' deadlines.
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// NewClient validates c and returns a client for it. It does not contact
// Redis; the first command dials. A Cluster client follows master
// failovers within about a second (see ClusterReloadInterval).
func (c RedisConfig) NewClient() (redis.UniversalClient, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	if c.Cluster {
		return newClusterClient(opts), nil
	}
	return redis.NewUniversalClient(opts), nil
}

// fromURLs fills opts from URL entries, all of which must agree on every
// option but the host.
func (c RedisConfig) fromURLs(opts *redis.UniversalOptions, entries []string) error {
	var first *redis.Options
	for i, e := range entries {
		u, err := url.Parse(e)
		if err != nil {
			// url.Error repeats the whole URL, password included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return invalid("-redis entry %d is not a valid URL: %v", i+1, err)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return invalid("-redis %s: scheme must be redis or rediss", u.Redacted())
		}
		o, err := redis.ParseURL(e)
		if err != nil {
			return invalid("-redis %s: %v", u.Redacted(), err)
		}
		opts.Addrs = append(opts.Addrs, o.Addr)
		if first == nil {
			first = o
			continue
		}
		if !sameButHost(first, o) {
			return invalid("URLs in -redis differ in more than the host (%s)", u.Redacted())
		}
	}

	o := first
	if c.MasterName != "" {
		// Sentinel URLs: userinfo authenticates to the sentinels, as in
		// redis.ParseFailoverURL.
		opts.SentinelUsername, opts.SentinelPassword = o.Username, o.Password
	} else {
		opts.Username, opts.Password = o.Username, o.Password
	}
	opts.DB = o.DB
	opts.TLSConfig = o.TLSConfig
	if opts.TLSConfig != nil && (c.Cluster || c.MasterName != "" || len(entries) > 1) {
		// One config serves several hosts (cluster nodes, the master a
		// sentinel names): let crypto/tls take the name from each address.
		opts.TLSConfig.ServerName = ""
	}
	opts.Protocol = o.Protocol
	opts.ClientName = o.ClientName
	opts.MaxRetries = o.MaxRetries
	opts.MinRetryBackoff = o.MinRetryBackoff
	opts.MaxRetryBackoff = o.MaxRetryBackoff
	opts.DialTimeout = o.DialTimeout
	opts.ReadTimeout = o.ReadTimeout
	opts.WriteTimeout = o.WriteTimeout
	opts.PoolFIFO = o.PoolFIFO
	opts.PoolSize = o.PoolSize
	opts.PoolTimeout = o.PoolTimeout
	opts.MinIdleConns = o.MinIdleConns
	opts.MaxIdleConns = o.MaxIdleConns
	opts.MaxActiveConns = o.MaxActiveConns
	opts.MaxConcurrentDials = o.MaxConcurrentDials
	opts.PipelinePoolSize = o.PipelinePoolSize
	opts.PipelineReadBufferSize = o.PipelineReadBufferSize
	opts.PipelineWriteBufferSize = o.PipelineWriteBufferSize
	opts.ConnMaxIdleTime = o.ConnMaxIdleTime
	opts.ConnMaxLifetime = o.ConnMaxLifetime
	opts.ConnMaxLifetimeJitter = o.ConnMaxLifetimeJitter
	return nil
}

// sameButHost reports whether a and b, parsed from URLs, differ only in
// their address (and the TLS server name that follows it).
func sameButHost(a, b *redis.Options) bool {
	if (a.TLSConfig == nil) != (b.TLSConfig == nil) {
		return false
	}
	if a.TLSConfig != nil && a.TLSConfig.InsecureSkipVerify != b.TLSConfig.InsecureSkipVerify {
		return false
	}
	x, y := *a, *b
	x.Addr, y.Addr = "", ""
	x.TLSConfig, y.TLSConfig = nil, nil
	return reflect.DeepEqual(x, y)
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalid("-redis %q: want host:port or a redis:// URL: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return invalid("-redis %q: bad port", addr)
	}
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func isURL(s string) bool { return strings.Contains(s, "://") }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRedisConfig, fmt.Sprintf(format, args...))
}
