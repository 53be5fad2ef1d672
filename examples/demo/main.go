// Command demo runs a small xserver cluster on this machine: two
// mgrservers (one leads, one stands by), a gateway, a login service and a
// few echo nodes, with their output prefixed by name, and prints the
// cluster's membership whenever it changes. It is what `make run` starts.
//
// Once the cluster has formed, the demo plays one player through the
// public protocols: it logs in over HTTP at the login service, connects to
// the gateway named in its ticket, sends "hello" with cmd 4001 (node type
// 4, the type the login service binds players to) and prints how the echo
// came back.
//
// Redis: $REDIS_ADDR if set, else an embedded in-memory Redis (demo only).
// The children are the mgrserver, gateway, login and echo binaries next to
// this one (make build puts them in bin/). A random shared secret reaches
// them through XSERVER_SECRET and is never printed.
//
// Ctrl-C (or SIGTERM, or the end of -duration) stops the login service and
// the gateway, then the echo nodes, then the mgrservers, and exits. With
// -duration the exit status says whether everything worked: non-zero if
// the leader never reported every member, if the player's round trip
// failed, or if a child failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/demo/internal/demo"
	"github.com/xserver/xserver/internal/cli"
	"github.com/xserver/xserver/internal/embedredis"
)

const (
	self         = "demo"
	mgrservers   = 2
	cluster      = "demo"
	pollInterval = 250 * time.Millisecond
	stopGrace    = 5 * time.Second // per phase: login and gateway, nodes, mgrservers

	// The demo player.
	playerAccount  = "demo-1"
	playerPassword = "xserver" // examples/login's -password default (demo only)
	playerPayload  = "hello"
	cmdOffset      = 1000 // the gateway's and the echo nodes' -cmd-offset default
	playerTimeout  = 10 * time.Second
	playerRetry    = 250 * time.Millisecond
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	fs := flag.NewFlagSet(self, flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "run this long, then stop and report whether the cluster formed and the player's round trip worked (0: until Ctrl-C)")
	nodes := fs.Int("nodes", 3, "number of echo nodes (types 4, 4, 5, 4, 4, 5, ...)")
	logLevel := fs.String("log-level", "info", "children's log `level`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return cli.Exit(os.Stderr, self, cli.Usage(err))
	}
	if *nodes < 1 || *duration < 0 || fs.NArg() > 0 {
		fs.Usage()
		return cli.ExitUsage
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	types := demo.NodeTypes(*nodes)
	names := []string{self}
	for _, c := range demo.Plan(demo.Addrs{MgrAdmins: make([]string, mgrservers)}, types) {
		names = append(names, c.Name)
	}
	out := demo.NewOutput(os.Stdout, names...)
	say := func(format string, args ...any) { out.Printf(self, format, args...) }

	ok, err := runCluster(ctx, out, say, types, *logLevel, *duration > 0)
	if err != nil {
		say("error: %v", err)
		return cli.ExitFailure
	}
	if !ok {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// runCluster runs the cluster until ctx ends. ok is false when strict and
// the cluster never formed, the player's round trip failed or a child
// failed.
func runCluster(ctx context.Context, out *demo.Output, say func(string, ...any), types []common.NodeType, logLevel string, strict bool) (ok bool, err error) {
	binDir, err := executableDir()
	if err != nil {
		return false, err
	}
	for _, bin := range []string{"mgrserver", "gateway", "login", "echo"} {
		if _, err := os.Stat(filepath.Join(binDir, bin)); err != nil {
			return false, fmt.Errorf("%s not found next to the demo (run `make build`): %w", bin, err)
		}
	}

	redisAddr := os.Getenv("REDIS_ADDR")
	if redisAddr == "" {
		r, err := embedredis.Start("127.0.0.1:0")
		if err != nil {
			return false, err
		}
		defer r.Close()
		redisAddr = r.Addr()
		say("REDIS_ADDR is not set: started an embedded Redis (in-memory, demo only) on %s", redisAddr)
	} else {
		say("using Redis at REDIS_ADDR")
	}

	secret, err := randomSecret()
	if err != nil {
		return false, err
	}
	env := childEnv(os.Environ(), map[string]string{
		"XSERVER_SECRET":    secret,
		"XSERVER_REDIS":     redisAddr,
		"XSERVER_CLUSTER":   cluster,
		"XSERVER_LOG_LEVEL": logLevel,
	})

	free := make([]string, mgrservers+2)
	for i := range free {
		if free[i], err = demo.FreeAddr(); err != nil {
			return false, err
		}
	}
	addrs := demo.Addrs{MgrAdmins: free[:mgrservers], GatewayAdmin: free[mgrservers], Login: free[mgrservers+1]}
	plan := demo.Plan(addrs, types)
	var mgrs, fronts, echos, all []*demo.Proc
	defer func() {
		// The edge first: the login service stops handing out tickets and
		// the gateway drains its players (their nodes hear lose-account).
		// Then the nodes, so their graceful leaves show; then the
		// mgrservers, which release the lease. Children that exited
		// non-zero fail a strict run.
		say("stopping: SIGTERM to the login service and the gateway, then to the nodes, then to the mgrservers")
		errF := demo.StopAll(fronts, syscall.SIGTERM, stopGrace)
		errN := demo.StopAll(echos, syscall.SIGTERM, stopGrace)
		errM := demo.StopAll(mgrs, syscall.SIGTERM, stopGrace)
		if e := errors.Join(errF, errN, errM); e != nil {
			say("children did not stop cleanly: %v", e)
			if strict {
				ok = false
			}
		}
		say("stopped")
	}()
	for _, c := range plan {
		p, err := demo.Start(c.Name, filepath.Join(binDir, c.Bin), c.Args, env, out)
		if err != nil {
			return false, err
		}
		switch c.Role {
		case demo.RoleMgrServer:
			mgrs = append(mgrs, p)
		case demo.RoleGateway, demo.RoleLogin:
			fronts = append(fronts, p)
		default:
			echos = append(echos, p)
		}
		all = append(all, p)
		say("started %s: %s %s", c.Name, c.Bin, strings.Join(c.Args, " "))
	}

	// Once the cluster has formed, one player proves the whole path.
	player := &demo.Player{
		Account: playerAccount, Password: playerPassword, LoginURL: "http://" + addrs.Login + "/login",
		HTTP: &http.Client{Timeout: 2 * time.Second}, Cmd: uint64(common.FirstGameType)*cmdOffset + 1,
		CmdOffset: cmdOffset, Payload: []byte(playerPayload),
	}
	played := make(chan bool, 1)
	var started bool
	onFormed := func() {
		started = true
		go func() { played <- play(ctx, say, player) }()
	}

	want := demo.Want(plan)
	reached := watch(ctx, say, plan, all, want, onFormed)
	playedOK := started && <-played
	if !strict {
		return true, nil
	}
	if !reached {
		say("FAIL: the leader never reported the expected members (%s)", demo.DescribeWant(want))
		return false, nil
	}
	if !playedOK {
		say("FAIL: the player's round trip through the login service, the gateway and an echo node did not complete")
		return false, nil
	}
	say("OK: the cluster formed with %s and a player's message made the round trip", demo.DescribeWant(want))
	return true, nil
}

// play runs the player's round trip, retrying for a while: the leader may
// list every member a moment before the login service and the gateway
// know them all. It reports the outcome and whether it succeeded.
func play(ctx context.Context, say func(string, ...any), p *demo.Player) bool {
	ctx, cancel := context.WithTimeout(ctx, playerTimeout)
	defer cancel()
	var lastErr error
	for {
		trip, err := p.RoundTrip(ctx)
		if err == nil {
			say("player %s: sent '%s' to %s, echo came back from node %s in %v",
				p.Account, p.Payload, trip.Type, nodeName(trip.Node), trip.RTT.Round(100*time.Microsecond))
			return true
		}
		if lastErr == nil || err.Error() != lastErr.Error() {
			say("player %s: %v (retrying)", p.Account, err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			say("player %s: gave up: %v", p.Account, lastErr)
			return false
		case <-time.After(playerRetry):
		}
	}
}

// nodeName is a node ID for the player's line ("any" for a stateless
// type, which the ticket does not bind).
func nodeName(id common.NodeID) string {
	if id.IsZero() {
		return "any"
	}
	return id.String()
}

// watch polls the mgrservers until ctx ends, printing the membership line
// when it changes and reporting children that exit. The first time a
// leader reports exactly want it calls formed, once. It returns whether
// that happened.
func watch(ctx context.Context, say func(string, ...any), plan []demo.Child, procs []*demo.Proc, want map[common.NodeType]int, formed func()) bool {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	exited := make(map[*demo.Proc]bool)
	last, reached := "", false
	for {
		views := demo.Fetch(ctx, client, plan)
		if ctx.Err() != nil {
			return reached
		}
		if line := demo.Summary(views); line != last {
			say("%s", line)
			last = line
		}
		if !reached && demo.Reached(views, want) {
			reached = true
			formed()
		}
		for _, p := range procs {
			select {
			case <-p.Done():
				if !exited[p] {
					exited[p] = true
					say("%s exited: %v", p.Name, exitText(p.Err()))
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			return reached
		case <-tick.C:
		}
	}
}

// executableDir is the directory holding this binary (symlinks resolved),
// where make build also puts the other binaries.
func executableDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate own executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Dir(exe), nil
}

// randomSecret returns 32 random bytes, hex-encoded.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// childEnv is base without any XSERVER_ variable (so the caller's shell
// cannot change the demo's wiring), plus set.
func childEnv(base []string, set map[string]string) []string {
	var out []string
	for _, kv := range base {
		if !strings.HasPrefix(kv, cli.EnvPrefix+"_") {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}
