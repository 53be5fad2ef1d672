package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/xserver/xserver/internal/lease"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/mgrserver"
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
	for _, f := range []string{"cluster", "listen", "advertise", "secret", "lease-ttl", "campaign-interval",
		"redis-grace", "ping-interval", "ping-misses", "handshake-timeout", "max-frame", "max-conns",
		"queue-bytes", "admin", "log-level", "log-format", "redis", "redis-master", "redis-cluster",
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
	d := mgrserver.DefaultConfig()
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c mgrserver.Config)
	}{
		{"defaults", nil, map[string]string{"XSERVER_SECRET": secret}, func(t *testing.T, c mgrserver.Config) {
			if c.Listen != "0.0.0.0:7300" || c.Cluster != "xserver" || c.Admin != "" || c.Advertise != "" {
				t.Errorf("addresses %+v", c)
			}
			if c.LeaseTTL != d.LeaseTTL || c.CampaignInterval != d.CampaignInterval || c.RedisGrace != d.RedisGrace ||
				c.PingInterval != d.PingInterval || c.PingMisses != d.PingMisses || c.HandshakeTimeout != d.HandshakeTimeout ||
				c.MaxFrame != d.MaxFrame || c.MaxConns != d.MaxConns || c.QueueBytes != d.QueueBytes {
				t.Errorf("defaults differ from the library's: %+v", c)
			}
			if c.Secret != secret {
				t.Error("secret not taken from XSERVER_SECRET")
			}
		}},
		{"flags and env", []string{
			"-secret", "flag-secret", "-listen", "127.0.0.1:0", "-advertise", "mgr:7300", "-admin", ":7301",
			"-lease-ttl", "5s", "-campaign-interval", "50ms", "-redis-grace", "0s", "-ping-interval", "500ms",
			"-ping-misses", "4", "-handshake-timeout", "2s", "-max-frame", "4096", "-max-conns", "10",
		}, map[string]string{"XSERVER_SECRET": secret, "XSERVER_QUEUE_BYTES": "1024", "XSERVER_CLUSTER": "c2"}, func(t *testing.T, c mgrserver.Config) {
			want := mgrserver.Config{
				Cluster: "c2", Secret: "flag-secret", Listen: "127.0.0.1:0", Advertise: "mgr:7300", Admin: ":7301",
				LeaseTTL: 5 * time.Second, CampaignInterval: 50 * time.Millisecond, RedisGrace: 0,
				PingInterval: 500 * time.Millisecond, PingMisses: 4, HandshakeTimeout: 2 * time.Second,
				MaxFrame: 4096, MaxConns: 10, QueueBytes: 1024, EventDelay: d.EventDelay,
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

func TestBadConfigExits2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", nil, nil, "-secret is required"},
		{"empty secret in env", nil, map[string]string{"XSERVER_SECRET": ""}, "-secret is required"},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"bad env", nil, map[string]string{"XSERVER_SECRET": secret, "XSERVER_LEASE_TTL": "soon"}, "XSERVER_LEASE_TTL"},
		{"zero ttl", []string{"-lease-ttl", "0s"}, map[string]string{"XSERVER_SECRET": secret}, "-lease-ttl"},
		{"negative misses", []string{"-ping-misses", "-1"}, map[string]string{"XSERVER_SECRET": secret}, "-ping-misses"},
		{"campaign beyond ttl", []string{"-campaign-interval", "5s"}, map[string]string{"XSERVER_SECRET": secret}, "campaign interval"},
		{"bad log level", []string{"-log-level", "chatty"}, map[string]string{"XSERVER_SECRET": secret}, "-log-level"},
		{"bad redis", []string{"-redis", "nohost"}, map[string]string{"XSERVER_SECRET": secret}, "-redis"},
		{"stray argument", []string{"extra"}, map[string]string{"XSERVER_SECRET": secret}, "unexpected arguments"},
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

// TestRunLeadsAndReleasesOnSignal runs the binary's main logic against a
// real Redis: it takes the lease, and a cancelled context (what SIGTERM
// does) releases it and returns 0. The secret never reaches the log.
func TestRunLeadsAndReleasesOnSignal(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testkit.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-log-level", "debug",
			"-log-format", "json", "-cluster", "cmdtest"},
			env(map[string]string{"XSERVER_SECRET": secret, "XSERVER_REDIS": rs.Addr()}), io.Discard, &logs)
	}()

	deadline := time.Now().Add(10 * time.Second)
	var rec lease.Record
	for {
		r, err := lease.Read(context.Background(), rdb, "cmdtest")
		if err == nil {
			rec = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader published: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(rec.Addr, "127.0.0.1:") {
		t.Errorf("leader address %q", rec.Addr)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\nlogs:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	leaseKey := lease.KeysFor("cmdtest").Leader
	if n, err := rdb.Exists(context.Background(), leaseKey).Result(); err != nil || n != 0 {
		t.Errorf("lease key still present after graceful stop (exists=%d, %v)", n, err)
	}

	out := logs.String()
	if strings.Contains(out, secret) {
		t.Error("the log contains the secret")
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON log line: %q", line)
		}
	}
	for _, want := range []string{"starting mgrserver", "mgrserver stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestHelpAndVersionOnStdout: -h and -version are answers, not errors:
// they go to standard output with exit status 0, and need no secret.
func TestHelpAndVersionOnStdout(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{{"-h", "Usage of mgrserver:"}, {"-version", "mgrserver github.com/xserver/xserver@"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{tt.arg}, env(nil), &stdout, &stderr); code != service.ExitOK {
			t.Errorf("%s: exit %d, want %d", tt.arg, code, service.ExitOK)
		}
		if !strings.HasPrefix(stdout.String(), tt.want) || stderr.Len() != 0 {
			t.Errorf("%s: stdout %q (want it to start with %q), stderr %q", tt.arg, stdout.String(), tt.want, stderr.String())
		}
	}
}
