package intranet

import (
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Outbox is a bounded send queue that coalesces frames: producers append
// encoded frames under a mutex, one writer goroutine swaps the buffer out
// and hands everything queued to the kernel in a single Write. Producers
// never block on the network.
//
// On a TCP connection an idle outbox skips the hand-off: the producer that
// finds nothing queued, nothing being written and nothing written in the
// last CoalesceAfter offers its frame to the kernel itself, in one
// non-blocking write, and leaves to the writer goroutine only what the
// kernel did not take. A lone request/response exchange so crosses no
// goroutine; under load frames follow each other closely, queue behind
// the writer and go out coalesced as before.
//
// Concurrency: Append/Force/Close are safe from any goroutine; WriteLoop
// runs in exactly one goroutine per connection.
type Outbox struct {
	mu      sync.Mutex // guards buf, spare, closing, raw, writing
	buf     []byte
	spare   []byte
	closing bool
	raw     syscall.RawConn // set while WriteLoop runs on a connection that has one
	writing bool            // a Write (the writer's, or a producer's direct one) is under way
	wrote   time.Time       // when the last Write was made (a direct one: began)

	max    int
	signal chan struct{} // cap 1: "there is something to write"
	done   chan struct{} // closed when WriteLoop returns
}

// NewOutbox returns an outbox holding at most max queued bytes.
func NewOutbox(max int) *Outbox {
	return &Outbox{max: max, signal: make(chan struct{}, 1), done: make(chan struct{})}
}

// Append queues frame. It returns false, queueing nothing, if that would
// exceed the limit or the outbox is closing.
func (o *Outbox) Append(frame []byte) bool {
	o.mu.Lock()
	if o.closing || len(o.buf)+len(frame) > o.max {
		o.mu.Unlock()
		return false
	}
	o.buf = append(o.buf, frame...)
	o.flushLocked()
	return true
}

// AppendWith queues n bytes written by fill into the queue's own memory,
// saving the caller a buffer. fill must write exactly n bytes and must not
// retain the slice.
func (o *Outbox) AppendWith(n int, fill func([]byte)) bool {
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

// AppendPair queues first and then frame in one step (one write when the
// outbox is idle), under the limit like Append: first is typically an
// acknowledgement that must precede frame.
func (o *Outbox) AppendPair(first, frame []byte) bool {
	o.mu.Lock()
	if o.closing || len(o.buf)+len(first)+len(frame) > o.max {
		o.mu.Unlock()
		return false
	}
	o.buf = append(append(o.buf, first...), frame...)
	o.flushLocked()
	return true
}

// ForcePair is AppendPair regardless of the limit (see Force).
func (o *Outbox) ForcePair(first, frame []byte) bool {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return false
	}
	o.buf = append(append(o.buf, first...), frame...)
	o.flushLocked()
	return true
}

// Force queues frame regardless of the limit (a snapshot, a final error).
// It returns false only when the outbox is closing.
func (o *Outbox) Force(frame []byte) bool {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return false
	}
	o.buf = append(o.buf, frame...)
	o.flushLocked()
	return true
}

// Len is the number of queued bytes.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// Close stops accepting frames; WriteLoop writes what is queued, then
// returns. Safe twice.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.closing = true
	o.mu.Unlock()
	o.wake()
}

// CloseWith queues a last frame and closes.
func (o *Outbox) CloseWith(frame []byte) {
	o.mu.Lock()
	if !o.closing {
		o.buf = append(o.buf, frame...)
		o.closing = true
	}
	o.mu.Unlock()
	o.wake()
}

// Done is closed when WriteLoop has returned.
func (o *Outbox) Done() <-chan struct{} { return o.done }

// flushLocked hands what is queued to the kernel directly when nothing is
// being written, else wakes the writer. It is called with o.mu held and
// releases it.
func (o *Outbox) flushLocked() {
	now := time.Now() // the write's start counts as its time
	if o.raw == nil || o.writing || o.closing || now.Sub(o.wrote) < CoalesceAfter {
		o.mu.Unlock()
		o.wake()
		return
	}
	b, raw := o.buf, o.raw
	o.buf, o.spare = o.spare[:0], nil
	o.writing = true
	o.mu.Unlock()

	n := WriteNow(raw, b)

	o.mu.Lock()
	o.writing = false
	o.wrote = now
	if n < len(b) {
		// The kernel took part of it (or none): the rest goes first.
		rest := b[:copy(b, b[n:])]
		b, o.buf = o.buf, append(rest, o.buf...)
	}
	o.keepSpare(b)
	more := len(o.buf) > 0 || o.closing
	o.mu.Unlock()
	if more {
		o.wake()
	}
}

// CoalesceAfter is how soon after a write a frame is left to the writer
// goroutine rather than written directly: frames that follow each other
// this closely are a busy connection's, and are worth one write together.
const CoalesceAfter = 50 * time.Microsecond

// keepSpare keeps b's memory for the next swap unless it grew too large
// (a burst's memory is not pinned).
func (o *Outbox) keepSpare(b []byte) {
	if cap(b) <= 4*o.max || cap(b) <= 64<<10 {
		o.spare = b[:0]
	} else {
		o.spare = nil
	}
}

func (o *Outbox) wake() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// WriteLoop writes queued bytes to c until the outbox is closed and
// drained, stop is closed, or a write fails (each write gets timeout). It
// returns the write error, if any. It does not close c.
func (o *Outbox) WriteLoop(c net.Conn, timeout time.Duration, stop <-chan struct{}) error {
	defer close(o.done)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			o.mu.Lock()
			o.raw = raw
			o.mu.Unlock()
			defer func() {
				o.mu.Lock()
				o.raw = nil
				o.mu.Unlock()
			}()
		}
	}
	for {
		select {
		case <-o.signal:
		case <-stop:
			return nil
		}
		// The wake-up put this goroutine first in line on its P, ahead of
		// the producers made runnable by the same poll: let them run and
		// append first, so one write carries their frames together.
		runtime.Gosched()
		o.mu.Lock()
		if o.writing {
			// A producer is writing directly; it wakes us when it is done
			// and something is left.
			o.mu.Unlock()
			continue
		}
		b, closing := o.buf, o.closing
		o.buf = o.spare[:0]
		o.writing = len(b) > 0
		o.mu.Unlock()
		if len(b) > 0 {
			if timeout > 0 {
				_ = c.SetWriteDeadline(time.Now().Add(timeout))
			}
			_, err := c.Write(b)
			if err != nil {
				o.mu.Lock()
				o.writing = false
				o.raw = nil
				o.mu.Unlock()
				return err
			}
		}
		o.mu.Lock()
		o.writing = false
		if len(b) > 0 {
			o.wrote = time.Now()
		}
		o.keepSpare(b)
		if o.closing && len(o.buf) == 0 {
			o.mu.Unlock()
			return nil
		}
		more := len(o.buf) > 0
		o.mu.Unlock()
		if closing && !more {
			return nil
		}
		if more {
			o.wake()
		}
	}
}
