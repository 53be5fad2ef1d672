package gateway_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
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

// A frame whose bytes arrive in two parts with a pause between them (a
// slow mobile link, a large frame split over TCP segments) is read whole:
// the pause is not taken for an idle client. The gateway's reader of a
// chatty client waits a short while (500 ms) for more bytes before it
// parks; when the first part came in that wait, the rest used to be read
// with that short wait's deadline still set, and a rest arriving after it
// got the client kicked with "idle timeout" although the idle timeout is
// minutes. A flood under CPU load did the same: frames always buffered
// for over 500 ms, then a frame split at the end of a read
// (TestRateLimitFloodSparesOthers failed 2 in 8 full runs of the package).
func TestPauseInsideAFrameIsNotIdle(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	c := e.connect("slow-link")
	// Quick round trips make the connection chatty: between messages its
	// reader waits in a read instead of parking.
	const cmd = uint64(lobbyType)*1000 + 1
	for i := uint32(1); i <= 5; i++ {
		c.send(cmd, i)
		if _, seq, _ := c.reply(); seq != i {
			t.Fatalf("reply %d, want %d", seq, i)
		}
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 6)
	frame := wire.AppendData(nil, cmd, b[:])
	c.write(frame[:3])
	// The pause under test: longer than the reader's wait for more bytes
	// (500 ms), far shorter than the idle timeout (5 min).
	time.Sleep(1200 * time.Millisecond)
	c.write(frame[3:])
	if _, seq, _ := c.reply(); seq != 6 {
		t.Fatalf("reply %d, want 6", seq)
	}
}
