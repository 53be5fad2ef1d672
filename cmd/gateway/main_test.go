package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

const secret = "test-secret-0123456789"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"cluster", "secret", "listen", "ws-listen", "intranet", "inner-ip", "outer-ip",
		"admin", "node-version", "cmd-offset", "idle", "login-timeout", "affinity", "selector", "max-frame",
		"max-clients", "max-prelogin", "client-queue-bytes", "link-max-frame", "link-queue-bytes", "ping-interval",
		"ping-misses", "write-timeout", "resume-window", "session-refresh", "broadcast-history", "rate-limit", "log-level", "log-format", "redis", "redis-master", "redis-cluster",
		"redis-password", "redis-db"} {
		envName := "XSERVER_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		if !strings.Contains(out.String(), "  -"+f+" ") && !strings.Contains(out.String(), "  -"+f+"\n") {
			t.Errorf("usage lacks -%s", f)
		}
		if !strings.Contains(out.String(), "(env "+envName) {
			t.Errorf("usage lacks %s", envName)
		}
	}
}

func TestConfigMapping(t *testing.T) {
	d := gateway.DefaultConfig()
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c gateway.Config)
	}{
		{"defaults", nil, map[string]string{"XSERVER_SECRET": secret}, func(t *testing.T, c gateway.Config) {
			if c.Listen != "0.0.0.0:7400" || c.Intranet != "0.0.0.0:7401" || c.WSListen != "" || c.Admin != "" ||
				c.Cluster != "xserver" || c.InnerIP != "" || c.OuterIP != "" {
				t.Errorf("addresses %+v", c)
			}
			c.Listen, c.Intranet, c.Secret = d.Listen, d.Intranet, ""
			if !reflect.DeepEqual(c, d) {
				t.Errorf("defaults differ from the library's:\n got %+v\nwant %+v", c, d)
			}
		}},
		{"flags and env", []string{
			"-secret", "flag-secret", "-listen", "127.0.0.1:0", "-ws-listen", "127.0.0.1:0", "-intranet", "10.0.0.5:0",
			"-outer-ip", "203.0.113.7", "-admin", ":7402", "-node-version", "v2", "-cmd-offset", "10000", "-idle", "1m",
			"-login-timeout", "2s", "-affinity", "30s", "-selector", "least-load", "-max-frame", "4096",
			"-max-clients", "10", "-client-queue-bytes", "8192", "-link-max-frame", "65536", "-ping-interval", "500ms",
			"-ping-misses", "4", "-write-timeout", "3s", "-resume-window", "0", "-session-refresh", "5s",
			"-broadcast-history", "4096", "-rate-limit", "frames=50; type=7,frames=2,burst=5,action=kick",
		}, map[string]string{"XSERVER_SECRET": secret, "XSERVER_LINK_QUEUE_BYTES": "1048576", "XSERVER_CLUSTER": "c2"},
			func(t *testing.T, c gateway.Config) {
				want := gateway.Config{
					Cluster: "c2", Secret: "flag-secret", Listen: "127.0.0.1:0", WSListen: "127.0.0.1:0",
					Intranet: "10.0.0.5:0", InnerIP: "10.0.0.5", OuterIP: "203.0.113.7", Admin: ":7402", Version: "v2",
					CmdOffset: 10000, Idle: time.Minute, LoginTimeout: 2 * time.Second, Affinity: 30 * time.Second,
					Selector: discovery.LeastLoad, MaxFrame: 4096, MaxClients: 10, ClientQueueBytes: 8192,
					LinkMaxFrame: 65536, LinkQueueBytes: 1 << 20, PingInterval: 500 * time.Millisecond, PingMisses: 4,
					WriteTimeout: 3 * time.Second, ResumeWindow: -1, SessionRefresh: 5 * time.Second, BroadcastHistory: 4096,
					RateLimits: []gateway.RateLimit{{Frames: 50}, {MinType: 7, MaxType: 7, Frames: 2, FrameBurst: 5, Kick: true}},
				}
				if !reflect.DeepEqual(c, want) {
					t.Errorf("config\n got %+v\nwant %+v", c, want)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, env(tt.env), new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o.config())
		})
	}
}

// TestPublishedIPs: without -inner-ip / -outer-ip the gateway publishes
// the hosts it binds, unless they are wildcards.
func TestPublishedIPs(t *testing.T) {
	tests := []struct {
		listen, intranet, inner, outer string
		wantInner, wantOuter           string
	}{
		{"0.0.0.0:7400", "0.0.0.0:7401", "", "", "", ""}, // library: this machine's IP for both
		{"127.0.0.1:0", "127.0.0.1:0", "", "", "127.0.0.1", "127.0.0.1"},
		{"0.0.0.0:7400", "10.1.2.3:7401", "", "", "10.1.2.3", ""}, // outer: the inner IP
		{"198.51.100.1:7400", "[::]:7401", "", "", "", "198.51.100.1"},
		{"localhost:7400", "localhost:7401", "", "", "", ""},
		{"127.0.0.1:0", "127.0.0.1:0", "10.0.0.1", "203.0.113.1", "10.0.0.1", "203.0.113.1"},
	}
	for _, tt := range tests {
		args := []string{"-listen", tt.listen, "-intranet", tt.intranet}
		if tt.inner != "" {
			args = append(args, "-inner-ip", tt.inner)
		}
		if tt.outer != "" {
			args = append(args, "-outer-ip", tt.outer)
		}
		o, err := parseFlags(args, env(map[string]string{"XSERVER_SECRET": secret}), new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if c := o.config(); c.InnerIP != tt.wantInner || c.OuterIP != tt.wantOuter {
			t.Errorf("%v: inner %q outer %q, want %q %q", args, c.InnerIP, c.OuterIP, tt.wantInner, tt.wantOuter)
		}
	}
}

func TestBadConfigExits2(t *testing.T) {
	withSecret := map[string]string{"XSERVER_SECRET": secret}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", nil, nil, "-secret is required"},
		{"empty secret in env", nil, map[string]string{"XSERVER_SECRET": ""}, "-secret is required"},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"bad env", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_IDLE": "soon"}, "XSERVER_IDLE"},
		{"empty listen", []string{"-listen", ""}, withSecret, "-listen is empty"},
		{"bad intranet", []string{"-intranet", "7401"}, withSecret, "-intranet"},
		{"bad ws", []string{"-ws-listen", "nowhere"}, withSecret, "-ws-listen"},
		{"bad inner ip", []string{"-inner-ip", "gw.local"}, withSecret, "-inner-ip"},
		{"bad selector", []string{"-selector", "fastest"}, withSecret, "-selector"},
		{"zero offset", []string{"-cmd-offset", "0"}, withSecret, "-cmd-offset"},
		{"zero idle", []string{"-idle", "0s"}, withSecret, "-idle"},
		{"negative affinity", []string{"-affinity", "-1s"}, withSecret, "-affinity"},
		{"zero max clients", []string{"-max-clients", "0"}, withSecret, "-max-clients"},
		{"prelogin over max clients", []string{"-max-clients", "10", "-max-prelogin", "11"}, withSecret, "-max-prelogin"},
		{"queue below a frame", []string{"-max-frame", "65536", "-client-queue-bytes", "1024"}, withSecret, "client queue"},
		{"bad rate limit", []string{"-rate-limit", "frames=1,speed=2"}, withSecret, "-rate-limit"},
		{"rate limit below a frame", []string{"-rate-limit", "bytes=1k,byte-burst=1k"}, withSecret, "byte-burst"},
		{"bad log level", []string{"-log-level", "chatty"}, withSecret, "-log-level"},
		{"bad redis", []string{"-redis", "nohost"}, withSecret, "-redis"},
		{"stray argument", []string{"extra"}, withSecret, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, env(tt.env), io.Discard, &stderr)
			if code != service.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, service.ExitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, &stderr)
			}
			if strings.Contains(stderr.String(), secret) {
				t.Error("stderr shows the secret")
			}
		})
	}
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

// gatewayStatus returns the gateway the mgrserver lists, if any.
func gatewayStatus(mgr *mgrserver.Server) (mgrserver.NodeStatus, bool) {
	for _, n := range mgr.Status().Nodes {
		if n.Type == common.Gateway {
			return n, true
		}
	}
	return mgrserver.NodeStatus{}, false
}

// TestRunServesAndDrainsOnSignal runs the binary's main logic against a
// real Redis and an in-process mgrserver: the gateway registers with its
// ports, relays a bound node and a logged-in player, and a cancelled
// context (what SIGTERM does) kicks the player with the shutdown code,
// sends lose-account to the bound node, leaves the cluster and returns 0.
// The secret and the token never reach the log.
func TestRunServesAndDrainsOnSignal(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	const cluster = "gwcmdtest"
	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret = rdb, cluster, secret
	mgr, err := mgrserver.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()

	// A stateful game node that records lose-account notices.
	ncfg := node.DefaultConfig()
	ncfg.Redis, ncfg.Cluster, ncfg.Secret, ncfg.Type, ncfg.InnerIP = rdb, cluster, secret, common.FirstGameType, "127.0.0.1"
	n, err := node.New(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan string, 1)
	n.RegisterFuncOnLoseAccount(func(account string) { lost <- account })
	n.EnableMessageRelay(true)
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testkit.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-intranet", "127.0.0.1:0", "-ws-listen", "127.0.0.1:0",
			"-admin", "127.0.0.1:0", "-log-level", "debug", "-log-format", "json", "-cluster", cluster},
			env(map[string]string{"XSERVER_SECRET": secret, "XSERVER_REDIS": rs.Addr()}), io.Discard, &logs)
	}()

	var gw mgrserver.NodeStatus
	waitFor(t, "the gateway to register", func() bool {
		var ok bool
		gw, ok = gatewayStatus(mgr)
		return ok
	})
	if len(gw.Addrs) < 2 || gw.Addrs[0] != "127.0.0.1" || gw.Addrs[1] != "127.0.0.1" {
		t.Errorf("published addresses %q, want 127.0.0.1 inner and outer", gw.Addrs)
	}
	if len(gw.Ports) != 3 || gw.Ports[0] == 0 || gw.Ports[1] == 0 || gw.Ports[2] == 0 {
		t.Errorf("published ports %v, want client, websocket and intranet", gw.Ports)
	}
	waitFor(t, "the node to link the gateway", func() bool { return n.GatewayLinks() == 1 })

	lc := login.DefaultConfig()
	lc.Redis, lc.Cluster, lc.Members = rdb, cluster, n
	lc.StatefulTypes = []common.NodeType{common.FirstGameType}
	lc.Checker = login.CheckerFunc(func(context.Context, string, string) error { return nil })
	svc, err := login.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := svc.Login(context.Background(), "player-1", "pw")
	if err != nil {
		t.Fatal(err)
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
	if code := readCoded(t, r, wire.KindClientLoginAck); code != wire.CodeOK {
		t.Fatalf("login ack %s", wire.CodeText(code))
	}

	cancel()
	if code := readCoded(t, r, wire.KindClientKick); code != wire.CodeShutdown {
		t.Errorf("kick code %s, want %s", wire.CodeText(code), wire.CodeText(wire.CodeShutdown))
	}
	select {
	case a := <-lost:
		if a != ticket.Account {
			t.Errorf("lose-account for %q", a)
		}
	case <-time.After(10 * time.Second):
		t.Error("the bound node never heard lose-account")
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nlogs:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	waitFor(t, "the gateway to leave the cluster", func() bool { _, ok := gatewayStatus(mgr); return !ok })

	out := logs.String()
	for _, s := range []string{secret, ticket.Token} {
		if strings.Contains(out, s) {
			t.Errorf("the log contains %q", s)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON log line: %q", line)
		}
	}
	for _, want := range []string{"starting gateway", "draining clients", "gateway stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// readCoded reads one frame of kind and returns its code.
func readCoded(t *testing.T, r *wire.Reader, kind wire.Kind) uint16 {
	t.Helper()
	k, p, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("reading %s: %v", kind, err)
	}
	if k != kind {
		t.Fatalf("got %s, want %s", k, kind)
	}
	code, _, err := wire.DecodeCoded(p)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestHelpAndVersionOnStdout: -h and -version are answers, not errors:
// they go to standard output with exit status 0, and need no secret.
func TestHelpAndVersionOnStdout(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{{"-h", "Usage of gateway:"}, {"-version", "gateway github.com/xserver/xserver@"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{tt.arg}, env(nil), &stdout, &stderr); code != service.ExitOK {
			t.Errorf("%s: exit %d, want %d", tt.arg, code, service.ExitOK)
		}
		if !strings.HasPrefix(stdout.String(), tt.want) || stderr.Len() != 0 {
			t.Errorf("%s: stdout %q (want it to start with %q), stderr %q", tt.arg, stdout.String(), tt.want, stderr.String())
		}
	}
}
