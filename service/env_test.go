package service

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	tests := []struct {
		prefix, flag, want string
	}{
		{"XSERVER", "lease-ttl", "XSERVER_LEASE_TTL"},
		{"xserver", "redis", "XSERVER_REDIS"},
		{"XSERVER", "admin.addr", "XSERVER_ADMIN_ADDR"},
		{"", "redis-db", "REDIS_DB"},
		{"MY-APP", "x2", "MY_APP_X2"},
	}
	for _, tt := range tests {
		if got := envName(tt.prefix, tt.flag); got != tt.want {
			t.Errorf("envName(%q, %q) = %q, want %q", tt.prefix, tt.flag, got, tt.want)
		}
	}
}

// vals holds the flag targets of one test flag set.
type vals struct {
	addr string
	ttl  time.Duration
	n    int
	on   bool
}

func newSet(v *vals) *flag.FlagSet {
	fs := flag.NewFlagSet("xserver", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	fs.StringVar(&v.addr, "addr", "127.0.0.1:6379", "redis address")
	fs.DurationVar(&v.ttl, "lease-ttl", 10*time.Second, "lease lifetime")
	fs.IntVar(&v.n, "n", 3, "count")
	fs.BoolVar(&v.on, "on", false, "switch")
	return fs
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    vals
		wantErr string // substring; "" means no error
	}{
		{
			name: "defaults",
			want: vals{addr: "127.0.0.1:6379", ttl: 10 * time.Second, n: 3},
		},
		{
			name: "env wins over default",
			env:  map[string]string{"XSERVER_ADDR": "redis:6379", "XSERVER_LEASE_TTL": "3s", "XSERVER_N": "7", "XSERVER_ON": "true"},
			want: vals{addr: "redis:6379", ttl: 3 * time.Second, n: 7, on: true},
		},
		{
			name: "flag wins over env",
			args: []string{"-addr", "flag:1", "-lease-ttl=1m", "-on=false"},
			env:  map[string]string{"XSERVER_ADDR": "env:2", "XSERVER_LEASE_TTL": "3s", "XSERVER_ON": "true", "XSERVER_N": "9"},
			want: vals{addr: "flag:1", ttl: time.Minute, n: 9},
		},
		{
			name: "empty env value is ignored",
			env:  map[string]string{"XSERVER_N": ""},
			want: vals{addr: "127.0.0.1:6379", ttl: 10 * time.Second, n: 3},
		},
		{
			name: "other prefix is ignored",
			env:  map[string]string{"OTHER_N": "5", "N": "6"},
			want: vals{addr: "127.0.0.1:6379", ttl: 10 * time.Second, n: 3},
		},
		{
			name:    "bad env duration names the variable",
			env:     map[string]string{"XSERVER_LEASE_TTL": "soon"},
			wantErr: "XSERVER_LEASE_TTL",
		},
		{
			name:    "bad env int names the variable",
			env:     map[string]string{"XSERVER_N": "three"},
			wantErr: "XSERVER_N",
		},
		{
			name:    "bad env value is not checked when flag is given",
			args:    []string{"-n", "4"},
			env:     map[string]string{"XSERVER_N": "three"},
			want:    vals{addr: "127.0.0.1:6379", ttl: 10 * time.Second, n: 4},
			wantErr: "",
		},
		{
			name:    "bad flag is the flag package's error",
			args:    []string{"-n", "x"},
			wantErr: "invalid value",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got vals
			fs := newSet(&got)
			err := parseEnv(fs, "XSERVER", tt.args, mapEnv(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseEnv error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseEnv: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseBadEnvIsErrBadEnv(t *testing.T) {
	var v vals
	err := parseEnv(newSet(&v), "XSERVER", nil, mapEnv(map[string]string{"XSERVER_N": "secret-ish"}))
	if !errors.Is(err, ErrBadEnv) {
		t.Fatalf("error %v does not wrap ErrBadEnv", err)
	}
	if strings.Contains(err.Error(), "secret-ish") {
		t.Errorf("error %q leaks the variable's value", err)
	}
}

func TestParseLeavesPositionalArgs(t *testing.T) {
	var v vals
	fs := newSet(&v)
	if err := parseEnv(fs, "XSERVER", []string{"-n", "1", "a", "b"}, mapEnv(nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fs.Args(), ","); got != "a,b" {
		t.Errorf("Args() = %q, want a,b", got)
	}
}

func TestHelpListsEnvNames(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var v vals
			fs := newSet(&v)
			var out bytes.Buffer
			fs.SetOutput(&out)
			err := parseEnv(fs, "XSERVER", []string{arg}, mapEnv(map[string]string{"XSERVER_N": "bad"}))
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseEnv(%s) = %v, want flag.ErrHelp", arg, err)
			}
			text := out.String()
			for _, want := range []string{
				"Usage of xserver:",
				"-addr string", "redis address", `env XSERVER_ADDR, default "127.0.0.1:6379"`,
				"-lease-ttl duration", "lease lifetime", "env XSERVER_LEASE_TTL, default 10s",
				"-n int", "env XSERVER_N, default 3",
				"-on", "env XSERVER_ON, default false",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("usage lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

func TestUnknownFlagPrintsUsage(t *testing.T) {
	var v vals
	fs := newSet(&v)
	var out bytes.Buffer
	fs.SetOutput(&out)
	if err := parseEnv(fs, "XSERVER", []string{"-nope"}, mapEnv(nil)); err == nil {
		t.Fatal("parseEnv accepted an unknown flag")
	}
	if !strings.Contains(out.String(), "XSERVER_LEASE_TTL") {
		t.Errorf("usage after a bad flag lacks env names:\n%s", out.String())
	}
}
