package gateway_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Idle logged-in TCP clients hold no goroutine each: between bursts a
// connection waits in the gateway's epoll set (Linux), and its writer
// exits once its frames are written. A message afterwards still gets its
// answer (the parked connection wakes).
func TestIdleClientsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections park in epoll on Linux only")
	}
	const n = 60
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	base := runtime.NumGoroutine()
	var cs []*client
	for i := 0; i < n; i++ {
		cs = append(cs, e.connect(fmt.Sprintf("parked-%d", i)))
	}
	// The test's own client side holds no goroutine either (raw sockets).
	waitFor(t, 15*time.Second, "idle connections to let their goroutines go", func() bool {
		return runtime.NumGoroutine()-base < n/4
	})
	for i, c := range cs {
		c.send(uint64(lobbyType)*1000+1, uint32(i+1))
		if _, seq, _ := c.reply(); seq != uint32(i+1) {
			t.Fatalf("client %d: reply %d", i, seq)
		}
	}
}
