package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/service"
)

// Every test must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "match-test-secret"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		version string
	}{
		{"defaults", nil, map[string]string{"XSERVER_SECRET": secret}, "", ""},
		{"version from env", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_NODE_VERSION": "1.2"}, "", "1.2"},
		{"flag beats env", []string{"-node-version", "2"}, map[string]string{"XSERVER_SECRET": secret, "XSERVER_NODE_VERSION": "1"}, "", "2"},
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
			if o.version != tt.version {
				t.Errorf("version %q, want %q", o.version, tt.version)
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdmin: /healthz is 503 until an mgrserver exists, then 200; /metrics
// has the matchmaker's figures. Matchmaking itself is tested with real
// players in examples/lobby.
func TestAdmin(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := logrus.New()
	log.SetOutput(io.Discard)

	a, err := newApp(node.Config{Redis: rdb, Cluster: "matchtest", Secret: secret, InnerIP: "127.0.0.1", Logger: log}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	base := "http://" + a.adminAddr
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz without mgrserver = %d %q, want 503", code, body)
	}

	mcfg := mgrserver.DefaultConfig()
	mcfg.Redis, mcfg.Cluster, mcfg.Secret, mcfg.Logger = rdb, "matchtest", secret, log
	testkit.StartMgrserver(t, mcfg)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(t, base+"/healthz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for /healthz 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, body := get(t, base+"/metrics")
	for _, want := range []string{"xserver_match_queued 0", "xserver_match_matches_total 0", "xserver_node_members 1",
		"xserver_leader_epoch ", "xserver_redis_last_error_age_seconds ", "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	a.close() // safe twice: the deferred one is a no-op
}
