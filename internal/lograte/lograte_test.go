package lograte

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestOneLinePerPeriodPerKeyWithCounts(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(10 * time.Second).WithClock(clk.now)
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})

	for range 1000 {
		l.Warn(log, "bad dial")
	}
	l.Warn(log, "other cause") // a second cause is not hidden by the first
	clk.add(9 * time.Second)
	l.Warn(log, "bad dial")
	clk.add(time.Second)
	l.Warn(log, "bad dial")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "events") || !strings.Contains(lines[0], "bad dial") {
		t.Fatalf("first line %q: want the message without a count", lines[0])
	}
	if !strings.Contains(lines[1], "other cause") {
		t.Fatalf("second line %q", lines[1])
	}
	// 999 suppressed + 1 at +9s + this one.
	if !strings.Contains(lines[2], "events=1001") {
		t.Fatalf("third line %q: want events=1001", lines[2])
	}
}

func TestAllowConcurrent(t *testing.T) {
	l := New(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if _, ok := l.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d lines allowed in one period, want 1", allowed)
	}
}

func TestKeysBounded(t *testing.T) {
	l := New(time.Hour)
	for i := range 3 * maxKeys {
		l.Allow(strings.Repeat("x", i%50) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(l.keys); n > maxKeys {
		t.Fatalf("%d keys kept, want at most %d", n, maxKeys)
	}
}
