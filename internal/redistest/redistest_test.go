package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartSetGet(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q", s.Addr())
	}
	c := s.Client(t)
	ctx := ctxT(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ctx := ctxT(t)
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET on the other server = %v, want redis.Nil", err)
	}
}

func TestStopMakesClientFail(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	ctx := ctxT(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING before stop: %v", err)
	}
	s.Stop()
	s.Stop() // safe twice
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded")
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("port still accepts connections after Stop")
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name   string
		before func(*Server)
	}{
		{"running", func(*Server) {}},
		{"stopped", func(s *Server) { s.Stop() }},
		{"paused", func(s *Server) { s.Pause() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t)
			addr := s.Addr()
			c := s.Client(t)
			ctx := ctxT(t)
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			tt.before(s)
			s.Restart()
			if s.Addr() != addr {
				t.Fatalf("Addr changed across Restart: %s -> %s", addr, s.Addr())
			}
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("PING after Restart: %v", err)
			}
			if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
				t.Fatalf("GET after Restart = %v, want redis.Nil (data lost)", err)
			}
		})
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ctx := ctxT(t)
	impatient := redis.NewClient(&redis.Options{
		Addr:        s.Addr(),
		ReadTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { impatient.Close() })
	if err := impatient.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING before pause: %v", err)
	}

	s.Pause()
	err := impatient.Ping(ctx).Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING while paused = %v, want a timeout", err)
	}

	s.Resume()
	if err := impatient.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after resume: %v", err)
	}
	if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET after resume: %v", err)
	}
}

// fatalTB records Fatal calls instead of failing the surrounding test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func TestMissingBinaryFailsWithHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(tb)
		t.Error("Start returned without redis-server on PATH")
	}()
	<-done
	if !strings.Contains(tb.msg, "apt-get install redis-server") {
		t.Fatalf("Fatal message %q lacks the install hint", tb.msg)
	}
}

// A cluster of 3 masters and 3 replicas forms, serves a key through a
// cluster client, and promotes a replica when the key's master is killed.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 3, 1)
	if got := len(c.Masters()); got != 3 {
		t.Fatalf("%d masters, want 3", got)
	}
	cl := c.Client(t)
	ctx := context.Background()
	if err := cl.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := c.MasterOf("k")
	old.Stop()
	c.WaitMasterChange("k", old)
	if m := c.MasterOf("k"); m == old {
		t.Fatal("the killed node is still master")
	}
}

// A Sentinel deployment forms and fails the master over to its replica.
func TestSentinel(t *testing.T) {
	d := StartSentinel(t, 1)
	old := d.MasterAddr()
	if old != d.Master.Addr() {
		t.Fatalf("sentinels name %q, want %s", old, d.Master.Addr())
	}
	d.Master.Stop()
	d.WaitMasterChange(old)
	if got := d.MasterAddr(); got != d.Replicas[0].Addr() {
		t.Fatalf("new master %q, want the replica %s", got, d.Replicas[0].Addr())
	}
}
