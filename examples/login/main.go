// Command login is an example login service: an HTTP JSON front for
// package login. A player's client posts its account and password, gets
// back a ticket (the least loaded gateway's address, a short-lived token
// and its node bindings) and presents account and token to that gateway.
//
//	curl -s -XPOST http://127.0.0.1:8080/login \
//	     -d '{"account": "alice", "password": "xserver"}'
//
// docs/LOGIN.md is the API (ticket fields, status codes, CORS, /healthz). GET /
// serves the example game's browser client (package web): open
// http://127.0.0.1:8080/ with a gateway started with -ws-listen. The
// service joins the cluster as a node of type login, for the membership:
// it must see the gateways and the live instances of the -stateful types.
//
// The account check is a demo (every account, one shared -password):
// checker.go is where a game plugs in its own. Passwords and tokens are
// never logged. Every flag can also be set through XSERVER_<FLAG>
// (flag > environment > default); -h lists them. Ctrl-C stops accepting
// logins, finishes those in flight and leaves the cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/examples/login/web"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

const (
	name = "login"
	// requestTimeout bounds one login (the account check and Redis).
	requestTimeout = 5 * time.Second
	// shutdownGrace is how long logins in flight may take after a signal.
	shutdownGrace = 5 * time.Second
)

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	service.Common
	listen, stateful   string
	gray               string
	rollouts           discovery.Rollouts // parsed -gray, set by check
	tokenTTL, affinity time.Duration
	password           string // demo only; never logged
	maxConns           int
	types              []common.NodeType // parsed -stateful, set by check
}

// parseFlags reads args and the environment; every error is a
// service.UsageError (or flag.ErrHelp).
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout) // -h and -version
	o.Common.RegisterFlags(fs)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP `address` serving POST /login and GET /healthz")
	fs.StringVar(&o.stateful, "stateful", strconv.Itoa(int(common.FirstGameType)), "comma-separated stateful node `types`: each account is bound to one live instance of each (empty: none)")
	fs.StringVar(&o.gray, "gray", "", "gray `releases`, separated by ';': type=N,version=V,share=P%,accounts=a|b binds that share of new accounts (and those listed) "+
		"to the type's instances publishing version V, the others to the other instances; existing bindings are kept (must match the gateways' -gray; empty: none)")
	fs.DurationVar(&o.tokenTTL, "token-ttl", login.DefaultTokenTTL, "how long a ticket's token is accepted by the gateway")
	fs.DurationVar(&o.affinity, "affinity", login.DefaultAffinity, "how long an account's bindings outlive its session (must match the gateways' -affinity)")
	fs.IntVar(&o.maxConns, "max-conns", defaultMaxConns, "most HTTP connections served at once; more wait in the listen backlog")
	fs.StringVar(&o.password, "password", "xserver", "DEMO ONLY: the one `password` every account logs in with (replace the checker in checker.go)")
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

// check validates the options and parses -stateful.
func (o *options) check() error {
	if err := o.Common.Check(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return service.Usagef("-listen %q: want host:port", o.listen)
	}
	types, err := parseTypes(o.stateful)
	if err != nil {
		return service.Usagef("-stateful %q: %v", o.stateful, err)
	}
	o.types = types
	if o.rollouts, err = discovery.ParseRollouts(o.gray); err != nil {
		return service.Usagef("-gray: %v", err)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"token-ttl", o.tokenTTL}, {"affinity", o.affinity}} {
		if d.v < time.Millisecond {
			return service.Usagef("-%s %v: must be at least 1ms", d.flag, d.v)
		}
	}
	if o.password == "" {
		return service.Usagef("-password is empty")
	}
	if o.maxConns <= 0 {
		return service.Usagef("-max-conns %d: must be positive", o.maxConns)
	}
	return nil
}

// parseTypes parses a comma-separated list of game node types ("4,5");
// blanks around entries are ignored and "" is the empty list. It is pure.
func parseTypes(s string) ([]common.NodeType, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []common.NodeType
	seen := make(map[common.NodeType]bool)
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a node type", f)
		}
		t := common.NodeType(v)
		if t < common.FirstGameType {
			return nil, fmt.Errorf("type %d is reserved; game types start at %d", v, common.FirstGameType)
		}
		if seen[t] {
			return nil, fmt.Errorf("type %d listed twice", v)
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, nil
}

// run is main without the process: it serves until ctx ends, then stops
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

	lcfg := login.DefaultConfig()
	lcfg.Redis = rdb
	lcfg.Cluster = o.Cluster
	lcfg.Checker = newChecker(o.password)
	lcfg.StatefulTypes = o.types
	lcfg.Rollouts = o.rollouts
	lcfg.TokenTTL = o.tokenTTL
	lcfg.Affinity = o.affinity
	ncfg, err := o.NodeConfig(rdb, log) // Redis, cluster, secret, intranet TLS
	if err != nil {
		return err
	}
	ncfg.Type = common.Login
	a, err := newApp(ncfg, lcfg, log)
	if err != nil {
		return err
	}
	a.maxConns = o.maxConns
	log.WithFields(logrus.Fields{
		"cluster": o.Cluster, "listen": o.listen, "redis": o.Redis.String(), "stateful": o.types,
		"token_ttl": o.tokenTTL, "affinity": o.affinity,
	}).Info("starting login service")
	if err := a.start(ctx, o.listen); err != nil {
		a.close()
		return fmt.Errorf("start: %w", err)
	}
	select {
	case <-ctx.Done():
		log.Info("signal received: finishing logins in flight and leaving the cluster")
	case err = <-a.served:
		err = fmt.Errorf("http: %w", err)
	}
	a.close()
	return err
}

// app is the login service: a node for the membership, login.Service and
// the HTTP server.
type app struct {
	n   *node.Node
	log logrus.FieldLogger
	h   http.Handler
	srv *http.Server
	// addr is the bound HTTP address, set by start.
	addr string
	// served receives http.Server.Serve's error when it stops on its own
	// (never after close); buffered.
	served chan error
	// done is closed when Serve has returned; nil before start.
	done chan struct{}
	// maxConns bounds the connections served at once (-max-conns).
	maxConns int
}

// defaultMaxConns is -max-conns' default: far more than a login service
// needs for its short requests, far below the file descriptor limit.
const defaultMaxConns = 4096

// newApp builds the node and the login service on it; lcfg.Members is
// set here. Configuration errors are service.UsageErrors.
func newApp(ncfg node.Config, lcfg login.Config, log logrus.FieldLogger) (*app, error) {
	n, err := node.New(ncfg)
	if err != nil {
		return nil, service.Usage(err)
	}
	lcfg.Members = n
	svc, err := login.New(lcfg)
	if err != nil {
		return nil, service.Usage(err)
	}
	a := &app{n: n, log: log.WithField("component", "login"), served: make(chan error, 1), maxConns: defaultMaxConns}
	hcfg := web.DefaultConfig()
	hcfg.Service = svc
	hcfg.Health = a.health
	hcfg.Logger = a.log
	hcfg.Timeout = requestTimeout
	if a.h, err = web.NewLoginHandler(hcfg); err != nil {
		return nil, service.Usage(err)
	}
	return a, nil
}

// start binds the HTTP listener, starts the node (which finds the
// mgrserver in the background) and serves.
func (a *app) start(ctx context.Context, listen string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	if err := a.n.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	a.addr = ln.Addr().String()
	ln = netutil.LimitListener(ln, a.maxConns)
	a.srv = &http.Server{
		Handler:           a.h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      requestTimeout + 5*time.Second,
		IdleTimeout:       time.Minute,
	}
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.served <- err
		}
	}()
	a.log.WithFields(logrus.Fields{"addr": a.addr, "id": a.n.GetID().String()}).Info("login service listening; looking for the mgrserver")
	go func() {
		if a.n.WaitReady(ctx) == nil {
			a.log.WithField("epoch", a.n.LeaderEpoch()).Info("registered with the mgrserver leader")
		}
	}()
	return nil
}

// health is GET /healthz: healthy while registered with an mgrserver.
func (a *app) health() error {
	if !a.n.Connected() {
		return errors.New("not registered with an mgrserver")
	}
	return nil
}

// close stops accepting logins, gives those in flight shutdownGrace, then
// leaves the cluster. Safe after a failed start.
func (a *app) close() {
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := a.srv.Shutdown(ctx); err != nil {
			_ = a.srv.Close()
		}
		cancel()
		<-a.done
	}
	_ = a.n.Close()
}
