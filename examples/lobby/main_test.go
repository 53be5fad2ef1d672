package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/examples/match/matchmaker"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

// Every test must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "lobby-test-secret"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		admin   string
	}{
		{"defaults", nil, map[string]string{"XSERVER_SECRET": secret}, "", ""},
		{"admin from env", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_ADMIN": "127.0.0.1:0"}, "", "127.0.0.1:0"},
		{"flag beats env", []string{"-admin", ":9"}, map[string]string{"XSERVER_SECRET": secret, "XSERVER_ADMIN": ":8"}, "", ":9"},
		{"no secret", nil, nil, "-secret is required", ""},
		{"stray argument", []string{"x"}, map[string]string{"XSERVER_SECRET": secret}, "unexpected arguments", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if code := service.Exit(io.Discard, name, err); code != service.ExitUsage {
					t.Errorf("exit %d, want %d", code, service.ExitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.admin != tt.admin {
				t.Errorf("admin %q, want %q", o.admin, tt.admin)
			}
		})
	}
}

const waitLimit = 15 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// frame is one frame a test client received.
type frame struct {
	kind wire.Kind
	code uint16 // login ack, kick
	cmd  uint64 // data
	body []byte // data
}

// client is a player's TCP connection to the gateway, speaking wire
// frames; one goroutine reads every frame into frames.
type client struct {
	account string
	lobby   common.NodeID // bound lobby
	conn    net.Conn
	done    chan struct{} // closed when the reader has returned

	mu     sync.Mutex // guards frames
	frames []frame
}

func dial(t *testing.T, tk *login.Ticket) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tk.Gateway, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{account: tk.Account, lobby: tk.Bindings[game.LobbyType], conn: conn, done: make(chan struct{})}
	go c.read()
	if _, err := conn.Write(wire.AppendLogin(nil, tk.Account, tk.Token)); err != nil {
		t.Fatal(err)
	}
	f, _ := c.find(t, 0, "login ack", func(f frame) bool { return f.kind == wire.KindClientLoginAck })
	if f.code != wire.CodeOK {
		t.Fatalf("%s: login refused: %s", tk.Account, wire.CodeText(f.code))
	}
	return c
}

func (c *client) read() {
	defer close(c.done)
	r := wire.NewReader(c.conn, 1<<16, 0)
	for {
		k, p, err := r.ReadFrame()
		if err != nil {
			return
		}
		f := frame{kind: k}
		switch k {
		case wire.KindClientData:
			cmd, data, err := wire.DecodeData(p)
			if err != nil {
				return
			}
			f.cmd, f.body = cmd, append([]byte(nil), data...)
		case wire.KindClientLoginAck, wire.KindClientKick:
			f.code, _, _ = wire.DecodeCoded(p)
		}
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
	}
}

func (c *client) close() {
	_ = c.conn.Close()
	<-c.done
}

// mark is the position after the frames received so far.
func (c *client) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

func (c *client) sendRaw(t *testing.T, cmd uint64, b []byte) {
	t.Helper()
	if _, err := c.conn.Write(wire.AppendData(nil, cmd, b)); err != nil {
		t.Fatalf("%s: send: %v", c.account, err)
	}
}

// find waits for the first frame at or after from that pred accepts and
// returns it with the position after it.
func (c *client) find(t *testing.T, from int, what string, pred func(frame) bool) (frame, int) {
	t.Helper()
	var (
		got frame
		pos int
	)
	waitFor(t, c.account+": "+what, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := from; i < len(c.frames); i++ {
			if pred(c.frames[i]) {
				got, pos = c.frames[i], i+1
				return true
			}
		}
		return false
	})
	return got, pos
}

// await waits for a data frame with cmd at or after from whose body,
// decoded into a fresh T, pred accepts.
func await[T any](t *testing.T, c *client, from int, cmd uint64, what string, pred func(T) bool) T {
	t.Helper()
	var v T
	c.find(t, from, what, func(f frame) bool {
		if f.kind != wire.KindClientData || f.cmd != cmd {
			return false
		}
		var x T
		if json.Unmarshal(f.body, &x) != nil || !pred(x) {
			return false
		}
		v = x
		return true
	})
	return v
}

// request sends a request and waits for the answer with the same cmd.
func request[T any](t *testing.T, c *client, cmd uint64, req any) T {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return requestRaw[T](t, c, cmd, b)
}

func requestRaw[T any](t *testing.T, c *client, cmd uint64, body []byte) T {
	t.Helper()
	m := c.mark()
	c.sendRaw(t, cmd, body)
	return await(t, c, m, cmd, fmt.Sprintf("the answer to %d", cmd), func(T) bool { return true })
}

func (c *client) count(cmd uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if f.kind == wire.KindClientData && f.cmd == cmd {
			n++
		}
	}
	return n
}

func accounts(ps []game.Player) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Account
	}
	sort.Strings(out)
	return out
}

func getMetrics(t *testing.T, addr string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestGame runs a whole game cluster in-process — mgrserver, gateway,
// login service, two lobbies and a match — and four players on real TCP
// connections, two per lobby.
func TestGame(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const cluster = "lobbytest"
	var logs testkit.SyncBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() {
		if out := logs.String(); t.Failed() {
			t.Logf("log tail:\n%s", out[max(0, len(out)-20000):])
		}
	})

	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret, mcfg.Logger = rdb, cluster, secret, log
	testkit.StartMgrserver(t, mcfg)

	gcfg := gateway.DefaultConfig()
	gcfg.Redis, gcfg.Cluster, gcfg.Secret, gcfg.Logger, gcfg.InnerIP = rdb, cluster, secret, log, "127.0.0.1"
	gw := testkit.StartGateway(t, gcfg)

	ncfg := func(typ common.NodeType) node.Config {
		c := node.DefaultConfig()
		c.Redis, c.Cluster, c.Secret, c.Type, c.InnerIP, c.Logger = rdb, cluster, secret, typ, "127.0.0.1", log
		return c
	}
	var lobbies []*app
	for i := range 2 {
		a, err := newApp(ncfg(game.LobbyType), log)
		if err != nil {
			t.Fatal(err)
		}
		adminAddr := ""
		if i == 0 {
			adminAddr = "127.0.0.1:0"
		}
		if err := a.start(ctx, adminAddr); err != nil {
			t.Fatal(err)
		}
		defer a.close()
		lobbies = append(lobbies, a)
	}
	matchNode, err := node.New(ncfg(game.MatchType))
	if err != nil {
		t.Fatal(err)
	}
	mm, err := matchmaker.New(matchNode, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := matchNode.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer matchNode.Close()

	// The login service: a node for the membership, binding to lobbies.
	loginNode, err := node.New(ncfg(common.Login))
	if err != nil {
		t.Fatal(err)
	}
	if err := loginNode.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer loginNode.Close()
	lc := login.DefaultConfig()
	lc.Redis, lc.Cluster, lc.Members = rdb, cluster, loginNode
	lc.StatefulTypes = []common.NodeType{game.LobbyType}
	lc.Checker = login.CheckerFunc(func(context.Context, string, string) error { return nil })
	lc.Rand = rand.New(rand.NewPCG(1, 2))
	svc, err := login.New(lc)
	if err != nil {
		t.Fatal(err)
	}

	waitFor(t, "the cluster to form and link", func() bool {
		for _, l := range lobbies {
			if l.n.GatewayLinks() != 1 || len(l.n.GetNodeList(game.LobbyType)) != 2 || len(l.n.GetNodeList(game.MatchType)) != 1 {
				return false
			}
		}
		return matchNode.GatewayLinks() == 1 && gw.NumLinks() == 3 &&
			len(loginNode.GetNodeList(game.LobbyType)) == 2 && len(loginNode.GetNodeList(common.Gateway)) == 1
	})

	// Four players log in one after the other; each lobby publishes its
	// player count, so the login service alternates between them.
	perLobby := make(map[common.NodeID][]*client)
	var all []*client
	for i, acct := range []string{"p1", "p2", "p3", "p4"} {
		tk, err := svc.Login(ctx, acct, "pw")
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, tk)
		defer c.close()
		if i == 0 {
			if a := request[game.Ack](t, c, game.CmdOnline, struct{}{}); a.OK || a.Error != "enter first" {
				t.Errorf("online before enter: %+v", a)
			}
		}
		r := request[game.EnterReply](t, c, game.CmdEnter, game.Enter{Name: "Player " + acct[1:]})
		if !r.OK || r.Account != acct {
			t.Fatalf("enter %s: %+v", acct, r)
		}
		perLobby[c.lobby] = append(perLobby[c.lobby], c)
		all = append(all, c)
		waitFor(t, "the login service to see the lobby loads", func() bool {
			for _, l := range lobbies {
				m := loginNode.GetNode(l.n.GetID())
				if m == nil || int(m.GetOverload(0)) != len(perLobby[l.n.GetID()]) {
					return false
				}
			}
			return true
		})
	}
	onA, onB := perLobby[lobbies[0].n.GetID()], perLobby[lobbies[1].n.GetID()]
	if len(onA) != 2 || len(onB) != 2 {
		t.Fatalf("players per lobby: %d and %d, want 2 and 2", len(onA), len(onB))
	}

	t.Run("everyone sees everyone online", func(t *testing.T) {
		want := []string{"p1", "p2", "p3", "p4"}
		for _, c := range all {
			waitFor(t, c.account+" to list all four", func() bool {
				l := request[game.OnlineList](t, c, game.CmdOnline, struct{}{})
				return strings.Join(accounts(l.Online), ",") == strings.Join(want, ",")
			})
		}
		// The first player heard of each of the others as they came, the
		// ones on the other lobby through it.
		for _, other := range all[1:] {
			await(t, all[0], 0, game.PushPresence, "presence of "+other.account, func(p game.Presence) bool {
				return p.Account == other.account && p.Online && p.Name == "Player "+other.account[1:]
			})
		}
	})

	t.Run("a world line reaches everyone", func(t *testing.T) {
		marks := make([]int, len(all))
		for i, c := range all {
			marks[i] = c.mark()
		}
		from := onA[0]
		if a := request[game.Ack](t, from, game.CmdWorld, game.WorldChat{Text: "hello everyone"}); !a.OK {
			t.Fatalf("world: %+v", a)
		}
		for i, c := range all {
			line := await(t, c, marks[i], game.PushWorld, "the world line", func(l game.ChatLine) bool { return l.Text == "hello everyone" })
			if line.From != from.account || line.Name != "Player "+from.account[1:] || line.TS == 0 {
				t.Errorf("%s got %+v", c.account, line)
			}
		}
		if a := requestRaw[game.Ack](t, from, game.CmdWorld, []byte(`{"text":`)); a.OK || a.Error != "bad request" {
			t.Errorf("bad JSON: %+v", a)
		}
	})

	t.Run("a private line reaches its target only", func(t *testing.T) {
		from, to := onA[0], onB[0]
		m := to.mark()
		if a := request[game.Ack](t, from, game.CmdPrivate, game.PrivateChat{To: to.account, Text: "psst"}); !a.OK {
			t.Fatalf("private: %+v", a)
		}
		line := await(t, to, m, game.PushPrivate, "the private line", func(game.ChatLine) bool { return true })
		if line.From != from.account || line.Text != "psst" {
			t.Errorf("got %+v", line)
		}
		if a := request[game.Ack](t, from, game.CmdPrivate, game.PrivateChat{To: "nobody", Text: "hello?"}); a.OK || a.Error != "offline" {
			t.Errorf("private to nobody: %+v", a)
		}
	})

	t.Run("two players queue and are matched", func(t *testing.T) {
		a, b := onA[1], onB[1]
		ma, mb := a.mark(), b.mark()
		for _, c := range []*client{a, b} {
			if ack := request[game.Ack](t, c, game.CmdQueue, game.Queue{Mode: "duel"}); !ack.OK {
				t.Fatalf("%s queue: %+v", c.account, ack)
			}
		}
		gotA := await(t, a, ma, game.PushMatched, "matched", func(game.Matched) bool { return true })
		gotB := await(t, b, mb, game.PushMatched, "matched", func(game.Matched) bool { return true })
		if gotA.Account != a.account || gotA.Opponent.Account != b.account || gotA.Opponent.Name != "Player "+b.account[1:] || gotA.Mode != "duel" {
			t.Errorf("%s told %+v", a.account, gotA)
		}
		if gotB.Account != b.account || gotB.Opponent.Account != a.account || gotB.MatchID != gotA.MatchID || !strings.HasPrefix(gotA.MatchID, "m-") {
			t.Errorf("%s told %+v (other side %+v)", b.account, gotB, gotA)
		}
		waitFor(t, "the match logged", func() bool {
			return strings.Contains(logs.String(), "match "+gotA.MatchID+": ")
		})
		if mm.Len() != 0 {
			t.Errorf("%d still queued", mm.Len())
		}
	})

	t.Run("a player who leaves goes offline for the others", func(t *testing.T) {
		gone := onA[1]
		var rest []*client
		for _, c := range all {
			if c != gone {
				rest = append(rest, c)
			}
		}
		// It was waiting for a match: its lobby withdraws the ticket.
		if ack := request[game.Ack](t, gone, game.CmdQueue, game.Queue{Mode: "solo"}); !ack.OK {
			t.Fatalf("queue: %+v", ack)
		}
		waitFor(t, "the ticket queued", func() bool { return mm.Len() == 1 })
		marks := make([]int, len(rest))
		for i, c := range rest {
			marks[i] = c.mark()
		}
		gone.close()
		waitFor(t, "the ticket withdrawn", func() bool { return mm.Len() == 0 })
		for i, c := range rest {
			await(t, c, marks[i], game.PushPresence, gone.account+" offline", func(p game.Presence) bool {
				return p.Account == gone.account && !p.Online
			})
		}
		if l := request[game.OnlineList](t, onB[0], game.CmdOnline, struct{}{}); strings.Contains(strings.Join(accounts(l.Online), ","), gone.account) {
			t.Errorf("still listed: %+v", l)
		}
		waitFor(t, "the departure logged", func() bool {
			return strings.Contains(logs.String(), `msg="player left" account=`+gone.account)
		})
	})

	t.Run("a lobby that leaves takes its players and tickets along", func(t *testing.T) {
		if ack := request[game.Ack](t, onB[0], game.CmdQueue, game.Queue{Mode: "brawl"}); !ack.OK {
			t.Fatalf("queue: %+v", ack)
		}
		waitFor(t, "the ticket queued", func() bool { return mm.Len() == 1 })
		m := onA[0].mark()
		lobbies[1].close()
		for _, c := range onB {
			await(t, onA[0], m, game.PushPresence, c.account+" offline", func(p game.Presence) bool {
				return p.Account == c.account && !p.Online
			})
		}
		waitFor(t, "the lobby's tickets dropped", func() bool { return mm.Len() == 0 })
		if l := request[game.OnlineList](t, onA[0], game.CmdOnline, struct{}{}); len(l.Online) != 1 || l.Online[0].Account != onA[0].account {
			t.Errorf("online after the lobby left: %+v", l)
		}
	})

	for _, c := range all {
		if n := c.count(game.PushPrivate); (c == onB[0]) != (n == 1) || n > 1 {
			t.Errorf("%s got %d private lines", c.account, n)
		}
	}
	body := getMetrics(t, lobbies[0].adminAddr)
	for _, want := range []string{
		"xserver_lobby_players 1",
		`xserver_lobby_chat_lines_total{kind="world"} 1`,
		`xserver_lobby_chat_lines_total{kind="private"} 1`,
		"xserver_node_members 4", // gateway, login, match and itself
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("log contains the secret")
	}
}
