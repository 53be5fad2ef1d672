package intranet

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// LazyDeadline re-arms a connection's read deadline at most once per
// quarter of its window, instead of on every frame: a hot connection then
// pays one timer update per d/4 rather than one per frame. A silent peer is
// detected between d and 1.25·d after its last frame. Not safe for
// concurrent use: the connection's reader owns it.
type LazyDeadline struct {
	c     net.Conn
	d     time.Duration
	armed time.Time
}

// NewLazyDeadline returns a deadline of window d on c.
func NewLazyDeadline(c net.Conn, d time.Duration) *LazyDeadline {
	return &LazyDeadline{c: c, d: d}
}

// Arm pushes the deadline to at least now + d.
func (l *LazyDeadline) Arm() { l.ArmAt(time.Now()) }

// ArmAt is Arm with the caller's reading of the clock (a reader that has
// just read it saves another read).
func (l *LazyDeadline) ArmAt(now time.Time) {
	if now.Sub(l.armed) < l.d/4 {
		return
	}
	l.armed = now
	_ = l.c.SetReadDeadline(now.Add(l.d + l.d/4))
}

// Recheck is how long a reader whose read deadline fired looks once more
// for bytes that arrived while it waited to be scheduled.
const Recheck = 50 * time.Millisecond

// Rechecked wraps c's reads so that an expired read deadline is only
// reported once nothing arrives during one more short wait. On a busy
// machine a reader may run long after its peer's heartbeat reached the
// socket; Go then reports the deadline without looking at the buffered
// bytes, and a live peer would be declared silent. The extra wait starts
// when the reader runs, so such bytes are always seen.
func Rechecked(c net.Conn) io.Reader { return recheckReader{c} }

type recheckReader struct{ c net.Conn }

func (r recheckReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		_ = r.c.SetReadDeadline(time.Now().Add(Recheck))
		n, err = r.c.Read(p)
	}
	return n, err
}
