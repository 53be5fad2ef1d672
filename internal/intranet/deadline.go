package intranet

import (
	"net"
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
func (l *LazyDeadline) Arm() {
	now := time.Now()
	if now.Sub(l.armed) < l.d/4 {
		return
	}
	l.armed = now
	_ = l.c.SetReadDeadline(now.Add(l.d + l.d/4))
}
