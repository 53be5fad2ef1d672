//go:build linux

package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// poller parks idle plain-TCP client connections (and WebSockets over
// plain TCP) in an epoll set of its own, so an idle connection holds no goroutine at all: one goroutine
// waits for every parked socket and starts a burst (a fresh goroutine)
// for each that becomes readable. Sockets are registered one-shot: an
// event disarms the socket until its burst parks it again. The Go runtime
// keeps its own registration of the same sockets for the reads and
// writes done by bursts and senders.
//
// It also times parked connections out: a connection parked longer than
// the idle window is woken (its burst sees the silence and kicks it).
//
// Concurrency: park and wake are safe from any goroutine; mu guards conns.
type poller struct {
	epfd   int
	wakeR  *os.File // the shutdown pipe, registered in the set
	wakeW  *os.File
	idle   time.Duration
	done   chan struct{}
	closed sync.Once

	mu    sync.Mutex
	conns map[int32]*client // by socket descriptor: the connections parked at least once
}

const pollWakeToken = -1

func newPoller(idle time.Duration) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	p := &poller{epfd: epfd, wakeR: r, wakeW: w, idle: idle, done: make(chan struct{}), conns: make(map[int32]*client)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	ev.Fd = pollWakeToken
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(r.Fd()), &ev); err != nil {
		p.release()
		return nil, err
	}
	go p.run()
	return p, nil
}

func (p *poller) release() {
	syscall.Close(p.epfd)
	p.wakeR.Close()
	p.wakeW.Close()
}

// close stops the poller and waits for it. Safe twice.
func (p *poller) close() {
	p.closed.Do(func() {
		_, _ = p.wakeW.Write([]byte{0})
		<-p.done
		p.release()
	})
}

// pollable reports whether c can be parked here: a plain TCP socket, or
// a WebSocket over one (its frames are decoded by readNow; over TLS the
// library may hold decrypted bytes the socket does not signal).
func pollable(c net.Conn) (syscall.RawConn, bool) {
	if w, ok := c.(*wsConn); ok {
		c = w.raw
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	rc, err := tc.SyscallConn()
	return rc, err == nil
}

// park arms c's socket; false when it cannot be (the caller parks a
// goroutine instead). The caller has set c.state to parked.
func (p *poller) park(c *client) bool {
	rc, ok := pollable(c.conn)
	if !ok {
		return false
	}
	if w, ok := c.conn.(*wsConn); ok && w.buffered() {
		return false // bytes the socket will not signal
	}
	var perr error
	err := rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
		p.mu.Lock()
		cur := p.conns[int32(fd)]
		p.conns[int32(fd)] = c
		p.mu.Unlock()
		if cur == c {
			perr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		} else {
			perr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
			if errors.Is(perr, syscall.EEXIST) {
				perr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
			}
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		p.forget(c)
		return false
	}
	return true
}

// forget drops c before its socket is closed (its descriptor may be
// reused by the next connection).
func (p *poller) forget(c *client) {
	rc, ok := pollable(c.conn)
	if !ok {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		p.mu.Lock()
		if p.conns[int32(fd)] == c {
			delete(p.conns, int32(fd))
			p.mu.Unlock()
			_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			return
		}
		p.mu.Unlock()
	})
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	tick := max(p.idle/4, 100*time.Millisecond)
	lastSweep := time.Now()
	for {
		n, err := syscall.EpollWait(p.epfd, events, int(tick/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
		for i := 0; i < n; i++ {
			fd := events[i].Fd
			if fd == pollWakeToken {
				return
			}
			p.mu.Lock()
			c := p.conns[fd]
			p.mu.Unlock()
			if c != nil {
				c.unpark()
			}
		}
		if now := time.Now(); p.idle > 0 && now.Sub(lastSweep) >= tick {
			lastSweep = now
			p.sweep(now)
		}
	}
}

// sweep wakes the parked connections silent for longer than the idle
// window.
func (p *poller) sweep(now time.Time) {
	var late []*client
	p.mu.Lock()
	for _, c := range p.conns {
		if c.state.Load() == stateParked && now.Sub(c.lastRead()) > p.idle {
			late = append(late, c)
		}
	}
	p.mu.Unlock()
	for _, c := range late {
		c.unpark()
	}
}

// wakeAll starts a burst for every parked connection (their sockets
// were closed under them).
func (p *poller) wakeAll() {
	p.mu.Lock()
	all := make([]*client, 0, len(p.conns))
	for _, c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.unpark()
	}
}

// readNow reads what c's socket holds without waiting: 0 and
// syscall.EAGAIN when it holds nothing (for a WebSocket: no payload).
func readNow(c net.Conn, b []byte) (int, error) {
	if w, ok := c.(*wsConn); ok {
		return w.readNow(b)
	}
	return rawReadNow(c, b)
}

// rawReadNow reads what a socket holds without waiting.
func rawReadNow(c net.Conn, b []byte) (int, error) {
	rc, ok := pollable(c)
	if !ok {
		return c.Read(b)
	}
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), b)
		if n < 0 {
			n = 0
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	if rerr == nil && n == 0 {
		return 0, io.EOF
	}
	return n, rerr
}
