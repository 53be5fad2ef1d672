package service

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisSecret = "s3cret"

func TestOptions(t *testing.T) {
	tests := []struct {
		name  string
		cfg   RedisConfig
		check func(t *testing.T, o *redis.UniversalOptions)
	}{
		{
			name: "default",
			cfg:  DefaultRedisConfig(),
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "127.0.0.1:6379")
				if o.IsClusterMode || o.MasterName != "" || o.Password != "" || o.DB != 0 || o.TLSConfig != nil {
					t.Errorf("unexpected options %+v", o)
				}
			},
		},
		{
			name: "host:port with password and db",
			cfg:  RedisConfig{Addr: "redis.local:6380", Password: redisSecret, DB: 3},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "redis.local:6380")
				if o.Password != redisSecret || o.DB != 3 {
					t.Errorf("password/db = %q/%d", o.Password, o.DB)
				}
			},
		},
		{
			name: "redis URL",
			cfg:  RedisConfig{Addr: "redis://app:" + redisSecret + "@10.0.0.5:7000/4?dial_timeout=3s&read_timeout=2&pool_size=7&max_retries=5&client_name=gw"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "10.0.0.5:7000")
				if o.Username != "app" || o.Password != redisSecret || o.DB != 4 {
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
			cfg:  RedisConfig{Addr: "redis://cache"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "cache:6379")
			},
		},
		{
			name: "URL password equal to -redis-password",
			cfg:  RedisConfig{Addr: "redis://:" + redisSecret + "@h:1", Password: redisSecret},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.Password != redisSecret {
					t.Errorf("password %q", o.Password)
				}
			},
		},
		{
			name: "URL db and -redis-db 0",
			cfg:  RedisConfig{Addr: "redis://h:1/5"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.DB != 5 {
					t.Errorf("db %d", o.DB)
				}
			},
		},
		{
			name: "-redis-db fills a URL without db",
			cfg:  RedisConfig{Addr: "redis://h:1", DB: 6},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.DB != 6 {
					t.Errorf("db %d", o.DB)
				}
			},
		},
		{
			name: "rediss single keeps server name",
			cfg:  RedisConfig{Addr: "rediss://cache.example.com:6380?skip_verify=true"},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example.com" || !o.TLSConfig.InsecureSkipVerify {
					t.Errorf("TLS config %+v", o.TLSConfig)
				}
			},
		},
		{
			name: "cluster host list",
			cfg:  RedisConfig{Addr: "n1:7000, n2:7001 ,n3:7002,", Cluster: true, Password: redisSecret},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "n1:7000", "n2:7001", "n3:7002")
				if !o.IsClusterMode || o.Password != redisSecret {
					t.Errorf("cluster/password = %t/%q", o.IsClusterMode, o.Password)
				}
			},
		},
		{
			name: "single cluster seed",
			cfg:  RedisConfig{Addr: "n1:7000", Cluster: true},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "n1:7000")
				if !o.IsClusterMode {
					t.Error("not cluster mode")
				}
			},
		},
		{
			name: "cluster rediss URLs drop the per-host server name",
			cfg:  RedisConfig{Addr: "rediss://:" + redisSecret + "@n1:7000,rediss://:" + redisSecret + "@n2:7000", Cluster: true},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "n1:7000", "n2:7000")
				if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
					t.Errorf("TLS config %+v", o.TLSConfig)
				}
				if o.Password != redisSecret {
					t.Errorf("password %q", o.Password)
				}
			},
		},
		{
			name: "sentinel",
			cfg:  RedisConfig{Addr: "s1:26379,s2:26379", MasterName: "mymaster", Password: redisSecret, DB: 2},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "s1:26379", "s2:26379")
				if o.MasterName != "mymaster" || o.Password != redisSecret || o.DB != 2 || o.IsClusterMode {
					t.Errorf("unexpected options %+v", o)
				}
			},
		},
		{
			name: "sentinel URL credentials are the sentinels'",
			cfg:  RedisConfig{Addr: "redis://sen:spw@s1:26379/1", MasterName: "m", Password: redisSecret},
			check: func(t *testing.T, o *redis.UniversalOptions) {
				wantAddrs(t, o, "s1:26379")
				if o.SentinelUsername != "sen" || o.SentinelPassword != "spw" {
					t.Errorf("sentinel credentials %q/%q", o.SentinelUsername, o.SentinelPassword)
				}
				if o.Password != redisSecret || o.Username != "" || o.DB != 1 {
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
		cfg  RedisConfig
		want string
	}{
		{"empty", RedisConfig{Addr: " , "}, "empty"},
		{"cluster and master", RedisConfig{Addr: "h:1", Cluster: true, MasterName: "m"}, "exclude"},
		{"list without mode", RedisConfig{Addr: "h:1,h:2"}, "-redis-cluster or -redis-master"},
		{"negative db", RedisConfig{Addr: "h:1", DB: -1}, "negative"},
		{"cluster with db", RedisConfig{Addr: "h:1", Cluster: true, DB: 1}, "only database 0"},
		{"cluster with URL db", RedisConfig{Addr: "redis://h:1/2", Cluster: true}, "only database 0"},
		{"db conflict", RedisConfig{Addr: "redis://h:1/2", DB: 3}, "differs"},
		{"password conflict", RedisConfig{Addr: "redis://:" + redisSecret + "@h:1", Password: "other"}, "differs"},
		{"mixed entries", RedisConfig{Addr: "redis://h:1,h:2", Cluster: true}, "mixes"},
		{"missing port", RedisConfig{Addr: "localhost"}, "host:port"},
		{"bad port", RedisConfig{Addr: "h:http"}, "bad port"},
		{"port out of range", RedisConfig{Addr: "h:70000"}, "bad port"},
		{"unix URL", RedisConfig{Addr: "unix:///tmp/redis.sock"}, "scheme"},
		{"http URL", RedisConfig{Addr: "http://:" + redisSecret + "@h:1"}, "scheme"},
		{"unparsable URL", RedisConfig{Addr: "redis://:" + redisSecret + "@h:port"}, "not a valid URL"},
		{"bad URL db", RedisConfig{Addr: "redis://:" + redisSecret + "@h:1/x"}, "database number"},
		{"unknown URL option", RedisConfig{Addr: "redis://:" + redisSecret + "@h:1?nope=1"}, "unexpected option"},
		{"URLs disagree", RedisConfig{Addr: "redis://h:1/0,redis://:" + redisSecret + "@h:2/0", Cluster: true}, "differ"},
		{"URLs disagree on TLS", RedisConfig{Addr: "redis://h:1,rediss://h:2", Cluster: true}, "differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Options()
			if err == nil {
				t.Fatal("Options accepted the config")
			}
			msg := err.Error()
			if !errors.Is(err, ErrRedisConfig) || !strings.HasPrefix(msg, "service:") {
				t.Errorf("error %q does not wrap ErrRedisConfig / lacks the prefix", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if strings.Contains(msg, redisSecret) {
				t.Errorf("error %q leaks the password", msg)
			}
			if _, err := tt.cfg.NewClient(); !errors.Is(err, ErrRedisConfig) {
				t.Errorf("NewClient error = %v, want ErrRedisConfig", err)
			}
		})
	}
}

func TestNewClientKind(t *testing.T) {
	tests := []struct {
		name string
		cfg  RedisConfig
		want string
	}{
		{"single", RedisConfig{Addr: "127.0.0.1:1"}, "*redis.Client"},
		{"cluster", RedisConfig{Addr: "127.0.0.1:1,127.0.0.1:2", Cluster: true}, "*redis.ClusterClient"},
		{"sentinel", RedisConfig{Addr: "127.0.0.1:1", MasterName: "m"}, "*redis.Client"},
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
		want RedisConfig
	}{
		{"defaults", nil, RedisConfig{Addr: DefaultRedisAddr}},
		{
			"all set",
			[]string{"-redis", "s1:26379,s2:26379", "-redis-master", "mm", "-redis-password", redisSecret, "-redis-db", "2"},
			RedisConfig{Addr: "s1:26379,s2:26379", MasterName: "mm", Password: redisSecret, DB: 2},
		},
		{"cluster", []string{"-redis=a:1,b:2", "-redis-cluster"}, RedisConfig{Addr: "a:1,b:2", Cluster: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var c RedisConfig
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
		cfg  RedisConfig
		want string
	}{
		{RedisConfig{Addr: "h:1", Password: redisSecret}, `redis=h:1 master="" cluster=false password="xxxxx" db=0`},
		{RedisConfig{Addr: "redis://u:" + redisSecret + "@h:1/2,redis://u:" + redisSecret + "@h:2/2", Cluster: true}, "redis=redis://u:xxxxx@h:1/2,redis://u:xxxxx@h:2/2 "},
		{RedisConfig{Addr: "redis://:" + redisSecret + "@h:port"}, "redis=<unparsable URL> "},
	}
	for _, tt := range tests {
		s := tt.cfg.String()
		if strings.Contains(s, redisSecret) {
			t.Errorf("String() = %q leaks the password", s)
		}
		if !strings.Contains(s, tt.want) {
			t.Errorf("String() = %q, want it to contain %q", s, tt.want)
		}
	}
}

// A Cluster client reloads its slot map every ClusterReloadInterval, not
// go-redis's 60 s, so it follows a promoted replica.
func TestClusterClientFollowsFailover(t *testing.T) {
	c, err := RedisConfig{Addr: "127.0.0.1:1,127.0.0.1:2", Cluster: true}.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("cluster config built a %T", c)
	}
	if got := cc.Options().ClusterStateReloadInterval; got != ClusterReloadInterval {
		t.Fatalf("slot map reload interval %v, want %v", got, ClusterReloadInterval)
	}
}

func TestTopologyError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{context.Canceled, false},
		{redis.ErrClosed, true},
		{context.DeadlineExceeded, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, true},
		{io.EOF, true},
	} {
		if got := topologyError(tc.err); got != tc.want {
			t.Errorf("topologyError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
