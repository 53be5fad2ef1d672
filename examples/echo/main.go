// Command echo is a minimal game node: it joins the cluster, logs every
// membership change, serves /healthz (200 while registered with an
// mgrserver, else 503) and /metrics, and echoes relayed messages:
//
//   - A player's message comes back to the player unchanged, with the full
//     cmd the client sent: the gateway strips the node type from cmd
//     (cmd % -cmd-offset reaches the node), so the reply carries
//     type*offset + cmd again. -cmd-offset must match the gateways'.
//   - A node's message is a request when its cmd is below 1<<32; it comes
//     back to the sending node unchanged, with cmd | 1<<32. A cmd at or
//     above 1<<32 (a reply) is never answered, so two echo nodes cannot
//     bounce a message between them forever. Nodes talking to an echo
//     node use the same convention.
//
// Ctrl-C leaves the cluster gracefully. It takes the same flags and
// XSERVER_<FLAG> variables as the mgrserver for Redis, cluster and secret;
// -h lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

const (
	name = "echo"
	// replyBit marks a node-to-node reply: requests use cmds below it,
	// the echo answers with cmd | replyBit and never answers a cmd at or
	// above it.
	replyBit = 1 << 32
	// settle is how long membership must stay still before the member
	// list is printed, so a burst of joins prints once.
	settle = 200 * time.Millisecond
)

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	service.Common
	typ       uint
	version   string
	admin     string
	cmdOffset uint64
}

func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout) // -h and -version
	o.Common.RegisterFlags(fs)
	o.Common.RegisterNodeFlags(fs)
	fs.UintVar(&o.typ, "type", uint(common.FirstGameType), "node `type` (4 and above; 0-3 are the framework's)")
	fs.StringVar(&o.version, "node-version", "", "`version` this node publishes to the cluster, for gray releases (-version prints the build)")
	fs.StringVar(&o.admin, "admin", "", "admin HTTP `address` for /healthz and /metrics (empty: off)")
	fs.Uint64Var(&o.cmdOffset, "cmd-offset", 1000, "the gateways' cmd `offset`: a reply to a player carries type*offset + cmd")
	if err := service.Parse(fs, args, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, service.Usagef("unexpected arguments %q", fs.Args())
	}
	if err := o.Check(); err != nil {
		return nil, err
	}
	if o.typ < uint(common.FirstGameType) || o.typ > math.MaxUint32 {
		return nil, service.Usagef("-type %d: game node types start at %d", o.typ, common.FirstGameType)
	}
	if o.cmdOffset == 0 {
		return nil, service.Usagef("-cmd-offset 0: must be positive")
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
	cfg, err := o.NodeConfig(rdb, log)
	if err != nil {
		return err
	}
	cfg.Type, cfg.Version = common.NodeType(o.typ), o.version
	a, err := newApp(cfg, o.cmdOffset, log)
	if err != nil {
		return err
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

// app is the echo node with its admin server.
type app struct {
	n         *node.Node
	cmdOffset uint64
	log       logrus.FieldLogger
	reg       *prometheus.Registry
	echoed    *prometheus.CounterVec // by source: client or node
	// echoedClient, echoedNode: echoed's two counters, resolved once.
	echoedClient, echoedNode prometheus.Counter
	debug                    bool // debug lines are written (checked once: building their fields costs)
	failed                   prometheus.Counter
	admin                    *admin.Server // nil when -admin is off
	// adminAddr is the bound admin address, set by start.
	adminAddr string
	// printer fires settle after the last membership change. time.Timer
	// is safe for concurrent Reset and Stop.
	printer *time.Timer
}

// newApp builds the node; cmdOffset is the gateways' -cmd-offset.
func newApp(cfg node.Config, cmdOffset uint64, log logrus.FieldLogger) (*app, error) {
	n, err := node.New(cfg)
	if err != nil {
		return nil, service.Usage(err)
	}
	a := &app{
		n: n, cmdOffset: cmdOffset, log: log.WithField("component", "echo"), reg: prometheus.NewRegistry(),
		echoed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xserver_echo_replies_total",
			Help: "Relayed messages echoed, by source (client or node).",
		}, []string{"source"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xserver_echo_failures_total",
			Help: "Echoes that could not be handed to a gateway.",
		}),
	}
	a.echoedClient, a.echoedNode = a.echoed.WithLabelValues("client"), a.echoed.WithLabelValues("node")
	a.debug = debugEnabled(log)
	a.printer = time.AfterFunc(time.Hour, a.printMembers)
	a.printer.Stop()

	n.RegisterFuncOnJoin(func(m common.Member) { a.logChange("member joined", m) })
	n.RegisterFuncOnLeave(func(m common.Member) { a.logChange("member left", m) })
	n.RegisterFuncOnUpdate(func(m common.Member) { a.logChange("member updated", m) })

	n.RegisterFuncOnRelayMsg(a.echo)
	n.RegisterFuncOnLoseAccount(func(account string) {
		a.log.WithField("account", account).Info("player session ended")
	})
	n.EnableMessageRelay(true)

	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xserver_node_members",
		Help: "Cluster members this node knows of, itself included.",
	}, func() float64 { return float64(n.NumMembers()) }), a.echoed, a.failed,
		admin.WatchRedis(cfg.Redis), admin.LeaderEpoch(n.LeaderEpoch), n.Metrics())
	return a, nil
}

// debugEnabled reports whether log writes debug lines (true when it
// cannot tell).
func debugEnabled(log logrus.FieldLogger) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

// replyCmd is the cmd that answers a relayed message from source with cmd
// on a node of type self, and whether to answer at all (see the package
// doc). It is pure.
func replyCmd(self common.NodeType, cmdOffset uint64, source common.NodeType, cmd uint64) (uint64, bool) {
	if source == common.Client {
		return uint64(self)*cmdOffset + cmd, true
	}
	if cmd >= replyBit {
		return 0, false
	}
	return cmd | replyBit, true
}

// echo is the relay handler. It runs on the receiving gateway link's
// goroutine and only queues the reply.
func (a *app) echo(source common.NodeType, from common.Member, account string, cmd uint64, data []byte) {
	reply, ok := replyCmd(a.n.GetType(), a.cmdOffset, source, cmd)
	if source == common.Client {
		// SendClientMsgByRelay queues its own copy of data.
		if err := a.n.SendClientMsgByRelay(account, reply, data); err != nil {
			a.failed.Inc()
			a.log.WithError(err).WithFields(logrus.Fields{
				"account": account, "cmd": cmd, "reply_cmd": reply, "bytes": len(data),
			}).Warn("echo to player failed")
			return
		}
		a.echoedClient.Inc()
		if a.debug {
			a.log.WithFields(logrus.Fields{"account": account, "cmd": reply, "bytes": len(data)}).Debug("echoed a player message")
		}
		return
	}
	// Fields are built only when they are written: this is the hot path.
	fields := func() logrus.Fields {
		return logrus.Fields{"from": from.GetID().String(), "from_type": source, "cmd": cmd, "bytes": len(data)}
	}
	if !ok {
		if a.debug {
			a.log.WithFields(fields()).Debug("node reply received; replies are not answered")
		}
		return
	}
	// data is ours only during this call, and SendMsg does not promise to
	// be done with the message when it returns: echo a copy.
	b := append([]byte(nil), data...)
	if err := from.SendMsg(reply, (*common.Raw)(&b)); err != nil {
		a.failed.Inc()
		a.log.WithError(err).WithFields(fields()).Warn("echo to node failed")
		return
	}
	a.echoedNode.Inc()
	if a.debug {
		a.log.WithFields(fields()).Debug("echoed a node message")
	}
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
	a.log.WithFields(logrus.Fields{"id": a.n.GetID(), "type": a.n.GetType()}).Info("node started; looking for the mgrserver")
	go func() {
		if a.n.WaitReady(ctx) == nil {
			a.log.WithField("epoch", a.n.LeaderEpoch()).Info("registered with the mgrserver leader")
			a.printer.Reset(settle)
		}
	}()
	return nil
}

// health is /healthz: healthy while registered with an mgrserver.
func (a *app) health() error {
	if !a.n.Connected() {
		return errors.New("not connected to an mgrserver")
	}
	return nil
}

func (a *app) logChange(what string, m common.Member) {
	a.log.WithFields(logrus.Fields{
		"member": m.GetID(), "member_type": m.GetType(), "ip": m.GetIP(common.IPInner),
		"version": m.GetVersion(), "overload": m.GetOverload(0),
	}).Info(what)
	a.printer.Reset(settle)
}

func (a *app) printMembers() {
	a.log.Infof("membership: %d members", a.n.NumMembers())
	a.n.PrintAllNodeInfo(a.log)
}

// close leaves the cluster (members see a leave, not a failure) and stops
// the admin server. Safe after a failed start.
func (a *app) close() {
	_ = a.n.Close()
	a.printer.Stop()
	if a.admin != nil {
		_ = a.admin.Close()
	}
}
