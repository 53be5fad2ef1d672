package mgrserver_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/mgrserver"
)

// warnings collects warning lines.
type warnings struct {
	mu    sync.Mutex
	lines []*logrus.Entry
}

func (h *warnings) Levels() []logrus.Level { return []logrus.Level{logrus.WarnLevel} }
func (h *warnings) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	h.lines = append(h.lines, e)
	h.mu.Unlock()
	return nil
}

// count returns the lines containing text and the events they stand for.
func (h *warnings) count(text string) (lines, events int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.lines {
		if strings.Contains(e.Message, text) {
			lines++
			n, ok := e.Data["events"].(int)
			if !ok {
				n = 1
			}
			events += n
		}
	}
	return lines, events
}

// A storm of dials with the wrong secret costs the leader one warning
// naming the fix, not one line per dial.
func TestBadDialsLoggedRateLimited(t *testing.T) {
	c := newCluster(t)
	h := &warnings{}
	c.log.AddHook(h)
	m := c.startMgr(c.mgrConfig())
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	const dials = 30
	for range dials {
		p := dialRaw(t, m.Addr())
		p.write(p.registerFrame("not-the-secret"))
		if code := p.expectClosed(); code != intranet.CodeAuth {
			t.Fatalf("close code %d, want %d", code, intranet.CodeAuth)
		}
	}
	if lines, _ := h.count("every member must share XSERVER_SECRET"); lines != 1 {
		t.Fatalf("%d warning lines for %d bad dials, want 1", lines, dials)
	}
}

// An mgrserver that cannot reach Redis says so at the default level.
func TestRedisUnreachableWarns(t *testing.T) {
	c := newCluster(t)
	h := &warnings{}
	c.log.AddHook(h)
	cfg := c.mgrConfig()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	cfg.Redis = rdb
	cfg.CampaignInterval = 50 * time.Millisecond
	c.startMgr(cfg)
	waitFor(t, 10*time.Second, "a Redis warning", func() bool {
		n, _ := h.count("cannot reach Redis at 127.0.0.1:1")
		return n > 0
	})
	time.Sleep(time.Second) // let more campaigns fail: still one line per 10 s
	if n, _ := h.count("cannot reach Redis"); n != 1 {
		t.Fatalf("%d Redis warnings within a second, want 1", n)
	}
}
