// Command lobby is the example game's lobby (examples/internal/game): a
// stateful node of type game.LobbyType. The login service binds every
// player to one lobby instance, which keeps the player in memory
// (account → name, enter time) while its session lives.
//
// Players (client cmd 4001–4005, the node receives cmd − 4000) enter with
// a name, chat to everyone (world: entering joins the player's session to
// the world group, and a line is one group broadcast that each gateway
// fans out) or to one player (private, through the gateway holding that
// player's session, whichever lobby it is on), list
// who is online across every lobby, and queue for a match. Every request
// is answered with the same cmd; a request before Enter gets
// {"ok":false,"error":"enter first"}, a body that is not JSON
// {"ok":false,"error":"bad request"}. A player whose lobby died is rebound
// by the gateway to another one, which answers "enter first": the client
// enters again.
//
// Lobbies keep a cluster-wide online list by telling each other (node cmds
// NodePresence, NodeWho): a starting lobby asks the others who
// is online once it is registered and linked to a gateway; a lobby that
// leaves the cluster takes its players off everyone's list. A ticket is a
// call (CallByKey(MatchType, mode, NodeEnqueue, …)) to the match instance
// that owns the game mode on the consistent-hash ring, so every ticket of
// a mode meets at one instance; the player's ack waits for the match's
// answer, which carries the match when the ticket completed one. The
// player who waited before hears of it through a NodeMatched call from the
// match to its lobby. Either way the lobby pushes Matched to the player.
//
// The player count is published as overload slot 0, so the login service
// binds new players to the least crowded lobby.
//
// The game logic is in two layers: Lobby (state.go) decides, with no IO
// and no clock; lobbyService (service.go) feeds it from the node's
// callbacks and timers and sends what it decides. lobbyService needs only
// common.INode and a clock, so its unit tests (service_test.go) run it on
// package nodetest's in-memory cluster, players and time included. -admin serves /healthz
// (200 while registered with an mgrserver) and /metrics. Ctrl-C leaves the
// cluster gracefully. It takes the same flags and XSERVER_<FLAG> variables
// as the mgrserver for Redis, cluster and secret; -h lists them.
package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/service"
)

const name = "lobby"

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
