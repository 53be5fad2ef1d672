package gateway_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/node"
)

// lineCounter counts log entries whose message contains a text.
type lineCounter struct {
	mu    sync.Mutex
	lines []*logrus.Entry
}

func (h *lineCounter) Levels() []logrus.Level { return logrus.AllLevels }
func (h *lineCounter) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	h.lines = append(h.lines, e)
	h.mu.Unlock()
	return nil
}

func (h *lineCounter) count(text string) (n int, suppressed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.lines {
		if strings.Contains(e.Message, text) {
			n++
			if s, ok := e.Data["events"].(int); ok {
				suppressed += s
			}
		}
	}
	return n, suppressed
}

// Abuse does not grow the log line by line: a flood of refused
// connections, of connections that never log in, and of frames for a
// slow client each give one line per interval, not one per event.
func TestLogsRateLimited(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) {
		c.MaxClients, c.MaxPreLogin = 30, 20
		c.LoginTimeout = 300 * time.Millisecond
		c.WriteTimeout = 2 * time.Second
	})
	h := &lineCounter{}
	e.log.AddHook(h)
	// The lobby keeps what its slow player has not acknowledged for
	// longer than the kernel's socket buffers and the gateway's queue
	// take, so that the gateway is the one to notice.
	e.nodeOpt = func(c *node.Config) { c.StreamLimit = 64 << 20 }
	lobby := e.startGame(lobbyType)
	e.nodeOpt = nil
	e.ready()
	g := e.gws[0]

	// 40 connections that never log in: 20 served then timed out, 20
	// refused.
	var raws []*client
	for i := 0; i < 40; i++ {
		c, _ := dialRaw(t, g.Addrs().Client)
		raws = append(raws, c)
	}
	for _, c := range raws {
		c.closedWith()
	}
	if n, _ := h.count("refusing client connections"); n != 1 {
		t.Errorf("%d log lines for 20 refused connections, want 1", n)
	}
	if n, _ := h.count("closing client connection"); n > 1 {
		t.Errorf("%d log lines for 20 login timeouts, want at most 1", n)
	}

	// A client that does not read while its node pushes 16 KiB messages:
	// kicked as slow once the kernel's socket buffers and then its queue
	// are full, and frames are dropped after that.
	waitFor(t, 10*time.Second, "gateway accepting again", func() bool {
		m := e.ln.GetNode(g.Node().GetID())
		return m != nil && m.GetOverload(login.GatewayLoadState) == login.GatewayAccepting
	})
	e.connect("slow")
	data := make([]byte, 16<<10)
	waitFor(t, 20*time.Second, "slow client kicked", func() bool {
		for i := 0; i < 50; i++ {
			_ = lobby.SendClientMsgByRelay("slow", uint64(lobbyType)*1000+1, data)
		}
		n, _ := h.count("cannot keep up")
		return n > 0
	})
	for i := 0; i < 500; i++ {
		_ = lobby.SendClientMsgByRelay("slow", uint64(lobbyType)*1000+1, data)
	}
	if n, _ := h.count("cannot keep up"); n != 1 {
		t.Errorf("%d 'cannot keep up' lines for one slow client, want 1", n)
	}
	if n, _ := h.count("dropped frames for clients being disconnected"); n > 1 {
		t.Errorf("%d lines for the frames dropped after the kick, want at most 1", n)
	}
}
