package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

const secret = "echo-test-secret"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantErr    string
		wantType   uint
		wantOffset uint64
	}{
		{"defaults", nil, map[string]string{"XSERVER_SECRET": secret}, "", 4, 1000},
		{"env type", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_TYPE": "5"}, "", 5, 1000},
		{"flag beats env", []string{"-type", "7"}, map[string]string{"XSERVER_SECRET": secret, "XSERVER_TYPE": "5"}, "", 7, 1000},
		{"env offset", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_CMD_OFFSET": "10000"}, "", 4, 10000},
		{"no secret", nil, nil, "-secret is required", 0, 0},
		{"reserved type", []string{"-type", "3"}, map[string]string{"XSERVER_SECRET": secret}, "-type 3", 0, 0},
		{"type too big", []string{"-type", "4294967296"}, map[string]string{"XSERVER_SECRET": secret}, "-type", 0, 0},
		{"zero offset", []string{"-cmd-offset", "0"}, map[string]string{"XSERVER_SECRET": secret}, "-cmd-offset", 0, 0},
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
			if o.typ != tt.wantType || o.cmdOffset != tt.wantOffset {
				t.Errorf("type %d offset %d, want %d %d", o.typ, o.cmdOffset, tt.wantType, tt.wantOffset)
			}
		})
	}
}

func TestReplyCmd(t *testing.T) {
	tests := []struct {
		name    string
		self    common.NodeType
		offset  uint64
		source  common.NodeType
		cmd     uint64
		want    uint64
		wantAns bool
	}{
		{"client: type restored", 4, 1000, common.Client, 1, 4001, true},
		{"client: other type and offset", 7, 10000, common.Client, 42, 70042, true},
		{"client: cmd 0", 5, 1000, common.Client, 0, 5000, true},
		{"node request", 4, 1000, 5, 7, 7 | 1<<32, true},
		{"node request 0", 4, 1000, 5, 0, 1 << 32, true},
		{"largest request", 4, 1000, 4, 1<<32 - 1, 1<<33 - 1, true},
		{"node reply: not answered", 4, 1000, 5, 7 | 1<<32, 0, false},
		{"higher bits: not answered", 4, 1000, 6, 1 << 40, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := replyCmd(tt.self, tt.offset, tt.source, tt.cmd)
			if got != tt.want || ok != tt.wantAns {
				t.Errorf("replyCmd = %d, %t; want %d, %t", got, ok, tt.want, tt.wantAns)
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEchoJoinsAndReports: /healthz is 503 until an mgrserver exists, then
// 200; a second node's join and leave are logged and the member gauge
// follows.
func TestEchoJoinsAndReports(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs testkit.SyncBuffer
	log := logrus.New()
	log.SetOutput(&logs)

	newNode := func(typ common.NodeType) *app {
		a, err := newApp(node.Config{Redis: rdb, Cluster: "echotest", Secret: secret, Type: typ, Logger: log}, 1000, log)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newNode(4)
	if err := a.start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	base := "http://" + a.adminAddr
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz without mgrserver = %d %q, want 503", code, body)
	}

	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret = rdb, "echotest", secret
	testkit.StartMgrserver(t, mcfg)
	waitFor(t, "/healthz 200", func() bool { code, _ := get(t, base+"/healthz"); return code == http.StatusOK })

	b := newNode(5)
	if err := b.start(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gauge at 2", func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, "xserver_node_members 2")
	})
	waitFor(t, "join logged and members printed", func() bool {
		out := logs.String()
		return strings.Contains(out, `msg="member joined"`) && strings.Contains(out, "member_type=type5") &&
			strings.Contains(out, "membership: 2 members")
	})
	b.close()
	waitFor(t, "leave logged, gauge at 1", func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(logs.String(), `msg="member left"`) && strings.Contains(body, "xserver_node_members 1")
	})
	if strings.Contains(logs.String(), secret) {
		t.Error("log contains the secret")
	}
}

// relayed is one message a test node received.
type relayed struct {
	source common.NodeType
	from   common.NodeID
	cmd    uint64
	data   string
}

// TestEchoRelays runs an echo node behind a real gateway: a player's
// message comes back with the cmd the client sent, a node's request comes
// back to that node with the reply bit set, and a reply is not answered.
func TestEchoRelays(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const cluster = "echorelay"
	var logs testkit.SyncBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)

	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret, mcfg.Logger = rdb, cluster, secret, log
	testkit.StartMgrserver(t, mcfg)

	gcfg := gateway.DefaultConfig()
	gcfg.Redis, gcfg.Cluster, gcfg.Secret, gcfg.Logger = rdb, cluster, secret, log
	gcfg.InnerIP = "127.0.0.1"
	gw := testkit.StartGateway(t, gcfg)

	echo, err := newApp(node.Config{Redis: rdb, Cluster: cluster, Secret: secret, Type: 4, InnerIP: "127.0.0.1", Logger: log}, 1000, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo.start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer echo.close()

	// peer is another game node: it sends requests to the echo and
	// collects what comes back.
	pcfg := node.DefaultConfig()
	pcfg.Redis, pcfg.Cluster, pcfg.Secret, pcfg.Type, pcfg.InnerIP, pcfg.Logger = rdb, cluster, secret, 5, "127.0.0.1", log
	peer, err := node.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan relayed, 16)
	peer.RegisterFuncOnRelayMsg(func(source common.NodeType, from common.Member, _ string, cmd uint64, data []byte) {
		got <- relayed{source: source, from: from.GetID(), cmd: cmd, data: string(data)}
	})
	peer.EnableMessageRelay(true)
	if err := peer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	waitFor(t, "both nodes linked to the gateway", func() bool {
		return echo.n.GatewayLinks() == 1 && peer.GatewayLinks() == 1 && gw.NumLinks() == 2 &&
			peer.HaveNode(echo.n.GetID()) && len(peer.GetNodeList(common.Gateway)) == 1
	})

	t.Run("player", func(t *testing.T) {
		lc := login.DefaultConfig()
		lc.Redis, lc.Cluster, lc.Members = rdb, cluster, peer
		lc.StatefulTypes = []common.NodeType{4}
		lc.Checker = login.CheckerFunc(func(context.Context, string, string) error { return nil })
		svc, err := login.New(lc)
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := svc.Login(ctx, "player-1", "pw")
		if err != nil {
			t.Fatal(err)
		}
		if ticket.Bindings[4] != echo.n.GetID() {
			t.Fatalf("bound to %v, want the echo node", ticket.Bindings)
		}
		conn, err := net.DialTimeout("tcp", ticket.Gateway, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := wire.NewReader(conn, 1<<16, 0)
		if _, err := conn.Write(wire.AppendLogin(nil, ticket.Account, ticket.Token)); err != nil {
			t.Fatal(err)
		}
		k, p, err := r.ReadFrame()
		if err != nil || k != wire.KindClientLoginAck {
			t.Fatalf("login: %s %v", k, err)
		}
		if code, _, _ := wire.DecodeCoded(p); code != wire.CodeOK {
			t.Fatalf("login ack %s", wire.CodeText(code))
		}
		for _, m := range []struct {
			cmd  uint64
			data string
		}{{4001, "hello"}, {4999, ""}, {4000, strings.Repeat("x", 1000)}} {
			if _, err := conn.Write(wire.AppendData(nil, m.cmd, []byte(m.data))); err != nil {
				t.Fatal(err)
			}
			k, p, err := r.ReadFrame()
			if err != nil || k != wire.KindClientData {
				t.Fatalf("cmd %d: got %s %v, want data", m.cmd, k, err)
			}
			cmd, data, err := wire.DecodeData(p)
			if err != nil || cmd != m.cmd || string(data) != m.data {
				t.Errorf("echo of cmd %d %q: cmd %d %q %v", m.cmd, m.data, cmd, data, err)
			}
		}
	})

	waitFor(t, "the end of the session logged", func() bool {
		return strings.Contains(logs.String(), `msg="player session ended" account=player-1`)
	})

	t.Run("node", func(t *testing.T) {
		echoID := echo.n.GetID()
		// A reply sent to the echo is not answered; the request after it is.
		reply := common.Raw("a reply")
		if err := peer.SendByID(echoID, 9|replyBit, &reply); err != nil {
			t.Fatal(err)
		}
		req := common.Raw("ping")
		if err := peer.SendByID(echoID, 7, &req); err != nil {
			t.Fatal(err)
		}
		want := relayed{source: 4, from: echoID, cmd: 7 | replyBit, data: "ping"}
		select {
		case m := <-got:
			if m != want {
				t.Errorf("got %+v, want %+v", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no echo")
		}
		select {
		case m := <-got:
			t.Errorf("unexpected %+v", m)
		case <-time.After(200 * time.Millisecond):
		}
	})

	_, body := get(t, "http://"+echo.adminAddr+"/metrics")
	for _, want := range []string{`xserver_echo_replies_total{source="client"} 3`, `xserver_echo_replies_total{source="node"} 1`, "xserver_echo_failures_total 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("log contains the secret")
	}
}
