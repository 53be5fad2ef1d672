package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/service"
)

func TestConnect(t *testing.T) {
	srv := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	newClient := func(t *testing.T, c service.RedisConfig) redis.UniversalClient {
		t.Helper()
		rdb, err := c.NewClient()
		if err != nil {
			t.Fatalf("NewClient(%v): %v", c, err)
		}
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}

	plain := newClient(t, service.RedisConfig{Addr: srv.Addr()})
	if err := plain.Set(ctx, "k", "db0", 0).Err(); err != nil {
		t.Fatalf("SET via host:port: %v", err)
	}

	db2 := newClient(t, service.RedisConfig{Addr: "redis://" + srv.Addr() + "/2?dial_timeout=2s"})
	if err := db2.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET in db 2 = %v, want redis.Nil", err)
	}
	if err := db2.Set(ctx, "k", "db2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := plain.Get(ctx, "k").Result(); got != "db0" {
		t.Fatalf("db 0 holds %q, want db0", got)
	}

	// A context deadline bounds a command (ContextTimeoutEnabled): BLPOP
	// would otherwise wait its full 5 s.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	err := plain.BLPop(short, 5*time.Second, "empty-list").Err()
	cancelShort()
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("BLPOP with a 100ms deadline = %v after %v, want an error well before 5s", err, time.Since(start))
	}

	// With a password required, -redis-password makes the difference.
	if err := plain.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	authed := newClient(t, service.RedisConfig{Addr: srv.Addr(), Password: "s3cret", DB: 2})
	if got, err := authed.Get(ctx, "k").Result(); err != nil || got != "db2" {
		t.Fatalf("GET with password = %q, %v; want db2", got, err)
	}
	anon := newClient(t, service.RedisConfig{Addr: srv.Addr()})
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without password = %v, want NOAUTH", err)
	}
}
