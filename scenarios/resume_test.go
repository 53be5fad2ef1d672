package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/proctest"
	"github.com/xserver/xserver/internal/redistest"
)

// bin is where TestMain built the binaries.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xserver-scenarios-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := proctest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	secret   = "scenario-secret"
	password = "scenario-pw"
)

// cluster is redis-server, an mgrserver, gateways, the login service and
// one lobby, each its own process.
type cluster struct {
	t        *testing.T
	name     string
	redis    *redistest.Server
	gws      []*gw
	login    string // base URL
	lobbyAdm string // lobby admin base URL (the first lobby)
	lobbies  []*lobby
	window   time.Duration
}

type lobby struct {
	p     *proctest.Proc
	admin string // base URL
}

type gw struct {
	p      *proctest.Proc
	client string // TCP address
	ws     string
	admin  string // base URL
}

func (c *cluster) env() []string { return []string{"XSERVER_SECRET=" + secret} }

func (c *cluster) common() []string {
	return []string{"-redis", c.redis.Addr(), "-cluster", c.name, "-log-level", "info"}
}

func startCluster(t *testing.T, gateways int, window time.Duration) *cluster {
	return startClusterN(t, gateways, 1, window)
}

func startClusterN(t *testing.T, gateways, lobbies int, window time.Duration) *cluster {
	c := &cluster{t: t, name: strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), redis: redistest.Start(t), window: window}
	proctest.Start(t, "mgrserver", filepath.Join(bin, "mgrserver"), append(c.common(), "-listen", "127.0.0.1:0"), c.env()...)
	for i := 0; i < gateways; i++ {
		c.startGateway()
	}
	loginAddr := proctest.FreeAddr(t)
	c.login = "http://" + loginAddr
	proctest.Start(t, "login", filepath.Join(bin, "login"),
		append(c.common(), "-listen", loginAddr, "-password", password), c.env()...)
	for i := 0; i < lobbies; i++ {
		adm := proctest.FreeAddr(t)
		p := proctest.Start(t, fmt.Sprintf("lobby-%d", i+1), filepath.Join(bin, "lobby"), append(c.common(), "-admin", adm), c.env()...)
		c.lobbies = append(c.lobbies, &lobby{p: p, admin: "http://" + adm})
	}
	c.lobbyAdm = c.lobbies[0].admin
	proctest.WaitFor(t, 30*time.Second, "the login service to issue tickets", func() bool {
		return c.probeLogin()
	})
	return c
}

func (c *cluster) startGateway() *gw {
	g := &gw{client: proctest.FreeAddr(c.t), ws: proctest.FreeAddr(c.t), admin: proctest.FreeAddr(c.t)}
	args := append(c.common(), "-listen", g.client, "-ws-listen", g.ws, "-intranet", "127.0.0.1:0",
		"-inner-ip", "127.0.0.1", "-admin", g.admin, "-resume-window", c.window.String())
	g.p = proctest.Start(c.t, fmt.Sprintf("gateway-%d", len(c.gws)+1), filepath.Join(bin, "gateway"), args, c.env()...)
	g.admin = "http://" + g.admin
	proctest.WaitFor(c.t, 30*time.Second, "the gateway to register", func() bool {
		_, ok := proctest.Get(g.admin + "/healthz")
		return ok
	})
	c.gws = append(c.gws, g)
	return g
}

// probeLogin reports whether a login succeeds (a gateway and a lobby are
// known to the login service).
func (c *cluster) probeLogin() bool {
	body := strings.NewReader(fmt.Sprintf(`{"account":"probe","password":%q}`, password))
	resp, err := httpPost(c.login+"/login", body)
	return err == nil && resp == 200
}

// metric reads one metric from an admin endpoint.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	body, ok := proctest.Get(base + "/metrics")
	if !ok {
		t.Fatalf("GET %s/metrics failed", base)
	}
	v, found := proctest.Metric(body, name)
	if !found {
		t.Fatalf("%s/metrics has no %s", base, name)
	}
	return v
}

// resumeLine is a bot run's final "resume: …" line, parsed.
type resumeLine struct{ resumed, lost, duplicated, relogins int }

// runBots runs bin/bot with args against the cluster and returns its
// resume line once it exits.
func (c *cluster) startBots(name string, n int, d time.Duration, extra ...string) *proctest.Proc {
	args := []string{"-login", c.login, "-n", fmt.Sprint(n), "-duration", d.String(), "-password", password,
		"-prefix", name, "-queue=false", "-ramp", "1s", "-timeout", "5s", "-keep-sessions"}
	return proctest.Start(c.t, "bot-"+name, filepath.Join(bin, "bot"), append(args, extra...))
}

func (c *cluster) waitBots(p *proctest.Proc, d time.Duration) resumeLine {
	c.t.Helper()
	if !p.Wait(d) {
		c.t.Fatalf("bots still running after %v", d)
	}
	out := p.Output()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "resume: "); ok {
			var r resumeLine
			if _, err := fmt.Sscanf(rest, "%d resumed, %d lost, %d duplicated, %d relogins", &r.resumed, &r.lost, &r.duplicated, &r.relogins); err != nil {
				c.t.Fatalf("bad resume line %q: %v", line, err)
			}
			c.t.Logf("bots: %s", strings.TrimSpace(line))
			return r
		}
	}
	c.t.Fatalf("no resume line in the bots' output:\n%s", p.Tail(20))
	return resumeLine{}
}

// Every bot cuts its own connection abruptly about every 250 ms while
// the bots chat; each session is cut 20 times or more. Nothing is lost
// or duplicated in either direction, no session needs a new login, and
// the lobby never loses an account — until the bots are gone and their
// windows pass: then lose-account fires exactly once per session.
func TestResumeUnderConnectionCuts(t *testing.T) {
	for _, tc := range []struct {
		name string
		bots int
		ws   bool
	}{{"tcp", 200, false}, {"websocket", 60, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 1, 3*time.Second)
			extra := []string{"-chat-every", "2s", "-drop-every", "250ms"}
			if tc.ws {
				extra = append(extra, "-ws")
			}
			run := 12 * time.Second // about 48 cuts per bot: at least 20 even on a busy machine
			p := c.startBots("cut", tc.bots, run, extra...)
			r := c.waitBots(p, run+30*time.Second)
			if r.lost != 0 || r.duplicated != 0 || r.relogins != 0 {
				t.Fatalf("lost %d, duplicated %d, relogins %d; want none", r.lost, r.duplicated, r.relogins)
			}
			if r.resumed < 20*tc.bots {
				t.Fatalf("%d resumes for %d bots, want at least 20 each", r.resumed, tc.bots)
			}
			if n := metric(t, c.lobbyAdm, "lobby_lose_account_total"); n != 0 {
				t.Fatalf("lobby lost %v accounts of sessions that resumed", n)
			}
			// The bots are gone: every session expires, once.
			proctest.WaitFor(t, c.window+20*time.Second, "every session to expire", func() bool {
				return metric(t, c.lobbyAdm, "lobby_lose_account_total") >= float64(tc.bots)
			})
			time.Sleep(c.window) // a second expiry would come within a window
			if n := metric(t, c.lobbyAdm, "lobby_lose_account_total"); n != float64(tc.bots) {
				t.Fatalf("lose-account fired %v times for %d sessions", n, tc.bots)
			}
		})
	}
}

// The gateway holding every session is killed (SIGKILL) while the bots
// chat: every session resumes on the other gateway, nothing is lost or
// duplicated, and the lobby loses no account.
func TestResumeAfterGatewayKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		bots int
		ws   bool
	}{{"tcp", 200, false}, {"websocket", 60, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 1, 30*time.Second)
			extra := []string{"-chat-every", "1s"}
			if tc.ws {
				extra = append(extra, "-ws")
			}
			run := 10 * time.Second
			p := c.startBots("kill", tc.bots, run, extra...)
			victim := c.gws[0]
			proctest.WaitFor(t, 20*time.Second, "every bot logged in", func() bool {
				body, ok := proctest.Get(victim.admin + "/metrics")
				v, _ := proctest.Metric(body, "xserver_gateway_clients")
				return ok && v == float64(tc.bots)
			})
			spare := c.startGateway()
			proctest.WaitFor(t, 20*time.Second, "the login service to know the second gateway", func() bool {
				body, ok := proctest.Get(c.login + "/gateway")
				var a struct{ Gateway string }
				return ok && json.Unmarshal([]byte(body), &a) == nil && a.Gateway == spare.client
			})
			time.Sleep(time.Second) // let traffic flow through the victim
			victim.p.Kill()
			proctest.WaitFor(t, 20*time.Second, "every session on the second gateway", func() bool {
				body, ok := proctest.Get(spare.admin + "/metrics")
				v, _ := proctest.Metric(body, "xserver_gateway_clients")
				return ok && v == float64(tc.bots)
			})
			r := c.waitBots(p, run+30*time.Second)
			if r.lost != 0 || r.duplicated != 0 || r.relogins != 0 {
				t.Fatalf("lost %d, duplicated %d, relogins %d; want none", r.lost, r.duplicated, r.relogins)
			}
			if r.resumed < tc.bots {
				t.Fatalf("%d resumes for %d bots", r.resumed, tc.bots)
			}
			if n := metric(t, c.lobbyAdm, "lobby_lose_account_total"); n != 0 {
				t.Fatalf("lobby lost %v accounts of sessions that resumed", n)
			}
		})
	}
}
