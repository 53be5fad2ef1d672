package redisconf

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const secret = "s3cret"

func TestOptions(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		check func(t *testing.T, o *redis.UniversalOptions)
	}{
		{
			name: "default",
			cfg:  DefaultConfig(),
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "127.0.0.1:6379")
				if o.IsClusterMode || o.MasterName != "" || o.Password != "" || o.DB != 0 || o.TLSConfig != nil {
					t.Errorf("unexpected options %+v", o)
				}
			},
		},
		{
			name: "host:port with password and db",
			cfg:  Config{Addr: "redis.local:6380", Password: secret, DB: 3},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "redis.local:6380")
				if o.Password != secret || o.DB != 3 {
					t.Errorf("password/db = %q/%d", o.Password, o.DB)
				}
			},
		},
		{
			name: "redis URL",
			cfg:  Config{Addr: "redis://app:" + secret + "@10.0.0.5:7000/4?dial_timeout=3s&read_timeout=2&pool_size=7&max_retries=5&client_name=gw"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "10.0.0.5:7000")
				if o.Username != "app" || o.Password != secret || o.DB != 4 {
					t.Errorf("user/password/db = %q/%q/%d", o.Username, o.Password, o.DB)
				}
				if o.DialTimeout != 3*time.Second || o.ReadTimeout != 2*time.Second || o.PoolSize != 7 || o.MaxRetries != 5 || o.ClientName != "gw" {
					t.Errorf("query options not mapped: %+v", o)
				}
				if o.TLSConfig != nil {
					t.Error("redis:// got TLS")
				}
			},
		},
		{
			name: "URL without port gets 6379",
			cfg:  Config{Addr: "redis://cache"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "cache:6379")
			},
		},
		{
			name: "URL password equal to -redis-password",
			cfg:  Config{Addr: "redis://:" + secret + "@h:1", Password: secret},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.Password != secret {
					t.Errorf("password %q", o.Password)
				}
			},
		},
		{
			name: "URL db and -redis-db 0",
			cfg:  Config{Addr: "redis://h:1/5"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.DB != 5 {
					t.Errorf("db %d", o.DB)
				}
			},
		},
		{
			name: "-redis-db fills a URL without db",
			cfg:  Config{Addr: "redis://h:1", DB: 6},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.DB != 6 {
					t.Errorf("db %d", o.DB)
				}
			},
		},
		{
			name: "rediss single keeps server name",
			cfg:  Config{Addr: "rediss://cache.example.com:6380?skip_verify=true"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example.com" || !o.TLSConfig.InsecureSkipVerify {
					t.Errorf("TLS config %+v", o.TLSConfig)
				}
			},
		},
		{
			name: "cluster host list",
			cfg:  Config{Addr: "n1:7000, n2:7001 ,n3:7002,", Cluster: true, Password: secret},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "n1:7000", "n2:7001", "n3:7002")
				if !o.IsClusterMode || o.Password != secret {
					t.Errorf("cluster/password = %t/%q", o.IsClusterMode, o.Password)
				}
			},
		},
		{
			name: "single cluster seed",
			cfg:  Config{Addr: "n1:7000", Cluster: true},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "n1:7000")
				if !o.IsClusterMode {
					t.Error("not cluster mode")
				}
			},
		},
		{
			name: "cluster rediss URLs drop the per-host server name",
			cfg:  Config{Addr: "rediss://:" + secret + "@n1:7000,rediss://:" + secret + "@n2:7000", Cluster: true},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "n1:7000", "n2:7000")
				if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
					t.Errorf("TLS config %+v", o.TLSConfig)
				}
				if o.Password != secret {
					t.Errorf("password %q", o.Password)
				}
			},
		},
		{
			name: "sentinel",
			cfg:  Config{Addr: "s1:26379,s2:26379", MasterName: "mymaster", Password: secret, DB: 2},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "s1:26379", "s2:26379")
				if o.MasterName != "mymaster" || o.Password != secret || o.DB != 2 || o.IsClusterMode {
					t.Errorf("unexpected options %+v", o)
				}
			},
		},
		{
			name: "sentinel URL credentials are the sentinels'",
			cfg:  Config{Addr: "redis://sen:spw@s1:26379/1", MasterName: "m", Password: secret},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "s1:26379")
				if o.SentinelUsername != "sen" || o.SentinelPassword != "spw" {
					t.Errorf("sentinel credentials %q/%q", o.SentinelUsername, o.SentinelPassword)
				}
				if o.Password != secret || o.Username != "" || o.DB != 1 {
					t.Errorf("master credentials/db %q/%q/%d", o.Username, o.Password, o.DB)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.cfg.Options()
			if err != nil {
				t.Fatalf("Options: %v", err)
			}
			if !o.ContextTimeoutEnabled {
				t.Error("ContextTimeoutEnabled is off: context deadlines would not bound commands")
			}
			tt.check(t, o)
		})
	}
}

func wantAddrs(t *testing.T, o *redis.UniversalOptions, want ...string) {
	t.Helper()
	if !slices.Equal(o.Addrs, want) {
		t.Errorf("Addrs = %q, want %q", o.Addrs, want)
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{Addr: " , "}, "empty"},
		{"cluster and master", Config{Addr: "h:1", Cluster: true, MasterName: "m"}, "exclude"},
		{"list without mode", Config{Addr: "h:1,h:2"}, "-redis-cluster or -redis-master"},
		{"negative db", Config{Addr: "h:1", DB: -1}, "negative"},
		{"cluster with db", Config{Addr: "h:1", Cluster: true, DB: 1}, "only database 0"},
		{"cluster with URL db", Config{Addr: "redis://h:1/2", Cluster: true}, "only database 0"},
		{"db conflict", Config{Addr: "redis://h:1/2", DB: 3}, "differs"},
		{"password conflict", Config{Addr: "redis://:" + secret + "@h:1", Password: "other"}, "differs"},
		{"mixed entries", Config{Addr: "redis://h:1,h:2", Cluster: true}, "mixes"},
		{"missing port", Config{Addr: "localhost"}, "host:port"},
		{"bad port", Config{Addr: "h:http"}, "bad port"},
		{"port out of range", Config{Addr: "h:70000"}, "bad port"},
		{"unix URL", Config{Addr: "unix:///tmp/redis.sock"}, "scheme"},
		{"http URL", Config{Addr: "http://:" + secret + "@h:1"}, "scheme"},
		{"unparsable URL", Config{Addr: "redis://:" + secret + "@h:port"}, "not a valid URL"},
		{"bad URL db", Config{Addr: "redis://:" + secret + "@h:1/x"}, "database number"},
		{"unknown URL option", Config{Addr: "redis://:" + secret + "@h:1?nope=1"}, "unexpected option"},
		{"URLs disagree", Config{Addr: "redis://h:1/0,redis://:" + secret + "@h:2/0", Cluster: true}, "differ"},
		{"URLs disagree on TLS", Config{Addr: "redis://h:1,rediss://h:2", Cluster: true}, "differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Options()
			if err == nil {
				t.Fatal("Options accepted the config")
			}
			msg := err.Error()
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(msg, "redisconf:") {
				t.Errorf("error %q does not wrap ErrInvalid / lacks the prefix", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q leaks the password", msg)
			}
			if _, err := tt.cfg.NewClient(); !errors.Is(err, ErrInvalid) {
				t.Errorf("NewClient error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestNewClientKind(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"single", Config{Addr: "127.0.0.1:1"}, "*redis.Client"},
		{"cluster", Config{Addr: "127.0.0.1:1,127.0.0.1:2", Cluster: true}, "*redis.ClusterClient"},
		{"sentinel", Config{Addr: "127.0.0.1:1", MasterName: "m"}, "*redis.Client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got string
			switch c.(type) {
			case *redis.Client:
				got = "*redis.Client"
			case *redis.ClusterClient:
				got = "*redis.ClusterClient"
			default:
				got = "other"
			}
			if got != tt.want {
				t.Errorf("client is %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want Config
	}{
		{"defaults", nil, Config{Addr: DefaultAddr}},
		{
			"all set",
			[]string{"-redis", "s1:26379,s2:26379", "-redis-master", "mm", "-redis-password", secret, "-redis-db", "2"},
			Config{Addr: "s1:26379,s2:26379", MasterName: "mm", Password: secret, DB: 2},
		},
		{"cluster", []string{"-redis=a:1,b:2", "-redis-cluster"}, Config{Addr: "a:1,b:2", Cluster: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var c Config
			c.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if c != tt.want {
				t.Errorf("got %+v, want %+v", c, tt.want)
			}
		})
	}
}

func TestStringRedacts(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "h:1", Password: secret}, `redis=h:1 master="" cluster=false password="xxxxx" db=0`},
		{Config{Addr: "redis://u:" + secret + "@h:1/2,redis://u:" + secret + "@h:2/2", Cluster: true}, "redis=redis://u:xxxxx@h:1/2,redis://u:xxxxx@h:2/2 "},
		{Config{Addr: "redis://:" + secret + "@h:port"}, "redis=<unparsable URL> "},
	}
	for _, tt := range tests {
		s := tt.cfg.String()
		if strings.Contains(s, secret) {
			t.Errorf("String() = %q leaks the password", s)
		}
		if !strings.Contains(s, tt.want) {
			t.Errorf("String() = %q, want it to contain %q", s, tt.want)
		}
	}
}
