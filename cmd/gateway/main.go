// Command gateway runs xserver's data plane: the process players' clients
// connect to (TCP, and WebSocket with -ws-listen) and through which nodes
// reach clients and each other. Run as many as the player count needs; a
// login service sends each player to the least loaded one. Every flag can
// also be set through XSERVER_<FLAG> (flag > environment > default); -h
// lists them.
//
// SIGINT or SIGTERM drains the gateway: it stops accepting and closes every
// client connection with a shutdown code. Clients with resumable sessions
// resume them on another gateway (their nodes see "disconnected", then
// "resumed"); the sessions of other clients end (their nodes get
// lose-account). Then it closes the node links and leaves the cluster. A
// second signal kills it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/service"
)

const name = "gateway"

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	service.Common
	listen, wsListen, intranet   string
	innerIP, outerIP, admin      string
	version, selector            string
	rateLimit                    string
	rateLimits                   []gateway.RateLimit // parsed -rate-limit, set by check
	cmdOffset                    uint64
	idle, loginTimeout, affinity time.Duration
	pingInterval, writeTimeout   time.Duration
	resumeWindow, sessionRefresh time.Duration
	broadcastHistory             int
	maxFrame, maxClients         int
	maxPreLogin                  int
	clientQueueBytes, pingMisses int
	linkMaxFrame, linkQueueBytes int
	mode                         discovery.Mode // parsed -selector, set by check
	intranetTLS, clientTLS       service.TLSPair
}

// parseFlags reads args and the environment; every error is a
// service.UsageError (or flag.ErrHelp).
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	d := gateway.DefaultConfig()
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout) // -h and -version
	o.Common.RegisterFlags(fs)
	o.intranetTLS.RegisterFlags(fs, "tls", "the intranet listener")
	o.clientTLS.RegisterFlags(fs, "client-tls", "the client listeners (TCP and WebSocket)")
	fs.StringVar(&o.listen, "listen", "0.0.0.0:7400", "client TCP `address`")
	fs.StringVar(&o.wsListen, "ws-listen", "", "client WebSocket `address`, path /ws (empty: off)")
	fs.StringVar(&o.intranet, "intranet", "0.0.0.0:7401", "intranet `address` nodes connect to")
	fs.StringVar(&o.innerIP, "inner-ip", "", "`IP` published for nodes to dial (default: the -intranet host, or this machine's IP for 0.0.0.0)")
	fs.StringVar(&o.outerIP, "outer-ip", "", "`IP` published for clients to dial, through the login service (default: the -listen host, or -inner-ip for 0.0.0.0)")
	fs.StringVar(&o.admin, "admin", "", "admin HTTP `address` for /healthz and /metrics (empty: off)")
	fs.StringVar(&o.version, "node-version", "", "`version` this gateway publishes to the cluster, for gray releases (-version prints the build)")
	fs.Uint64Var(&o.cmdOffset, "cmd-offset", d.CmdOffset, "a client cmd goes to node type cmd / `offset`; nodes see cmd % offset")
	fs.DurationVar(&o.idle, "idle", d.Idle, "a client silent this long is disconnected")
	fs.DurationVar(&o.loginTimeout, "login-timeout", d.LoginTimeout, "time a new client connection has to log in")
	fs.DurationVar(&o.affinity, "affinity", d.Affinity, "how long a player's node bindings outlive its session (must match the login service's)")
	fs.StringVar(&o.selector, "selector", d.Selector.String(), "how a stateless node type's instance is picked: "+discovery.ModeNames()+" (consistent-hash keys by account)")
	fs.DurationVar(&o.resumeWindow, "resume-window", d.ResumeWindow, "how long a resumable session waits for its client to come back after a lost connection (0: no resume)")
	fs.DurationVar(&o.sessionRefresh, "session-refresh", d.SessionRefresh, "how often live sessions' Redis records are refreshed and checked")
	fs.IntVar(&o.broadcastHistory, "broadcast-history", d.BroadcastHistory, "`bytes` of recent broadcasts kept to replay to resuming clients")
	fs.IntVar(&o.maxFrame, "max-frame", d.MaxFrame, "largest accepted client frame in `bytes`")
	fs.IntVar(&o.maxClients, "max-clients", d.MaxClients, "maximum concurrent client connections")
	fs.IntVar(&o.maxPreLogin, "max-prelogin", 0, "maximum client connections not logged in yet (0 = -max-clients/10)")
	fs.IntVar(&o.clientQueueBytes, "client-queue-bytes", d.ClientQueueBytes, "per-client send queue in `bytes`; a client that overflows it is disconnected")
	fs.IntVar(&o.linkMaxFrame, "link-max-frame", d.LinkMaxFrame, "largest accepted node link frame in `bytes`")
	fs.IntVar(&o.linkQueueBytes, "link-queue-bytes", d.LinkQueueBytes, "per-node send queue in `bytes`")
	fs.DurationVar(&o.pingInterval, "ping-interval", d.PingInterval, "node link heartbeat period")
	fs.IntVar(&o.pingMisses, "ping-misses", d.PingMisses, "silent heartbeat periods before a node link is dropped")
	fs.DurationVar(&o.writeTimeout, "write-timeout", d.WriteTimeout, "longest one socket write may take")
	fs.StringVar(&o.rateLimit, "rate-limit", "", "per-session `limits` on client messages, separated by ';', each key=value pairs separated by ',': "+
		"type=N[-M] or cmd=N[-M] (scope; default every message), frames=per second, burst=N, bytes=per second (k/KiB, m/MiB), byte-burst=N, action=error|kick "+
		"(e.g. 'frames=50,bytes=64KiB; type=7,frames=2,burst=5,action=kick'; empty: no limit)")
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

// check rejects values the library would silently replace by defaults,
// parses -selector and checks the addresses.
func (o *options) check() error {
	if err := o.Common.Check(); err != nil {
		return err
	}
	for _, p := range []service.TLSPair{o.intranetTLS, o.clientTLS} {
		if _, err := p.Config(); err != nil {
			return err
		}
	}
	for _, a := range []struct{ flag, v string }{{"listen", o.listen}, {"intranet", o.intranet}} {
		if a.v == "" {
			return service.Usagef("-%s is empty", a.flag)
		}
	}
	for _, a := range []struct{ flag, v string }{{"listen", o.listen}, {"intranet", o.intranet}, {"ws-listen", o.wsListen}, {"admin", o.admin}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return service.Usagef("-%s %q: want host:port", a.flag, a.v)
		}
	}
	for _, a := range []struct{ flag, v string }{{"inner-ip", o.innerIP}, {"outer-ip", o.outerIP}} {
		if a.v != "" && net.ParseIP(a.v) == nil {
			return service.Usagef("-%s %q: not an IP address", a.flag, a.v)
		}
	}
	mode, err := discovery.ParseMode(o.selector)
	if err != nil {
		return service.Usagef("-selector: %v", err)
	}
	o.mode = mode
	if o.cmdOffset == 0 {
		return service.Usagef("-cmd-offset 0: must be positive")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"idle", o.idle}, {"login-timeout", o.loginTimeout}, {"affinity", o.affinity},
		{"ping-interval", o.pingInterval}, {"write-timeout", o.writeTimeout}, {"session-refresh", o.sessionRefresh},
	} {
		if d.v <= 0 {
			return service.Usagef("-%s %v: must be positive", d.flag, d.v)
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"max-frame", o.maxFrame}, {"max-clients", o.maxClients}, {"client-queue-bytes", o.clientQueueBytes},
		{"link-max-frame", o.linkMaxFrame}, {"link-queue-bytes", o.linkQueueBytes}, {"ping-misses", o.pingMisses},
		{"broadcast-history", o.broadcastHistory},
	} {
		if n.v <= 0 {
			return service.Usagef("-%s %d: must be positive", n.flag, n.v)
		}
	}
	if o.resumeWindow < 0 || o.resumeWindow > 0 && o.resumeWindow < time.Second {
		return service.Usagef("-resume-window %v: 0 (off) or at least 1s", o.resumeWindow)
	}
	limits, err := gateway.ParseRateLimits(o.rateLimit)
	if err == nil {
		err = gateway.CheckRateLimits(limits, o.maxFrame)
	}
	if err != nil {
		return service.Usagef("-rate-limit: %v", err)
	}
	o.rateLimits = limits
	if o.maxPreLogin < 0 || o.maxPreLogin > o.maxClients {
		return service.Usagef("-max-prelogin %d: must be between 0 (-max-clients/10) and -max-clients (%d)", o.maxPreLogin, o.maxClients)
	}
	return nil
}

// hostIP returns the host of addr when it is one specific IP address, ""
// for an empty, unspecified (0.0.0.0, ::) or named host.
func hostIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	return ""
}

// config maps the options onto a gateway.Config (without Redis and
// Logger, which serve builds). An empty InnerIP is left for the library
// to fill with this machine's address.
func (o *options) config() gateway.Config {
	c := gateway.DefaultConfig()
	c.Cluster = o.Cluster
	c.Secret = o.Secret
	c.Listen = o.listen
	c.WSListen = o.wsListen
	c.Intranet = o.intranet
	c.InnerIP = o.innerIP
	if c.InnerIP == "" {
		c.InnerIP = hostIP(o.intranet)
	}
	c.OuterIP = o.outerIP
	if c.OuterIP == "" {
		c.OuterIP = hostIP(o.listen) // "" means InnerIP
	}
	c.Admin = o.admin
	c.Version = o.version
	c.CmdOffset = o.cmdOffset
	c.Idle = o.idle
	c.LoginTimeout = o.loginTimeout
	c.Affinity = o.affinity
	c.Selector = o.mode
	c.MaxFrame = o.maxFrame
	c.MaxClients = o.maxClients
	c.MaxPreLogin = o.maxPreLogin
	c.ClientQueueBytes = o.clientQueueBytes
	c.LinkMaxFrame = o.linkMaxFrame
	c.LinkQueueBytes = o.linkQueueBytes
	c.PingInterval = o.pingInterval
	c.PingMisses = o.pingMisses
	c.WriteTimeout = o.writeTimeout
	c.ResumeWindow = o.resumeWindow
	if c.ResumeWindow == 0 {
		c.ResumeWindow = -1 // the library's "off"
	}
	c.SessionRefresh = o.sessionRefresh
	c.BroadcastHistory = o.broadcastHistory
	c.RateLimits = o.rateLimits
	return c
}

// run is main without the process: it serves until ctx ends, then drains
// gracefully and returns the exit status.
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
	if cfg.IntranetTLS, err = o.intranetTLS.Config(); err != nil {
		return err
	}
	if cfg.ClientTLS, err = o.clientTLS.Config(); err != nil {
		return err
	}
	if cfg.NodeTLS, err = o.DialTLS(); err != nil {
		return err
	}
	g, err := gateway.New(cfg)
	if err != nil {
		return service.Usage(err)
	}
	log.WithFields(logrus.Fields{
		"cluster": cfg.Cluster, "listen": cfg.Listen, "ws_listen": cfg.WSListen, "intranet": cfg.Intranet,
		"inner_ip": cfg.InnerIP, "outer_ip": cfg.OuterIP, "admin": cfg.Admin, "redis": o.Redis.String(),
		"cmd_offset": cfg.CmdOffset, "selector": cfg.Selector.String(), "affinity": cfg.Affinity,
		"resume_window": o.resumeWindow,
	}).Info("starting gateway")
	if err := g.Start(ctx); err != nil {
		_ = g.Close()
		return fmt.Errorf("start: %w", err)
	}
	log.WithFields(logrus.Fields{
		"id": g.Node().GetID().String(), "client": g.Addrs().Client, "ws": g.Addrs().WebSocket,
		"intranet": g.Addrs().Intranet, "admin": g.Addrs().Admin,
	}).Info("gateway listening; looking for the mgrserver")
	<-ctx.Done()
	log.WithField("clients", g.NumClients()).Info("signal received: draining clients and leaving the cluster")
	return g.Close()
}
