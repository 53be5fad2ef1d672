package embedredis

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startT(t *testing.T) (*Server, redis.UniversalClient, context.Context) {
	t.Helper()
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{s.Addr()}})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return s, c, ctx
}

// renew extends a lease only if it is still held by the caller, the way
// the cluster's lease code does.
const renew = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`

func TestCommandsTheClusterUses(t *testing.T) {
	_, c, ctx := startT(t)

	tests := []struct {
		name string
		run  func() (any, error)
		want any
	}{
		{"SET NX PX takes a free key", func() (any, error) {
			return c.SetNX(ctx, "lease", "node-1", 5*time.Second).Result()
		}, true},
		{"SET NX PX refuses a held key", func() (any, error) {
			return c.SetNX(ctx, "lease", "node-2", 5*time.Second).Result()
		}, false},
		{"GET", func() (any, error) { return c.Get(ctx, "lease").Result() }, "node-1"},
		{"EVAL renew by the holder", func() (any, error) {
			return c.Eval(ctx, renew, []string{"lease"}, "node-1", 60000).Result()
		}, int64(1)},
		{"EVAL renew by another node", func() (any, error) {
			return c.Eval(ctx, renew, []string{"lease"}, "node-2", 60000).Result()
		}, int64(0)},
		{"PEXPIRE", func() (any, error) { return c.PExpire(ctx, "lease", 30*time.Second).Result() }, true},
		{"PTTL after PEXPIRE", func() (any, error) {
			d, err := c.PTTL(ctx, "lease").Result()
			return d > 20*time.Second && d <= 30*time.Second, err
		}, true},
		{"INCR new key", func() (any, error) { return c.Incr(ctx, "epoch").Result() }, int64(1)},
		{"INCR again", func() (any, error) { return c.Incr(ctx, "epoch").Result() }, int64(2)},
		{"PEXPIRE missing key", func() (any, error) { return c.PExpire(ctx, "nope", time.Second).Result() }, false},
	}
	for _, tt := range tests { // in order: each step builds on the last
		got, err := tt.run()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Fatalf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := c.Get(ctx, "nope").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET missing key = %v, want redis.Nil", err)
	}
}

func TestAddr(t *testing.T) {
	tests := []struct {
		name, addr, wantPrefix string
	}{
		{"default", "", "127.0.0.1:"},
		{"explicit free port", "127.0.0.1:0", "127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !strings.HasPrefix(s.Addr(), tt.wantPrefix) || strings.HasSuffix(s.Addr(), ":0") {
				t.Errorf("Addr() = %q", s.Addr())
			}
		})
	}
}

func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if s, err := Start(ln.Addr().String()); err == nil {
		s.Close()
		t.Fatal("Start succeeded on a taken port")
	} else if !strings.HasPrefix(err.Error(), "embedredis:") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s, c, ctx := startT(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if conn, err := net.Dial("tcp", s.Addr()); err == nil {
		conn.Close()
		t.Error("still accepting connections after Close")
	}
}

func TestKeysExpire(t *testing.T) {
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "lease", "x", 100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, "lease").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a 100ms TTL is still there after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
