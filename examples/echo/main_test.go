package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/internal/cli"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
)

const secret = "echo-test-secret"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  string
		wantType uint
	}{
		{"defaults", nil, map[string]string{"XSERVER_SECRET": secret}, "", 4},
		{"env type", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_TYPE": "5"}, "", 5},
		{"flag beats env", []string{"-type", "7"}, map[string]string{"XSERVER_SECRET": secret, "XSERVER_TYPE": "5"}, "", 7},
		{"no secret", nil, nil, "-secret is required", 0},
		{"reserved type", []string{"-type", "3"}, map[string]string{"XSERVER_SECRET": secret}, "-type 3", 0},
		{"type too big", []string{"-type", "4294967296"}, map[string]string{"XSERVER_SECRET": secret}, "-type", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if code := cli.Exit(io.Discard, name, err); code != cli.ExitUsage {
					t.Errorf("exit %d, want %d", code, cli.ExitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.typ != tt.wantType {
				t.Errorf("type %d, want %d", o.typ, tt.wantType)
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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
	var logs syncBuffer
	log := logrus.New()
	log.SetOutput(&logs)

	newNode := func(typ common.NodeType) *app {
		a, err := newApp(node.Config{Redis: rdb, Cluster: "echotest", Secret: secret, Type: typ, Logger: log}, log)
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
	mgr, err := mgrserver.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
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
