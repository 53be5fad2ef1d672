// Command demo runs the example game on a small xserver cluster on this
// machine: two mgrservers (one leads, one stands by), a gateway (TCP and
// WebSocket), the login service (which also serves the browser client),
// two lobbies, a match node and a few bots. It is what `make run` starts.
//
// The terminal shows a short trace: who leads the cluster, members
// joining and leaving, logins, one chat line, one match, and the address
// of the browser page. The children's own logs go to a log file whose
// path is printed first (-log-file to choose it); -verbose shows them on
// the terminal as well, prefixed by name.
//
// Once the cluster has formed, two scripted players prove the game works
// through the public protocols: each logs in over HTTP at the login
// service, connects to the gateway named in its ticket and enters its
// lobby (game.CmdEnter); the first says a line in the world chat and the
// second must hear it. Then both queue for a match.
//
// Redis: $REDIS_ADDR if set, else an embedded in-memory Redis (demo only).
// The children are the mgrserver, gateway, login, lobby, match and bot
// binaries next to this one (make build puts them in bin/). The shared
// secret is XSERVER_SECRET (or -secret) when set; otherwise the demo
// generates one and keeps it in a file only this user can read, removed
// on exit. It reaches the cluster's processes through XSERVER_SECRET and
// is never printed; the bots, being clients, do not get it.
//
// The demo prints the cluster name, the Redis address and where the
// secret came from, and once the cluster has formed a one-line recipe to
// attach a node of one's own (the echo example as type 7). The login
// service binds each player to one instance of the -stateful types
// (default 4, the lobby); a node of another type is load-balanced per
// message unless its type is added there.
//
// The bots (-bots, default 4) each say a world chat line every -bot-chat
// (default 10s), so that a human's line stays on the browser page for a
// while.
//
// Ctrl-C (or SIGTERM, or the end of -duration) stops the bots, then the
// login service and the gateway, then the game nodes, then the
// mgrservers, and exits. With -duration the exit status says whether
// everything worked: non-zero if the leader never reported every member,
// if the scripted players' round trip failed, or if a child failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/demo/internal/demo"
	"github.com/xserver/xserver/examples/demo/internal/embedredis"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/service"
)

const (
	mgrservers   = 2
	matches      = 1
	clusterName  = "demo"
	pollInterval = 250 * time.Millisecond
	stopGrace    = 5 * time.Second // per phase: bots, edge, nodes, mgrservers
	cmdOffset    = 1000            // the gateway's -cmd-offset default

	// The scripted players.
	password      = "xserver" // examples/login's -password default (demo only)
	chatText      = "hello from the demo"
	matchMode     = "duel"
	playerTimeout = 10 * time.Second // to log in, enter and chat, retries included
	matchTimeout  = 5 * time.Second
	playerRetry   = 250 * time.Millisecond
)

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx)
	stop()
	os.Exit(code)
}

// options are the demo's flags.
type options struct {
	duration  time.Duration
	verbose   bool
	lobbies   int
	bots      int
	botChat   time.Duration
	secret    string
	stateful  string
	loginAddr string
	logFile   string
	logLevel  string
}

func run(ctx context.Context) int {
	var o options
	fs := flag.NewFlagSet(demo.Self, flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 0, "run this long, then stop and report whether the cluster formed and the scripted players' round trip worked (0: until Ctrl-C)")
	fs.BoolVar(&o.verbose, "verbose", false, "show every child's log on the terminal too, prefixed by its name")
	fs.IntVar(&o.lobbies, "lobbies", 2, "number of lobby nodes (type 4)")
	fs.IntVar(&o.bots, "bots", 4, "number of bots that log in, chat and queue for matches (0: none)")
	fs.DurationVar(&o.botChat, "bot-chat", 10*time.Second, "each bot's world chat `period` (0: bots never chat); 4 bots at 10s say a line every 2.5s on average")
	fs.StringVar(&o.secret, "secret", "", "the cluster's shared `secret` (prefer XSERVER_SECRET; default: generated into a file only you can read, removed on exit)")
	fs.StringVar(&o.stateful, "stateful", demo.DefaultStateful(), "stateful node `types` (comma list) the login service binds each player to; add your own node's type to bind players to it")
	fs.StringVar(&o.loginAddr, "login-addr", "127.0.0.1:8080", "HTTP `address` of the login service and the browser page (a free port if taken)")
	fs.StringVar(&o.logFile, "log-file", "", "write the children's logs to this `file` (default: a new file in the temporary directory)")
	fs.StringVar(&o.logLevel, "log-level", "info", "children's log `level`")
	fs.SetOutput(os.Stdout) // -h and -version
	if err := service.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		return service.Exit(os.Stderr, demo.Self, err)
	}
	switch {
	case fs.NArg() > 0:
		return service.Exit(os.Stderr, demo.Self, service.Usagef("unexpected arguments %q", fs.Args()))
	case o.lobbies < 1:
		return service.Exit(os.Stderr, demo.Self, service.Usagef("-lobbies %d: at least 1", o.lobbies))
	case o.bots < 0:
		return service.Exit(os.Stderr, demo.Self, service.Usagef("-bots %d: must not be negative", o.bots))
	case o.duration < 0:
		return service.Exit(os.Stderr, demo.Self, service.Usagef("-duration %v: must not be negative", o.duration))
	case o.botChat < 0:
		return service.Exit(os.Stderr, demo.Self, service.Usagef("-bot-chat %v: must not be negative", o.botChat))
	}
	if err := demo.CheckStateful(o.stateful); err != nil {
		return service.Exit(os.Stderr, demo.Self, service.Usagef("-stateful %q: %v", o.stateful, err))
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	ok, err := runCluster(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return service.ExitFailure
	}
	if !ok {
		return service.ExitFailure
	}
	return service.ExitOK
}

// runCluster runs the cluster until ctx ends, then stops it. With
// -duration it reports false when the cluster never formed, the scripted
// players' round trip failed or a child failed; without, only an error
// starting it counts.
func runCluster(ctx context.Context, o options) (bool, error) {
	strict := o.duration > 0
	binDir, err := executableDir()
	if err != nil {
		return false, err
	}
	bins := []string{"mgrserver", "gateway", "login", "lobby", "match"}
	if o.bots > 0 {
		bins = append(bins, "bot")
	}
	for _, bin := range bins {
		if _, err := os.Stat(filepath.Join(binDir, bin)); err != nil {
			return false, fmt.Errorf("%s not found next to the demo (run `make build`): %w", bin, err)
		}
	}

	logf, err := openLog(o.logFile)
	if err != nil {
		return false, err
	}
	defer logf.Close()

	var moved string
	if anyPort := strings.HasSuffix(o.loginAddr, ":0"); anyPort || !demo.Available(o.loginAddr) {
		if !anyPort {
			moved = o.loginAddr
		}
		// The trace and the players need the port before the login
		// service binds it.
		if o.loginAddr, err = demo.FreeAddr(); err != nil {
			return false, err
		}
	}
	free := make([]string, mgrservers+1)
	for i := range free {
		if free[i], err = demo.FreeAddr(); err != nil {
			return false, err
		}
	}
	addrs := demo.Addrs{MgrAdmins: free[:mgrservers], GatewayAdmin: free[mgrservers], Login: o.loginAddr}
	plan := demo.Plan(addrs, o.lobbies, matches, o.stateful)
	loginBase := "http://" + addrs.Login
	bots := demo.Bots(loginBase, o.bots, o.botChat)

	names := []string{demo.Self, bots.Name}
	for _, c := range plan {
		names = append(names, c.Name)
	}
	var logw io.Writer = logf
	var term io.Writer = os.Stdout
	if o.verbose {
		logw, term = io.MultiWriter(logf, os.Stdout), nil
	}
	trace := demo.NewTrace(term, demo.NewOutput(logw, names...), append(plan, bots), time.Now)
	trace.Say("xserver demo: %s, a gateway, the login service, %s, %s and %s",
		count(mgrservers, "mgrserver"), count(o.lobbies, "lobby"), count(matches, "match node"), count(o.bots, "bot"))
	if !o.verbose {
		trace.Say("child logs: %s   (tail -f it, or run with -verbose)", logf.Name())
	}
	if moved != "" {
		trace.Say("%s is taken: the login service and the browser page use %s instead", moved, addrs.Login)
	}

	redisAddr := os.Getenv("REDIS_ADDR")
	if redisAddr == "" {
		r, err := embedredis.Start("127.0.0.1:0")
		if err != nil {
			return false, err
		}
		defer r.Close()
		redisAddr = r.Addr()
		trace.Say("Redis:   %s, embedded, in memory (demo only; set REDIS_ADDR to use a real one)", redisAddr)
	} else {
		trace.Say("Redis:   %s ($REDIS_ADDR)", redisAddr)
	}
	trace.Say("cluster: %s", clusterName)
	secret, secretFile := o.secret, ""
	switch {
	case secret == "":
		if secret, err = randomSecret(); err != nil {
			return false, err
		}
		if secretFile, err = writeSecret(secret); err != nil {
			return false, err
		}
		defer os.Remove(secretFile)
		trace.Say("secret:  generated, in %s (dev only: readable by you alone, removed on exit)", secretFile)
	case os.Getenv("XSERVER_SECRET") == secret:
		trace.Say("secret:  from XSERVER_SECRET")
	default:
		trace.Say("secret:  from -secret")
	}
	attach := demo.Attach{
		Cluster: clusterName, Redis: redisAddr, SecretFile: secretFile, Echo: filepath.Join(binDir, "echo"),
		Type: game.MatchType + 2, Stateful: o.stateful, CmdOffset: cmdOffset,
	}
	c := &cluster{
		binDir: binDir, trace: trace, plan: plan, procs: make(map[demo.Role][]*demo.Proc),
		// The bots are clients: they get neither the secret nor Redis.
		clientEnv: childEnv(os.Environ(), nil),
		env: childEnv(os.Environ(), map[string]string{
			"XSERVER_SECRET":     secret,
			"XSERVER_REDIS":      redisAddr,
			"XSERVER_CLUSTER":    clusterName,
			"XSERVER_LOG_LEVEL":  o.logLevel,
			"XSERVER_LOG_FORMAT": "text", // the trace reads the children's logs
		}),
	}
	defer c.stop() // on an early return; a no-op after the stop below
	for _, ch := range plan {
		if err := c.start(ch); err != nil {
			return false, err
		}
	}

	// Once the cluster has formed: the browser page's address and the
	// scripted players; once they are done, the bots.
	played := make(chan bool, 1)
	ready := make(chan struct{})
	var formedAt time.Duration
	onFormed := func(summary string) {
		formedAt = time.Since(c.began)
		trace.Event("cluster", "formed in %v: %s", formedAt.Round(10*time.Millisecond), strings.TrimPrefix(summary, "cluster: "))
		banner(trace, fmt.Sprintf("open %s/ in two browser tabs to chat", loginBase))
		for _, line := range attach.Lines() {
			trace.Say("%s", line)
		}
		trace.Say("")
		go func() {
			ok := play(ctx, trace, loginBase+"/login")
			close(ready) // the bots start either way: their summary tells more
			played <- ok
		}()
	}
	onReady := func() {
		if o.bots > 0 {
			if err := c.start(bots); err != nil {
				trace.Event("error", "%v", err)
			}
		}
	}
	want := demo.Want(plan)
	reached := c.watch(ctx, want, onFormed, ready, onReady)
	playedOK := reached && <-played
	stopErr := c.stop()
	if !strict {
		return true, nil
	}
	switch {
	case !reached:
		trace.Say("FAIL: the leader never reported the expected members (%s)", demo.DescribeWant(want))
	case !playedOK:
		trace.Say("FAIL: the scripted players could not log in, enter their lobbies and chat")
	case stopErr != nil:
		trace.Say("FAIL: a child failed: %v", stopErr)
	default:
		trace.Say("OK: the cluster formed in %v with %s; two players entered their lobbies, one's world chat line reached the other, and every child stopped cleanly",
			formedAt.Round(10*time.Millisecond), demo.DescribeWant(want))
		return true, nil
	}
	return false, nil
}

// cluster is the running children. Its methods are called from the
// demo's main goroutine only.
type cluster struct {
	binDir    string
	trace     *demo.Trace
	plan      []demo.Child
	env       []string // the cluster processes' environment
	clientEnv []string // the bots'
	began     time.Time
	procs     map[demo.Role][]*demo.Proc
	all       []*demo.Proc
	stopped   bool
}

// start starts one child.
func (c *cluster) start(ch demo.Child) error {
	if c.began.IsZero() {
		c.began = time.Now()
	}
	env := c.env
	if ch.Role == demo.RoleBot {
		env = c.clientEnv
	}
	p, err := demo.Start(ch.Name, filepath.Join(c.binDir, ch.Bin), ch.Args, env, c.trace.Writer(ch.Name))
	if err != nil {
		return err
	}
	c.procs[ch.Role] = append(c.procs[ch.Role], p)
	c.all = append(c.all, p)
	c.trace.Note("started %s: %s", ch.Name, strings.Join(append([]string{ch.Bin}, ch.Args...), " "))
	return nil
}

// stop stops every child: the players first; then the edge (the login
// service stops handing out tickets and the gateway drains its players,
// whose lobbies hear lose-account); then the game nodes, so their
// graceful leaves show; then the mgrservers, which release the lease. It
// returns the children's failures: a non-zero exit, or a kill after the
// grace period.
func (c *cluster) stop() error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	for _, phase := range []struct {
		what  string
		procs []*demo.Proc
	}{
		{"the bots", c.procs[demo.RoleBot]},
		{"the login service and the gateway (draining its players)", append(c.procs[demo.RoleLogin], c.procs[demo.RoleGateway]...)},
		{"the lobbies and the match node (leaving the cluster)", c.procs[demo.RoleNode]},
		{"the mgrservers (releasing the lease)", c.procs[demo.RoleMgrServer]},
	} {
		if len(phase.procs) == 0 {
			continue
		}
		c.trace.Event("stop", "%s", phase.what)
		errs = append(errs, demo.StopAll(phase.procs, syscall.SIGTERM, stopGrace))
	}
	err := errors.Join(errs...)
	if err != nil {
		c.trace.Event("error", "children did not stop cleanly: %v", err)
	}
	c.trace.Event("stop", "done")
	return err
}

// watch polls the mgrservers until ctx ends, turning membership changes
// into events and reporting children that exit. The first time a leader
// reports exactly want it calls formed, once, with the membership line;
// when ready closes it calls onReady, once. It returns whether the
// cluster formed.
func (c *cluster) watch(ctx context.Context, want map[common.NodeType]int, formed func(summary string), ready <-chan struct{}, onReady func()) bool {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	exited := make(map[*demo.Proc]bool)
	var tracker demo.Tracker
	reached := false
	for {
		views := demo.Fetch(ctx, client, c.plan)
		if ctx.Err() != nil {
			return reached
		}
		for _, ch := range tracker.Update(views) {
			event(c.trace, ch)
		}
		if !reached && demo.Reached(views, want) {
			reached = true
			formed(demo.Summary(views))
		}
		for _, p := range c.all {
			select {
			case <-p.Done():
				if !exited[p] {
					exited[p] = true
					c.trace.Event("error", "%s exited: %v", p.Name, exitText(p.Err()))
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			return reached
		case <-ready:
			ready = nil
			onReady()
		case <-tick.C:
		}
	}
}

// banner prints text in a box, so it stands out.
func banner(trace *demo.Trace, text string) {
	bar := strings.Repeat("─", len(text)+4)
	trace.Say("")
	trace.Say("    ┌%s┐", bar)
	trace.Say("    │  %s  │", text)
	trace.Say("    └%s┘", bar)
	trace.Say("")
}

// play runs the scripted players: the round trip (retried for a while:
// the leader may list every member a moment before the login service and
// the gateway know them all), then a match between them. It reports the
// outcome and whether the round trip succeeded.
func play(ctx context.Context, trace *demo.Trace, loginURL string) bool {
	rctx, cancel := context.WithTimeout(ctx, playerTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for {
		a := &demo.Player{Account: "demo-1", Password: password, Name: "Demo One", LoginURL: loginURL, HTTP: hc}
		b := &demo.Player{Account: "demo-2", Password: password, Name: "Demo Two", LoginURL: loginURL, HTTP: hc}
		chat, err := demo.RoundTrip(rctx, a, b, chatText)
		if err == nil {
			route := fmt.Sprintf("%s → %s", lobbyName(trace, a), lobbyName(trace, b))
			if a.Lobby() == b.Lobby() {
				route = "both on " + lobbyName(trace, a)
			}
			trace.Event("chat", "%s → world: %q, heard by %s in %v (%s)", a.Account, chat.Line.Text, b.Account,
				chat.Latency.Round(10*time.Microsecond), route)
			match(ctx, trace, a, b)
			resumeDemo(ctx, trace, loginURL, a, hc)
			a.Close()
			b.Close()
			return true
		}
		a.Close()
		b.Close()
		if lastErr == nil || err.Error() != lastErr.Error() {
			trace.Event("player", "%v (retrying)", err)
		}
		lastErr = err
		select {
		case <-rctx.Done():
			trace.Event("player", "gave up: %v", lastErr)
			return false
		case <-time.After(playerRetry):
		}
	}
}

// resumeDemo cuts a third player's connection and shows its session
// resume (see demo.ResumeDemo). Only a failure stops nothing: it is
// reported.
func resumeDemo(ctx context.Context, trace *demo.Trace, loginURL string, speaker *demo.Player, hc *http.Client) {
	ctx, cancel := context.WithTimeout(ctx, matchTimeout)
	defer cancel()
	r, err := demo.ResumeDemo(ctx, speaker, "demo-3", loginURL, hc)
	if err != nil {
		trace.Event("player", "resume: %v", err)
		return
	}
	trace.Event("resume", "%s after %v: %s replayed, %d resent", r.Account, r.Away.Round(time.Millisecond),
		count(r.Replayed, "frame"), r.Resent)
}

// match queues both players for the same mode and waits until the lobby
// tells both who they play (the match node logs the match, which the
// trace shows). Only a failure is reported here.
func match(ctx context.Context, trace *demo.Trace, players ...*demo.Player) {
	ctx, cancel := context.WithTimeout(ctx, matchTimeout)
	defer cancel()
	for _, p := range players {
		if err := p.Queue(ctx, matchMode); err != nil {
			trace.Event("player", "queue: %v", err)
			return
		}
	}
	for _, p := range players {
		if _, err := p.Matched(ctx); err != nil {
			trace.Event("player", "no match: %v", err)
			return
		}
	}
}

// lobbyName names the lobby a player is bound to.
func lobbyName(trace *demo.Trace, p *demo.Player) string {
	id := p.Lobby().String()
	if n := trace.Name(id); n != "" {
		return n
	}
	return "lobby " + demo.ShortID(id)
}

// event prints one membership change.
func event(trace *demo.Trace, c demo.Change) {
	switch c.Kind {
	case "leader":
		trace.Event("cluster", "%s leads, epoch %d%s", c.Leader, c.Epoch, c.Others)
	case "no-leader":
		trace.Event("cluster", "no leader%s", c.Others)
	default:
		name := trace.Name(c.Node.ID)
		if name == "" {
			name = "a " + demo.TypeName(c.Node.Type)
		}
		trace.Event(c.Kind, "%s (%s %s)", name, demo.TypeName(c.Node.Type), demo.ShortID(c.Node.ID))
	}
}

// openLog creates the log file: path, or a new file in the temporary
// directory.
func openLog(path string) (*os.File, error) {
	if path == "" {
		f, err := os.CreateTemp("", "xserver-demo-*.log")
		if err != nil {
			return nil, fmt.Errorf("create the log file: %w", err)
		}
		return f, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create the log file: %w", err)
	}
	return f, nil
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

// writeSecret writes secret to a new file in the temporary directory,
// readable by this user only, and returns its path.
func writeSecret(secret string) (string, error) {
	f, err := os.CreateTemp("", "xserver-demo-*.secret") // mode 0600
	if err != nil {
		return "", fmt.Errorf("write the secret: %w", err)
	}
	_, err = f.WriteString(secret)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write the secret: %w", err)
	}
	return f.Name(), nil
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
		if !strings.HasPrefix(kv, service.EnvPrefix+"_") {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// count is "1 lobby", "2 lobbies", "no bots".
func count(n int, what string) string {
	switch n {
	case 0:
		return "no " + plural(what)
	case 1:
		return "1 " + what
	}
	return fmt.Sprintf("%d %s", n, plural(what))
}

func plural(what string) string {
	if strings.HasSuffix(what, "y") {
		return strings.TrimSuffix(what, "y") + "ies"
	}
	return what + "s"
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}
