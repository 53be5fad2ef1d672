package gateway

import (
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/xserver/xserver/internal/intranet"
)

// clientOut is a client connection's bounded send queue. Producers append
// encoded frames; a writer goroutine exists only while something is
// queued: the first append after a quiet spell starts one, and it hands
// everything queued to the kernel in as few writes as it can, then exits
// and lets the buffer go. An idle connection therefore holds neither a
// goroutine nor a buffer for sending.
//
// On a plain TCP connection a frame that finds the queue idle (nothing
// queued, nothing being written, nothing written in the last
// intranet.CoalesceAfter) skips the writer goroutine: the producer offers
// it to the kernel in one non-blocking write and queues only what the
// kernel did not take. A reply to a lone request so crosses no goroutine.
//
// Concurrency: every method is safe from any goroutine; mu guards every
// field after it.
type clientOut struct {
	conn    net.Conn
	raw     syscall.RawConn // conn's, for direct writes; nil when it has none
	timeout time.Duration   // per write; 0 = none
	max     int
	onDone  func(err error) // called once, off the lock, when the queue is finished

	mu       sync.Mutex
	buf      []byte
	wroteNs  int64         // when the last direct write began (unix ns)
	writing  bool          // a writer goroutine runs, or a producer writes directly
	closing  bool          // nothing more is accepted; the writer finishes once drained
	finished bool          // onDone was called (or is about to be)
	notified bool          // onDone returned
	done     chan struct{} // made by the first Done; closed once notified
}

// newClientOut returns the queue of c, holding at most max bytes. onDone
// runs once when the queue is closed and drained, or a write failed (err).
func newClientOut(c net.Conn, timeout time.Duration, max int, onDone func(err error)) *clientOut {
	o := &clientOut{conn: c, timeout: timeout, max: max, onDone: onDone}
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			o.raw = raw
		}
	}
	return o
}

// Append queues frame. It returns false, queueing nothing, if that would
// exceed the limit or the queue is closing.
func (o *clientOut) Append(frame []byte) bool {
	o.mu.Lock()
	if o.closing || len(o.buf)+len(frame) > o.max {
		o.mu.Unlock()
		return false
	}
	o.buf = append(o.buf, frame...)
	o.flushLocked()
	return true
}

// Force queues frame regardless of the limit (a small notice that must
// not be lost to a full queue). It returns false only when the queue is
// closing.
func (o *clientOut) Force(frame []byte) bool {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return false
	}
	o.buf = append(o.buf, frame...)
	o.flushLocked()
	return true
}

// AppendWith queues n bytes written by fill into the queue's own memory.
// fill must write exactly n bytes and must not retain the slice.
func (o *clientOut) AppendWith(n int, fill func([]byte)) bool {
	o.mu.Lock()
	if o.closing || len(o.buf)+n > o.max {
		o.mu.Unlock()
		return false
	}
	start := len(o.buf)
	if cap(o.buf)-start < n {
		nb := make([]byte, start, 2*cap(o.buf)+n)
		copy(nb, o.buf)
		o.buf = nb
	}
	o.buf = o.buf[:start+n]
	fill(o.buf[start:])
	o.flushLocked()
	return true
}

// Len is the number of queued bytes not yet handed to a write.
func (o *clientOut) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// Close stops accepting frames; what is queued is still written. Safe
// twice.
func (o *clientOut) Close() { o.CloseWith(nil) }

// CloseWith queues a last frame (regardless of the limit) and closes.
func (o *clientOut) CloseWith(frame []byte) {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	o.closing = true
	o.buf = append(o.buf, frame...)
	if len(o.buf) > 0 {
		o.startLocked()
		o.mu.Unlock()
		return
	}
	fin := o.finishLocked()
	o.mu.Unlock()
	fin(nil)
}

// Done is closed once the queue is finished: closed and drained, or a
// write failed.
func (o *clientOut) Done() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done == nil {
		o.done = make(chan struct{})
		if o.notified {
			close(o.done)
		}
	}
	return o.done
}

// flushLocked writes what is queued directly when the queue is idle, else
// leaves it to the writer goroutine (starting one). It is called with o.mu
// held and releases it.
func (o *clientOut) flushLocked() {
	now := time.Now().UnixNano() // the write's start counts as its time
	if o.raw == nil || o.writing || o.closing || o.finished || now-o.wroteNs < int64(intranet.CoalesceAfter) {
		o.startLocked()
		o.mu.Unlock()
		return
	}
	b := o.buf
	o.buf = nil
	o.writing = true
	o.mu.Unlock()

	n := intranet.WriteNow(o.raw, b)

	o.mu.Lock()
	o.writing = false
	o.wroteNs = now
	if n < len(b) {
		// The kernel took part of it (or none; a failure shows in the
		// writer's write): the rest goes first.
		o.buf = append(b[n:len(b):len(b)], o.buf...)
	}
	o.startLocked()
	o.mu.Unlock()
}

func (o *clientOut) startLocked() {
	if o.writing || o.finished || len(o.buf) == 0 {
		return
	}
	o.writing = true
	go o.write()
}

// finishLocked marks the queue finished and returns what to run off the
// lock (a no-op when it was finished already).
func (o *clientOut) finishLocked() func(error) {
	if o.finished {
		return func(error) {}
	}
	o.finished = true
	return func(err error) {
		if o.onDone != nil {
			o.onDone(err)
		}
		o.mu.Lock()
		o.notified = true
		if o.done != nil {
			close(o.done)
		}
		o.mu.Unlock()
	}
}

// write is the writer goroutine: it writes until the queue is empty.
func (o *clientOut) write() {
	for {
		o.mu.Lock()
		b := o.buf
		o.buf = nil
		if len(b) == 0 {
			o.writing = false
			if o.closing {
				fin := o.finishLocked()
				o.mu.Unlock()
				fin(nil)
				return
			}
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		if o.timeout > 0 {
			_ = o.conn.SetWriteDeadline(time.Now().Add(o.timeout))
		}
		if _, err := o.conn.Write(b); err != nil {
			o.mu.Lock()
			o.closing, o.writing, o.buf = true, false, nil
			fin := o.finishLocked()
			o.mu.Unlock()
			fin(err)
			return
		}
	}
}
