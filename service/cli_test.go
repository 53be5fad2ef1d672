package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

const secret = "s3cret-value"

func newFlags(c *Common) (*flag.FlagSet, *bytes.Buffer) {
	fs := flag.NewFlagSet("xtest", flag.ContinueOnError)
	out := new(bytes.Buffer)
	fs.SetOutput(out)
	c.RegisterFlags(fs)
	return fs, out
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantCluster string
		wantSecret  string
		wantRedis   string
	}{
		{"defaults", nil, nil, DefaultCluster, "", DefaultRedisAddr},
		{"env", nil, map[string]string{"XSERVER_CLUSTER": "c-env", "XSERVER_SECRET": secret, "XSERVER_REDIS": "r:1"}, "c-env", secret, "r:1"},
		{"flag beats env", []string{"-cluster", "c-flag", "-redis", "f:2"}, map[string]string{"XSERVER_CLUSTER": "c-env", "XSERVER_REDIS": "r:1"}, "c-flag", "", "f:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Common
			fs, _ := newFlags(&c)
			if err := Parse(fs, tt.args, env(tt.env)); err != nil {
				t.Fatal(err)
			}
			if c.Cluster != tt.wantCluster || c.Secret != tt.wantSecret || c.Redis.Addr != tt.wantRedis {
				t.Errorf("got cluster=%q secret=%q redis=%q", c.Cluster, c.Secret, c.Redis.Addr)
			}
		})
	}
}

func TestParseHelpListsEnv(t *testing.T) {
	var c Common
	fs, out := newFlags(&c)
	err := Parse(fs, []string{"-h"}, env(nil))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	if code := Exit(new(bytes.Buffer), "xtest", err); code != ExitOK {
		t.Errorf("Exit(-h) = %d, want %d", code, ExitOK)
	}
	for _, want := range []string{"-cluster", "XSERVER_CLUSTER", "-secret", "XSERVER_SECRET", "-log-level", "XSERVER_LOG_LEVEL",
		"-log-format", "XSERVER_LOG_FORMAT", "-redis", "XSERVER_REDIS", "XSERVER_REDIS_PASSWORD"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined: -nope"},
		{"bad value", []string{"-redis-db", "x"}, nil, `invalid value "x" for flag -redis-db`},
		{"bad env", nil, map[string]string{"XSERVER_REDIS_DB": "x"}, "XSERVER_REDIS_DB: invalid value for flag -redis-db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Common
			fs, out := newFlags(&c)
			err := Parse(fs, tt.args, env(tt.env))
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Parse = %v, want a UsageError", err)
			}
			if out.Len() != 0 {
				t.Errorf("Parse wrote to the flag set's output (standard output): %q", out)
			}
			var w bytes.Buffer
			if code := Exit(&w, "xtest", err); code != ExitUsage {
				t.Errorf("Exit = %d, want %d", code, ExitUsage)
			}
			if !strings.HasPrefix(w.String(), "xtest: ") || !strings.Contains(w.String(), tt.want) || !strings.Contains(w.String(), "Run xtest -h") {
				t.Errorf("Exit wrote %q, want the error %q and a hint to run -h", w.String(), tt.want)
			}
			if strings.Contains(w.String(), "Usage of") {
				t.Errorf("Exit wrote the whole usage on an error: %q", w.String())
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	var c Common
	fs, out := newFlags(&c)
	// XSERVER_VERSION (a node's published version in old deployments)
	// neither prints the version nor is silently ignored: it names the
	// replacement.
	err := Parse(fs, nil, env(map[string]string{"XSERVER_VERSION": "1.2", "XSERVER_SECRET": secret}))
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "XSERVER_NODE_VERSION") || out.Len() != 0 {
		t.Fatalf("XSERVER_VERSION: Parse = %v, output %q; want a UsageError naming XSERVER_NODE_VERSION", err, out)
	}
	fs, out = newFlags(&c)
	err = Parse(fs, []string{"-version"}, env(nil))
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("Parse(-version) = %v, want ErrVersion", err)
	}
	if !strings.HasPrefix(out.String(), "xtest ") || !strings.HasSuffix(out.String(), "\n") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("version output %q, want one line starting with the binary's name", out)
	}
	var w bytes.Buffer
	if code := Exit(&w, "xtest", err); code != ExitOK || w.Len() != 0 {
		t.Errorf("Exit(ErrVersion) = %d, wrote %q", code, w.String())
	}
	// -h lists -version, without an environment variable.
	fs, out = newFlags(&c)
	if err := Parse(fs, []string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  -version\n") || strings.Contains(out.String(), "XSERVER_VERSION") {
		t.Errorf("usage of -version:\n%s", out)
	}
}

func TestFormatVersion(t *testing.T) {
	main := debug.Module{Path: "github.com/xserver/xserver", Version: "v1.2.0"}
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.8", Main: main}, "github.com/xserver/xserver@v1.2.0 go1.26.8"},
		{"vcs", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: main.Path, Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4cc3312d8a1f0123456789"}, {Key: "vcs.time", Value: "2026-11-30T09:48:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"github.com/xserver/xserver@(devel) rev 4cc3312d8a1f+modified 2026-11-30T09:48:00Z go1.26.8"},
		{"a game on the framework", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "example.com/game", Version: "v0.1.0"},
			Deps: []*debug.Module{{Path: "github.com/redis/go-redis/v9", Version: "v9.0.0"}, {Path: main.Path, Version: "v0.0.0", Replace: &debug.Module{Path: "../xserver"}}}},
			"example.com/game@v0.1.0 go1.26.8 framework github.com/xserver/xserver@v0.0.0 => ../xserver"},
	}
	for _, tt := range tests {
		if got := formatVersion(&tt.info); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantOut  string
	}{
		{"nil", nil, ExitOK, ""},
		{"help", flag.ErrHelp, ExitOK, ""},
		{"runtime", errors.New("listen: address in use"), ExitFailure, "xtest: listen: address in use\n"},
		{"usage", Usagef("bad -x"), ExitUsage, "xtest: bad -x\nRun xtest -h"},
		{"wrapped usage", Usage(errors.New("bad -y")), ExitUsage, "xtest: bad -y\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			if code := Exit(&w, "xtest", tt.err); code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			if !strings.HasPrefix(w.String(), tt.wantOut) || (tt.wantOut == "" && w.Len() > 0) {
				t.Errorf("output %q, want prefix %q", w.String(), tt.wantOut)
			}
		})
	}
	if Usage(nil) != nil {
		t.Error("Usage(nil) != nil")
	}
	u := Usagef("x")
	if Usage(u) != u {
		t.Error("Usage wrapped a UsageError twice")
	}
}

func TestCheck(t *testing.T) {
	good := func() Common {
		return Common{Cluster: "c", Secret: secret, LogLevel: "info", LogFormat: "text", Redis: DefaultRedisConfig()}
	}
	tests := []struct {
		name   string
		mutate func(*Common)
		want   string // "" = valid
	}{
		{"valid", func(*Common) {}, ""},
		{"json", func(c *Common) { c.LogFormat = "json"; c.LogLevel = "debug" }, ""},
		{"no secret", func(c *Common) { c.Secret = "" }, "XSERVER_SECRET"},
		{"no cluster", func(c *Common) { c.Cluster = "" }, "-cluster"},
		{"bad level", func(c *Common) { c.LogLevel = "loud" }, "-log-level"},
		{"bad format", func(c *Common) { c.LogFormat = "xml" }, "-log-format"},
		{"bad redis", func(c *Common) { c.Redis.Addr = "a:1,b:2" }, "-redis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mutate(&c)
			err := c.Check()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want a UsageError mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRequireSecret(t *testing.T) {
	if err := RequireSecret(secret); err != nil {
		t.Fatal(err)
	}
	err := RequireSecret("")
	if !errors.Is(err, ErrNoSecret) {
		t.Fatalf("RequireSecret(\"\") = %v, want ErrNoSecret", err)
	}
	var w bytes.Buffer
	if code := Exit(&w, "mgrserver", err); code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(w.String(), "-secret is required") || !strings.Contains(w.String(), "XSERVER_SECRET") {
		t.Errorf("message %q does not say how to set the secret", w.String())
	}
}

func TestNewLogger(t *testing.T) {
	var w bytes.Buffer
	l, err := NewLogger(&w, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	l.WithField("k", "v").Info("hidden")
	l.WithField("k", "v").Warn("shown")
	var rec map[string]any
	if err := json.Unmarshal(w.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", w.String(), err)
	}
	if rec["msg"] != "shown" || rec["k"] != "v" || rec["level"] != "warning" {
		t.Errorf("record %v", rec)
	}

	w.Reset()
	l, err = NewLogger(&w, "debug", "")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("text line")
	if !strings.Contains(w.String(), `level=debug msg="text line"`) {
		t.Errorf("text output %q", w.String())
	}
}

func TestRedisLogger(t *testing.T) {
	var w bytes.Buffer
	l, _ := NewLogger(&w, "info", "text")
	RedisLogger{Log: l}.Printf(context.Background(), "pool: %s\n", "noise")
	if w.Len() != 0 {
		t.Errorf("go-redis message logged above debug: %q", w.String())
	}
	l.SetLevel(logrus.DebugLevel)
	RedisLogger{Log: l}.Printf(context.Background(), "pool: %s\n", "noise")
	if !strings.Contains(w.String(), `level=debug msg="pool: noise"`) {
		t.Errorf("debug output %q", w.String())
	}
}

func TestNewRedisClient(t *testing.T) {
	l, _ := NewLogger(new(bytes.Buffer), "info", "text")
	rdb, err := NewRedisClient(RedisConfig{Addr: "127.0.0.1:1"}, l)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	c, ok := rdb.(*redis.Client)
	if !ok {
		t.Fatalf("client %T", rdb)
	}
	if !c.Options().ContextTimeoutEnabled {
		t.Error("context deadlines do not bound commands")
	}

	_, err = NewRedisClient(RedisConfig{Addr: ""}, l)
	var ue *UsageError
	if !errors.As(err, &ue) || !errors.Is(err, ErrRedisConfig) {
		t.Errorf("empty -redis: %v, want a UsageError wrapping ErrRedisConfig", err)
	}
}

type runOpts struct{ Common }

func TestRun(t *testing.T) {
	parse := func(args []string, getenv func(string) string, out io.Writer) (*runOpts, error) {
		if len(args) > 0 && args[0] == "bad" {
			return nil, Usagef("bad flag")
		}
		return &runOpts{Common{LogLevel: "info", LogFormat: "text"}}, nil
	}
	var served bool
	serve := func(ctx context.Context, o *runOpts, log *logrus.Logger) error {
		served = true
		if o.Cluster == "fail" {
			return errors.New("boom")
		}
		return nil
	}
	var out bytes.Buffer
	if code := Run(context.Background(), "x", nil, nil, io.Discard, &out, parse, serve); code != ExitOK || !served {
		t.Fatalf("ok run: %d %v", code, served)
	}
	served = false
	if code := Run(context.Background(), "x", []string{"bad"}, nil, io.Discard, &out, parse, serve); code != ExitUsage || served {
		t.Fatalf("bad flags: %d, served %v", code, served)
	}
	failing := func(args []string, getenv func(string) string, o io.Writer) (*runOpts, error) {
		r, _ := parse(args, getenv, o)
		r.Cluster = "fail"
		return r, nil
	}
	if code := Run(context.Background(), "x", nil, nil, io.Discard, &out, failing, serve); code != ExitFailure {
		t.Fatalf("failing serve: %d", code)
	}
}
