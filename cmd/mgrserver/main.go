// Command mgrserver runs xserver's control plane: the server every node and
// gateway registers with. Run several for high availability; one leads
// through a Redis lease, the others stand by. Every flag can also be set
// through XSERVER_<FLAG> (flag > environment > default); -h lists them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/service"
)

const name = "mgrserver"

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	service.Common
	listen, advertise, admin   string
	leaseTTL, campaignInterval time.Duration
	redisGrace, pingInterval   time.Duration
	handshakeTimeout           time.Duration
	pingMisses, maxFrame       int
	maxConns, queueBytes       int
	tls                        service.TLSPair
}

// parseFlags reads args and the environment; every error is a
// service.UsageError (or flag.ErrHelp).
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	d := mgrserver.DefaultConfig()
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout) // -h and -version
	o.Common.RegisterFlags(fs)
	o.tls.RegisterFlags(fs, "tls", "the intranet listener")
	fs.StringVar(&o.listen, "listen", "0.0.0.0:7300", "intranet `address` nodes and gateways connect to")
	fs.StringVar(&o.advertise, "advertise", "", "`address` published in Redis for nodes to dial (default: the bound address, with this machine's IP for 0.0.0.0)")
	fs.StringVar(&o.admin, "admin", "", "admin HTTP `address` for /healthz, /metrics and /nodes (empty: off)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", d.LeaseTTL, "leader lease lifetime; a crashed leader is replaced within about this long")
	fs.DurationVar(&o.campaignInterval, "campaign-interval", d.CampaignInterval, "how often a standby checks the lease (must be below -lease-ttl)")
	fs.DurationVar(&o.redisGrace, "redis-grace", d.RedisGrace, "how long past the lease TTL a leader that cannot reach Redis keeps leading")
	fs.DurationVar(&o.pingInterval, "ping-interval", d.PingInterval, "heartbeat period, both ways")
	fs.IntVar(&o.pingMisses, "ping-misses", d.PingMisses, "silent heartbeat periods before a peer counts as failed")
	fs.DurationVar(&o.handshakeTimeout, "handshake-timeout", d.HandshakeTimeout, "time a new connection has to authenticate and register")
	fs.IntVar(&o.maxFrame, "max-frame", d.MaxFrame, "largest accepted intranet frame in `bytes`")
	fs.IntVar(&o.maxConns, "max-conns", d.MaxConns, "maximum concurrent intranet connections")
	fs.IntVar(&o.queueBytes, "queue-bytes", d.QueueBytes, "per-peer send queue in `bytes`; a peer that overflows it is resynced")
	if err := service.Parse(fs, args, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, service.Usagef("unexpected arguments %q", fs.Args())
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return &o, nil
}

// check rejects values the library would silently replace by defaults.
func (o *options) check() error {
	if err := o.Common.Check(); err != nil {
		return err
	}
	if _, err := o.tls.Config(); err != nil {
		return err
	}
	if o.listen == "" {
		return service.Usagef("-listen is empty")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"lease-ttl", o.leaseTTL}, {"campaign-interval", o.campaignInterval},
		{"ping-interval", o.pingInterval}, {"handshake-timeout", o.handshakeTimeout},
	} {
		if d.v <= 0 {
			return service.Usagef("-%s %v: must be positive", d.flag, d.v)
		}
	}
	if o.redisGrace < 0 {
		return service.Usagef("-redis-grace %v: must not be negative", o.redisGrace)
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"ping-misses", o.pingMisses}, {"max-frame", o.maxFrame},
		{"max-conns", o.maxConns}, {"queue-bytes", o.queueBytes},
	} {
		if n.v <= 0 {
			return service.Usagef("-%s %d: must be positive", n.flag, n.v)
		}
	}
	return nil
}

// config maps the options onto a mgrserver.Config (without Redis and
// Logger, which run builds).
func (o *options) config() mgrserver.Config {
	c := mgrserver.DefaultConfig()
	c.Cluster = o.Cluster
	c.Secret = o.Secret
	c.Listen = o.listen
	c.Advertise = o.advertise
	c.Admin = o.admin
	c.LeaseTTL = o.leaseTTL
	c.CampaignInterval = o.campaignInterval
	c.RedisGrace = o.redisGrace
	c.PingInterval = o.pingInterval
	c.PingMisses = o.pingMisses
	c.HandshakeTimeout = o.handshakeTimeout
	c.MaxFrame = o.maxFrame
	c.MaxConns = o.maxConns
	c.QueueBytes = o.queueBytes
	return c
}

// run is main without the process: it serves until ctx ends, then stops
// gracefully (releasing the lease) and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return service.Run(ctx, name, args, getenv, stdout, stderr, parseFlags, serve)
}

func serve(ctx context.Context, o *options, log *logrus.Logger) error {
	rdb, err := o.RedisClient(log)
	if err != nil {
		return err
	}
	defer rdb.Close()

	cfg := o.config()
	cfg.Redis = rdb
	cfg.Logger = log
	if cfg.TLS, err = o.tls.Config(); err != nil {
		return err
	}
	srv, err := mgrserver.New(cfg)
	if err != nil {
		return service.Usage(err)
	}
	log.WithFields(logrus.Fields{
		"cluster": cfg.Cluster, "listen": cfg.Listen, "advertise": cfg.Advertise, "admin": cfg.Admin,
		"redis": o.Redis.String(), "lease_ttl": cfg.LeaseTTL, "ping_interval": cfg.PingInterval,
		"ping_misses": cfg.PingMisses,
	}).Info("starting mgrserver")
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("start: %w", err)
	}
	<-ctx.Done()
	log.Info("signal received: stopping (releasing the lease if leading)")
	return srv.Close()
}
