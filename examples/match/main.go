// Command match is the example game's matchmaker (examples/internal/game):
// a stateless node of type game.MatchType with relay enabled. Lobbies call
// it with tickets (game.NodeEnqueue); it pairs waiting players per game
// mode, first come first served, and tells each player who the opponent is:
// in the reply to the ticket that completed the pair, and by a call to the
// lobby of the player who waited (game.NodeMatched). Every match is logged
// as "match m-…: a vs b".
//
// Run one instance, or several: lobbies pick the instance by consistent
// hashing on the mode, so all tickets of a mode meet at one instance (see
// package matchmaker for what happens while instances come and go).
//
// -admin serves /healthz (200 while registered with an mgrserver) and
// /metrics (queued players, matches). Ctrl-C leaves the cluster
// gracefully. It takes the same flags and XSERVER_<FLAG> variables as the
// mgrserver for Redis, cluster and secret; -h lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/examples/match/matchmaker"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

const name = "match"

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	service.Common
	version string
	admin   string
}

func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout) // -h and -version
	o.Common.RegisterFlags(fs)
	o.Common.RegisterNodeFlags(fs)
	fs.StringVar(&o.version, "node-version", "", "`version` this node publishes to the cluster, for gray releases (-version prints the build)")
	fs.StringVar(&o.admin, "admin", "", "admin HTTP `address` for /healthz and /metrics (empty: off)")
	if err := service.Parse(fs, args, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, service.Usagef("unexpected arguments %q", fs.Args())
	}
	if err := o.Check(); err != nil {
		return nil, err
	}
	return &o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return service.Run(ctx, name, args, getenv, stdout, stderr, parseFlags, serve)
}

func serve(ctx context.Context, o *options, log *logrus.Logger) error {
	rdb, err := o.RedisClient(log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	cfg, err := o.NodeConfig(rdb, log) // Redis, cluster, secret, intranet TLS
	if err != nil {
		return err
	}
	cfg.Version = o.version
	a, err := newApp(cfg, log)
	if err != nil {
		return service.Usage(err)
	}
	if err := a.start(ctx, o.admin); err != nil {
		a.close()
		return err
	}
	<-ctx.Done()
	log.Info("signal received: leaving the cluster")
	a.close()
	return nil
}

// app is the match node with its admin server.
type app struct {
	n   *node.Node
	svc *matchmaker.Service
	log logrus.FieldLogger
	reg *prometheus.Registry

	admin     *admin.Server // nil when -admin is off
	adminAddr string        // bound admin address, set by start
}

// newApp builds the match node; cfg.Type is set to game.MatchType.
func newApp(cfg node.Config, log logrus.FieldLogger) (*app, error) {
	cfg.Type = game.MatchType
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	svc, err := matchmaker.New(n, log)
	if err != nil {
		return nil, err
	}
	a := &app{n: n, svc: svc, log: log.WithField("component", "match"), reg: prometheus.NewRegistry()}
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xserver_node_members",
		Help: "Cluster members this node knows of, itself included.",
	}, func() float64 { return float64(n.NumMembers()) }))
	a.reg.MustRegister(svc.Collectors()...)
	a.reg.MustRegister(admin.WatchRedis(cfg.Redis), admin.LeaderEpoch(n.LeaderEpoch), n.Metrics())
	return a, nil
}

// start serves the admin port (if adminAddr is set) and starts the node,
// which finds the mgrserver in the background.
func (a *app) start(ctx context.Context, adminAddr string) error {
	if adminAddr != "" {
		a.admin = admin.New(a.reg, a.health, a.log)
		bound, err := a.admin.Start(adminAddr)
		if err != nil {
			return err
		}
		a.adminAddr = bound
	}
	if err := a.n.Start(ctx); err != nil {
		return err
	}
	a.log.WithField("id", a.n.GetID().String()).Info("match started; looking for the mgrserver")
	return nil
}

// health is /healthz: healthy while registered with an mgrserver.
func (a *app) health() error {
	if !a.n.Connected() {
		return errors.New("not connected to an mgrserver")
	}
	return nil
}

// close leaves the cluster and stops the admin server. Safe twice and
// after a failed start.
func (a *app) close() {
	_ = a.n.Close()
	if a.admin != nil {
		_ = a.admin.Close()
	}
}
