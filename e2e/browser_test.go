//go:build e2e

package e2e

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/login/web"
	"github.com/xserver/xserver/examples/match/matchmaker"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
)

const (
	clusterName = "e2e"
	secret      = "e2e-intranet-secret"
	password    = "e2e-password"

	// lobbyType is game.LobbyType (examples/internal/game is internal to
	// examples): the stateful type the login service binds players to.
	lobbyType = common.FirstGameType
	// matchType is game.MatchType.
	matchType = common.FirstGameType + 1

	keepLines   = 200              // app.js KEEP_LINES: chat lines a page keeps
	testTimeout = 3 * time.Minute  // the whole test
	stepTimeout = 30 * time.Second // one browser step or cluster wait
)

// TestBrowserChat: two players, each in its own browser context, log in
// through the page, enter the lobby, see each other online, exchange world
// chat lines and find a match against each other; then a second login of
// one account kicks the first page, which must show it.
func TestBrowserChat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel) // last: the cleanups of the players still need the browser
	artifacts := artifactDir(t)
	c := startCluster(ctx, t, artifacts)
	b := startBrowser(ctx, t)

	alice := b.player(t, "alice", "Alice", artifacts)
	bob := b.player(t, "bob", "Bob", artifacts)
	alice.logIn(c.url)
	bob.logIn(c.url)
	alice.waitOnline("Alice (you)", "Bob")
	bob.waitOnline("Alice", "Bob (you)")

	alice.say("hello from Alice")
	bob.waitText("#chat li", "Alice: hello from Alice")
	alice.waitText("#chat li", "Alice: hello from Alice")
	bob.say("hi Alice, Bob here")
	alice.waitText("#chat li", "Bob: hi Alice, Bob here")
	bob.waitText("#chat li", "Bob: hi Alice, Bob here")

	// A flood of chat lines scrolls the oldest off the page: it keeps the
	// last keepLines (app.js KEEP_LINES) rather than growing without end.
	const flood = keepLines + 20
	alice.sayMany("flood", flood)
	bob.waitText("#chat li", fmt.Sprintf("Alice: flood %d", flood-1))
	if n := bob.count("#chat li"); n != keepLines {
		t.Errorf("Bob's page holds %d chat lines after a flood, want the last %d", n, keepLines)
	}

	alice.findMatch()
	alice.waitText("#match-status", "Waiting for an opponent (duel)…")
	bob.findMatch()
	alice.waitText("#match-status", "Matched against Bob!")
	bob.waitText("#match-status", "Matched against Alice!")

	for _, p := range []*player{alice, bob} {
		t.Logf("screenshot of %s's page: %s", p.name, p.screenshot("lobby"))
	}

	// Every connection is cut and the gateway unreachable for a moment:
	// the pages say "reconnecting…", then resume the session on their own,
	// and the chat goes on with nothing lost or repeated.
	c.proxy.cut(true)
	alice.waitText("#status", "reconnecting…")
	t.Logf("screenshot of Alice's page while away: %s", alice.screenshot("reconnecting"))
	bob.say("said while Alice was away")
	c.proxy.unblock()
	for _, p := range []*player{alice, bob} {
		p.waitText("#status", "in the lobby as "+p.name)
	}
	alice.waitText("#chat li", "Bob: said while Alice was away")
	alice.say("back again")
	bob.waitText("#chat li", "Alice: back again")
	alice.waitText("#chat li", "Alice: back again")
	alice.waitOnline("Alice (you)", "Bob")
	for _, p := range []*player{alice, bob} {
		for _, line := range []string{"Bob: said while Alice was away", "Alice: back again"} {
			if n := p.countText("#chat li", line); n != 1 {
				t.Errorf("%s's page shows %q %d times after the resume, want once", p.name, line, n)
			}
		}
	}

	// The same account in another browser kicks the first session (code
	// 7): the first page must say so and go offline.
	again := b.player(t, "alice", "Alice again", artifacts)
	again.logIn(c.url)
	alice.waitText("#status", "offline")
	if alert := alice.alert(); alert != "Disconnected by the server: logged in elsewhere." {
		t.Errorf("Alice's page after a second login of her account shows %q, want the kick", alert)
	}
	bob.waitOnline("Alice again", "Bob (you)")
	t.Logf("screenshot of Alice's kicked page: %s", alice.screenshot("kicked"))

	for _, p := range []*player{alice, bob, again} {
		if errs := p.console.errors(); len(errs) > 0 {
			t.Errorf("%s's page logged errors:\n%s", p.name, strings.Join(errs, "\n"))
		}
	}
}

// TestClientProtocol checks the protocol code the page serves (the JS
// SDK's wire module) in the browser against docs/PROTOCOL.md: the login and
// data frames of the hex dumps in §3.7, and a stream of gateway frames
// (§2's LoginAck, §3.7's ClientError and idle kick) cut into three
// messages at every pair of offsets.
func TestClientProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	srv := httptest.NewServer(web.Handler(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	b := startBrowser(ctx, t)
	p := b.player(t, "protocol", "Protocol", t.TempDir())
	p.do("open the page", chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("login-form")), waitScript)

	rctx, rcancel := context.WithTimeout(p.ctx, stepTimeout)
	defer rcancel()
	failures, err := chromedp.Run(rctx, chromedp.Evaluate[[]string](`(() => {
		const c = window.xserverClient, enc = new TextEncoder();
		const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
		const unhex = (s) => new Uint8Array(s.split(" ").map((x) => parseInt(x, 16)));
		const fails = [];
		const expect = (what, got, want) => { if (got !== want) fails.push(what + ": got " + got + ", want " + want); };

		expect("login frame", hex(c.encodeLogin("alice", "tok123")),
			"00 00 00 10 00 64 05 61 6c 69 63 65 00 06 74 6f 6b 31 32 33");
		expect("data frame", hex(c.encodeData(4001n, enc.encode("hi"))),
			"00 00 00 0c 00 66 00 00 00 00 00 00 0f a1 68 69");

		const ack = unhex("00 00 00 06 00 65 00 00 6f 6b");
		const notDelivered = unhex("00 00 00 0c 00 6a 00 06 00 00 00 00 00 00 0f a1");
		const kick = new Uint8Array([...unhex("00 00 00 10 00 67 00 09"), ...enc.encode("idle timeout")]);
		expect("ack frame", hex(c.frame(c.Kind.LoginAck, unhex("00 00 6f 6b"))), hex(ack));
		const stream = new Uint8Array([...ack, ...notDelivered, ...kick]);
		const want = "101:00 00 6f 6b | 106:00 06 00 00 00 00 00 00 0f a1 | 103:" + hex(kick.subarray(6));
		for (let i = 0; i <= stream.length && fails.length === 0; i++) {
			for (let j = i; j <= stream.length && fails.length === 0; j++) {
				const r = new c.FrameReader();
				const frames = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)].flatMap((m) => r.push(m));
				expect("cut at " + i + "," + j, frames.map((f) => f.kind + ":" + hex(f.payload)).join(" | "), want);
			}
		}
		for (const bad of ["00 00 00 01 00 66", "00 20 00 00 00 66"]) {
			try { new c.FrameReader().push(unhex(bad)); fails.push("accepted a frame of length " + bad); } catch (e) {}
		}
		return fails;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// artifactDir is $E2E_ARTIFACTS (created if missing) or a new directory
// in os.TempDir(); it outlives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("E2E_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir, err := os.MkdirTemp("", "xserver-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// cluster is everything a player's browser talks to.
type cluster struct {
	url   string // the login service: the page and POST /login
	proxy *proxy // every page's WebSocket to the gateway goes through it
}

// startCluster runs redis-server, an mgrserver, a gateway with a
// WebSocket listener, the login service's HTTP front and a lobby, and
// waits until a login would bind to the lobby and the lobby is linked to
// the gateway. The cluster's log goes to artifacts/cluster.log.
func startCluster(ctx context.Context, t *testing.T, artifacts string) *cluster {
	t.Helper()
	logFile, err := os.Create(filepath.Join(artifacts, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	log := logrus.New()
	log.SetOutput(logFile)
	log.SetLevel(logrus.DebugLevel)

	rs := redistest.Start(t)
	rdb := rs.Client(t)

	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret, mcfg.Logger = rdb, clusterName, secret, log.WithField("proc", "mgrserver")
	testkit.StartMgrserver(t, mcfg)

	gcfg := gateway.DefaultConfig()
	gcfg.Redis, gcfg.Cluster, gcfg.Secret, gcfg.Logger = rdb, clusterName, secret, log.WithField("proc", "gateway")
	gcfg.InnerIP = "127.0.0.1"
	gcfg.WSListen = "127.0.0.1:0"
	gw := testkit.StartGateway(t, gcfg)

	px := startProxy(t, gw.Addrs().WebSocket)
	loginNode, url := startLogin(ctx, t, rdb, log.WithField("proc", "login"), px.addr())
	lobbyID := startLobby(ctx, t, rs.Addr(), artifacts, loginNode)

	matchID := startMatch(ctx, t, rdb, log.WithField("proc", "match"))

	waitFor(ctx, t, "the login service to see the gateway and the lobby", func() bool {
		return len(loginNode.GetNodeList(common.Gateway)) == 1 && loginNode.HaveNode(lobbyID)
	})
	waitFor(ctx, t, "the lobby and the match to link to the gateway", func() bool {
		return gw.HasLink(lobbyID) && gw.HasLink(matchID)
	})
	return &cluster{url: url, proxy: px}
}

// startLogin runs the login service as examples/login does (a node of
// type login, login.Service binding players to a lobby) behind the same
// HTTP front, and returns its node and URL.
func startLogin(ctx context.Context, t *testing.T, rdb redis.UniversalClient, log logrus.FieldLogger, wsProxy string) (*node.Node, string) {
	t.Helper()
	n, err := node.New(node.Config{
		Redis: rdb, Cluster: clusterName, Secret: secret, Type: common.Login, InnerIP: "127.0.0.1", Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	lcfg := login.DefaultConfig()
	lcfg.Redis, lcfg.Cluster, lcfg.Members = rdb, clusterName, n
	lcfg.StatefulTypes = []common.NodeType{lobbyType}
	lcfg.Checker = login.CheckerFunc(func(_ context.Context, _, credential string) error {
		if subtle.ConstantTimeCompare([]byte(credential), []byte(password)) != 1 {
			return errors.New("password mismatch")
		}
		return nil
	})
	svc, err := login.New(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	hcfg := web.DefaultConfig()
	hcfg.Service, hcfg.Logger = viaProxy{Service: svc, ws: wsProxy}, log
	h, err := web.NewLoginHandler(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return n, srv.URL
}

// startMatch runs a match node (examples/match/matchmaker) and returns
// its ID.
func startMatch(ctx context.Context, t *testing.T, rdb redis.UniversalClient, log logrus.FieldLogger) common.NodeID {
	t.Helper()
	n, err := node.New(node.Config{
		Redis: rdb, Cluster: clusterName, Secret: secret, Type: matchType, InnerIP: "127.0.0.1", Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := matchmaker.New(n, log); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n.GetID()
}

// waitFor polls cond until it holds, failing the test after stepTimeout.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// browser is one headless Chromium; each player gets a tab in a browser
// context of its own (separate storage, like two people).
type browser struct {
	ctx context.Context // the browser's first tab; started
}

// startBrowser starts Chromium ($CHROMIUM, else /usr/bin/chromium, else
// chromium on PATH) with a temporary profile; cleanup stops it.
func startBrowser(ctx context.Context, t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		// Two tabs play at once: keep the one not in front running.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1200, 760),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{ctx: bctx}
}

func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (apt-get install chromium, or set CHROMIUM): %v", err)
	}
	return p
}

// player is one person at the page, in its own browser context. Its
// methods run on the test goroutine and fail the test.
type player struct {
	t             *testing.T
	ctx           context.Context // its tab
	account, name string
	artifacts     string
	console       *consoleLog
}

func (b *browser) player(t *testing.T, account, name, artifacts string) *player {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &player{t: t, ctx: ctx, account: account, name: name, artifacts: artifacts}
	if err := chromedp.Do(ctx); err != nil { // opens the tab, with no deadline of its own
		cancel()
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	p.console = watchConsole(ctx)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's page at the failure: %s", name, p.screenshot("failed"))
		}
		cancel()
		p.console.wait()
	})
	return p
}

// do runs steps within stepTimeout; on failure it fails the test with
// what the page shows.
func (p *player) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, p.state())
	}
}

// state describes the page for a failure message.
func (p *player) state() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[
		"status: " + document.getElementById("status").textContent,
		"alert: " + (document.getElementById("alert").hidden ? "-" : document.getElementById("alert").textContent),
		"online: " + [...document.querySelectorAll("#online li")].map(li => li.textContent).join(", "),
		"chat: " + [...document.querySelectorAll("#chat li")].map(li => li.textContent).join(" | "),
		"activity: " + [...document.querySelectorAll("#events li")].map(li => li.textContent).join(" | "),
	].join("\n")`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return s + "\nconsole:\n" + strings.Join(p.console.all(), "\n")
}

// logIn opens the page, fills the form and waits for the lobby.
func (p *player) logIn(url string) {
	p.t.Helper()
	p.do("log in",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		waitScript,
		chromedp.SetValue(chromedp.ID("account"), p.account),
		chromedp.SendKeys(chromedp.ID("name"), p.name),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.ID("lobby")),
	)
}

// waitOnline waits until the online list shows exactly these entries, in
// this order.
func (p *player) waitOnline(entries ...string) {
	p.t.Helper()
	p.do("wait for the online list "+strings.Join(entries, ", "),
		chromedp.PollFunction[chromedp.Void](`(want) =>
			[...document.querySelectorAll("#online li")].map(li => li.textContent).join("\n") === want`,
			chromedp.WithPollingArgs(strings.Join(entries, "\n")),
			chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(0)), // do's deadline bounds it
	)
}

// say sends a world chat line through the chat form.
func (p *player) say(text string) {
	p.t.Helper()
	p.do("say "+text,
		chromedp.SendKeys(chromedp.ID("chat-text"), text),
		chromedp.Click(chromedp.ID("chat-send")),
	)
}

// sayMany sends n world chat lines "<prefix> 0" … "<prefix> n-1" through
// the chat form, as fast as the page takes them.
func (p *player) sayMany(prefix string, n int) {
	p.t.Helper()
	p.do(fmt.Sprintf("say %d lines", n), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const text = document.getElementById("chat-text"), form = document.getElementById("chat-form");
		for (let i = 0; i < %d; i++) { text.value = %q + " " + i; form.requestSubmit(); }
	})()`, n, prefix)))
}

// count is the number of elements matching the CSS selector.
func (p *player) count(selector string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, selector)))
	if err != nil {
		p.t.Fatalf("%s: count %s: %v", p.name, selector, err)
	}
	return n
}

// countText is the number of elements matching the CSS selector that read
// exactly text.
func (p *player) countText(selector, text string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
		`[...document.querySelectorAll(%q)].filter(e => e.textContent === %q).length`, selector, text)))
	if err != nil {
		p.t.Fatalf("%s: count %s: %v", p.name, selector, err)
	}
	return n
}

// waitText waits until an element matching the CSS selector reads
// exactly text.
func (p *player) waitText(selector, text string) {
	p.t.Helper()
	p.do(fmt.Sprintf("wait for %s %q", selector, text),
		chromedp.PollFunction[chromedp.Void](`(selector, want) =>
			[...document.querySelectorAll(selector)].some(e => e.textContent === want)`,
			chromedp.WithPollingArgs(selector, text),
			chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(0)),
	)
}

// wsConnectFailed is the browser's console error for a WebSocket that
// could not connect.
var wsConnectFailed = regexp.MustCompile(`^WebSocket connection to 'ws://[^']+' failed: `)

// waitScript waits until the page's module script ran (it imports the SDK).
var waitScript = chromedp.PollFunction[chromedp.Void](`() => window.xserverClient !== undefined`,
	chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(0))

// alert returns the text of the page's alert, "" when it is hidden.
func (p *player) alert() string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(() => { const a = document.getElementById("alert"); return a.hidden ? "" : a.textContent; })()`))
	if err != nil {
		p.t.Fatalf("%s: read the alert: %v", p.name, err)
	}
	return text
}

// findMatch presses "Find match" (mode duel).
func (p *player) findMatch() {
	p.t.Helper()
	p.do("find a match", chromedp.Click(chromedp.ID("queue")))
}

// screenshot saves the whole page as artifacts/<name>-<label>.png (name
// in lower case, dashes for spaces) and returns the path ("" if it could
// not).
func (p *player) screenshot(label string) string {
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("%s: screenshot: %v", p.name, err)
		return ""
	}
	slug := strings.ReplaceAll(strings.ToLower(p.name), " ", "-")
	path := filepath.Join(p.artifacts, slug+"-"+label+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Errorf("%s: %v", p.name, err)
		return ""
	}
	return path
}

// consoleLog collects a tab's console messages on its own goroutine until
// the tab's context ends.
type consoleLog struct {
	mu   sync.Mutex // guards msgs
	msgs []chromedp.ConsoleMessage
	done chan struct{}
}

func watchConsole(ctx context.Context) *consoleLog {
	c := &consoleLog{done: make(chan struct{})}
	messages := chromedp.Console(ctx) // subscribed from here on
	go func() {
		defer close(c.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

// wait returns once the collecting goroutine has; the tab must be closed.
func (c *consoleLog) wait() { <-c.done }

func (c *consoleLog) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.msgs))
	for _, m := range c.msgs {
		out = append(out, fmt.Sprintf("  %s: %s", m.Type, m))
	}
	return out
}

// errors lists uncaught exceptions and console errors, except the
// browser's own report of each WebSocket that could not connect: the test
// makes the gateway unreachable on purpose while the pages resume.
func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError && !m.IsException() && wsConnectFailed.MatchString(m.Text) {
			continue
		}
		if m.IsException() || m.Type == chromedp.ConsoleError {
			out = append(out, fmt.Sprintf("  %s:%d %s", m.URL, m.Line+1, m))
		}
	}
	return out
}
