package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"reflect"
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

const (
	secret   = "login-test-secret"
	password = "test-password-42"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"cluster", "secret", "listen", "stateful", "token-ttl", "affinity", "password", "max-conns",
		"log-level", "log-format", "redis", "redis-master", "redis-cluster", "redis-password", "redis-db"} {
		envName := "XSERVER_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		if !strings.Contains(out.String(), "  -"+f+" ") && !strings.Contains(out.String(), "  -"+f+"\n") {
			t.Errorf("usage lacks -%s", f)
		}
		if !strings.Contains(out.String(), "(env "+envName) {
			t.Errorf("usage lacks %s", envName)
		}
	}
	if !strings.Contains(out.String(), "DEMO ONLY") {
		t.Error("usage does not say -password is a demo")
	}
}

func TestParseTypes(t *testing.T) {
	tests := []struct {
		in      string
		want    []common.NodeType
		wantErr string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"4", []common.NodeType{4}, ""},
		{"4,5, 9", []common.NodeType{4, 5, 9}, ""},
		{"3", nil, "reserved"},
		{"4,4", nil, "twice"},
		{"4,", nil, "not a node type"},
		{"lobby", nil, "not a node type"},
		{"4294967296", nil, "not a node type"},
	}
	for _, tt := range tests {
		got, err := parseTypes(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseTypes(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseTypes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, env(map[string]string{"XSERVER_SECRET": secret}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:8080" || !reflect.DeepEqual(o.types, []common.NodeType{4}) || o.tokenTTL != login.DefaultTokenTTL ||
		o.affinity != login.DefaultAffinity || o.password != "xserver" {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseFlags([]string{"-stateful", "4,6", "-token-ttl", "10s", "-gray", "type=4,version=v2,share=10%"},
		env(map[string]string{"XSERVER_SECRET": secret, "XSERVER_PASSWORD": password, "XSERVER_STATEFUL": "9", "XSERVER_AFFINITY": "1m"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.types, []common.NodeType{4, 6}) || o.tokenTTL != 10*time.Second || o.affinity != time.Minute || o.password != password ||
		len(o.rollouts) != 1 || o.rollouts[0].Version != "v2" || o.rollouts[0].Share != 0.1 {
		t.Errorf("flags and env %+v", o)
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
		{"bad listen", []string{"-listen", "8080"}, withSecret, "-listen"},
		{"reserved stateful", []string{"-stateful", "2"}, withSecret, "-stateful"},
		{"bad gray", []string{"-gray", "type=4,version=v2,share=200%"}, withSecret, "-gray"},
		{"zero ttl", []string{"-token-ttl", "0s"}, withSecret, "-token-ttl"},
		{"negative affinity", []string{"-affinity", "-1m"}, withSecret, "-affinity"},
		{"empty password", []string{"-password", ""}, withSecret, "-password is empty"},
		{"zero max conns", []string{"-max-conns", "0"}, withSecret, "-max-conns"},
		{"bad env", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_TOKEN_TTL": "soon"}, "XSERVER_TOKEN_TTL"},
		{"stray argument", []string{"extra"}, withSecret, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tt.args, env(tt.env), io.Discard, &stderr); code != service.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, service.ExitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, &stderr)
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

// post sends body to /login and returns the status and the raw reply.
func post(t *testing.T, addr, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS header")
	}
	return resp.StatusCode, b
}

func credentials(account, pw string) string {
	b, _ := json.Marshal(map[string]string{"account": account, "password": pw})
	return string(b)
}

// TestLoginService runs the service against a real Redis, an mgrserver,
// a gateway and a stateful game node: no instance is 503, a good login is
// 200 with a ticket the gateway accepts, a bad password 401, bad JSON 400,
// and GET / serves the browser client.
// The password and the token never reach the log.
func TestLoginService(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const cluster = "logintest"
	var logs testkit.SyncBuffer
	log := logrus.New()
	log.SetOutput(&logs)

	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret, mcfg.Logger = rdb, cluster, secret, log
	testkit.StartMgrserver(t, mcfg)

	gcfg := gateway.DefaultConfig()
	gcfg.Redis, gcfg.Cluster, gcfg.Secret, gcfg.Logger = rdb, cluster, secret, log
	gcfg.InnerIP = "127.0.0.1"
	gw := testkit.StartGateway(t, gcfg)

	lcfg := login.DefaultConfig()
	lcfg.Redis, lcfg.Cluster, lcfg.Checker = rdb, cluster, newChecker(password)
	lcfg.StatefulTypes = []common.NodeType{common.FirstGameType}
	a, err := newApp(node.Config{Redis: rdb, Cluster: cluster, Secret: secret, Type: common.Login, InnerIP: "127.0.0.1", Logger: log}, lcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	waitFor(t, "the login service to see the gateway", func() bool { return len(a.n.GetNodeList(common.Gateway)) == 1 })

	good := credentials("alice", password)
	code, b := post(t, a.addr, good)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), `"error"`) {
		t.Errorf("without a type-4 instance: %d %s, want 503", code, b)
	}

	ncfg := node.DefaultConfig()
	ncfg.Redis, ncfg.Cluster, ncfg.Secret, ncfg.Type, ncfg.InnerIP, ncfg.Logger = rdb, cluster, secret, common.FirstGameType, "127.0.0.1", log
	game, err := node.New(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	game.EnableMessageRelay(true)
	if err := game.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer game.Close()
	waitFor(t, "the login service to see the game node", func() bool { return a.n.HaveNode(game.GetID()) })

	code, b = post(t, a.addr, good)
	if code != http.StatusOK {
		t.Fatalf("good login: %d %s", code, b)
	}
	var ticket login.Ticket
	if err := json.Unmarshal(b, &ticket); err != nil {
		t.Fatal(err)
	}
	if ticket.Account != "alice" || ticket.Gateway != gw.Addrs().Client || ticket.GatewayID != gw.Node().GetID() ||
		ticket.Bindings[common.FirstGameType] != game.GetID() || ticket.Token == "" {
		t.Errorf("ticket %+v", ticket)
	}
	if code := gatewayLogin(t, ticket); code != wire.CodeOK {
		t.Errorf("gateway login ack %s", wire.CodeText(code))
	}

	for _, tt := range []struct {
		name, body string
		want       int
	}{
		{"bad password", credentials("alice", "guess"), http.StatusUnauthorized},
		{"bad JSON", `{"account": "alice", "password": `, http.StatusBadRequest},
		{"bad account", credentials("a}b", password), http.StatusBadRequest},
	} {
		if code, b := post(t, a.addr, tt.body); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, b, tt.want)
		}
	}

	page, ctype := getPage(t, "http://"+a.addr+"/")
	if !strings.HasPrefix(ctype, "text/html") || !strings.Contains(page, `<form id="login-form"`) {
		t.Errorf("GET /: %s %.100q, want the browser client", ctype, page)
	}

	resp, err := http.Get("http://" + a.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz %d", resp.StatusCode)
	}

	out := logs.String()
	for _, s := range []string{password, ticket.Token, secret} {
		if strings.Contains(out, s) {
			t.Errorf("the log holds %q", s)
		}
	}
	for _, want := range []string{`msg="login ok" account=alice`, `msg="login rejected"`, `msg="login failed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// getPage GETs url and returns the body and its Content-Type; any status
// but 200 fails the test.
func getPage(t *testing.T, url string) (string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b), resp.Header.Get("Content-Type")
}

// gatewayLogin presents the ticket to its gateway over TCP and returns
// the login ack's code.
func gatewayLogin(t *testing.T, tk login.Ticket) uint16 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tk.Gateway, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(wire.AppendLogin(nil, tk.Account, tk.Token)); err != nil {
		t.Fatal(err)
	}
	k, p, err := wire.NewReader(conn, 1<<16, 0).ReadFrame()
	if err != nil || k != wire.KindClientLoginAck {
		t.Fatalf("gateway: %s %v, want a login ack", k, err)
	}
	code, _, err := wire.DecodeCoded(p)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestRunServesAndStopsOnSignal runs the binary's main logic: it logs
// where it listens, answers /healthz once registered, and a cancelled
// context (what SIGTERM does) stops it with status 0.
func TestRunServesAndStopsOnSignal(t *testing.T) {
	rs := redistest.Start(t)
	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret = rs.Client(t), "loginrun", secret
	mgr, err := mgrserver.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testkit.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-log-format", "json", "-cluster", "loginrun"},
			env(map[string]string{"XSERVER_SECRET": secret, "XSERVER_REDIS": rs.Addr(), "XSERVER_PASSWORD": password}), io.Discard, &logs)
	}()
	var addr string
	waitFor(t, "the listening line", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(m["msg"].(string), "login service listening") {
				addr, _ = m["addr"].(string)
				return true
			}
		}
		return false
	})
	waitFor(t, "/healthz 200", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nlogs:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	if strings.Contains(logs.String(), password) || strings.Contains(logs.String(), secret) {
		t.Error("the log holds the password or the secret")
	}
}

// The HTTP listener serves at most -max-conns connections at once: one
// more waits until a connection closes.
func TestHTTPConnectionLimit(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	lcfg := login.DefaultConfig()
	lcfg.Redis, lcfg.Cluster, lcfg.Checker = rdb, "limittest", newChecker(password)
	a, err := newApp(node.Config{Redis: rdb, Cluster: "limittest", Secret: secret, Type: common.Login, InnerIP: "127.0.0.1", Logger: log}, lcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	a.maxConns = 2
	if err := a.start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	var held []net.Conn
	for i := 0; i < a.maxConns; i++ {
		c, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	over := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := over.Get("http://" + a.addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a request past -max-conns was served")
	}
	held[0].Close()
	ok := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := ok.Get("http://" + a.addr + "/healthz")
	if err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
	resp.Body.Close()
}
