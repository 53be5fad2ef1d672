package intranet

import (
	"net"
	"sync"
	"time"
)

// Outbox is a bounded send queue that coalesces frames: producers append
// encoded frames under a mutex, one writer goroutine swaps the buffer out
// and hands everything queued to the kernel in a single Write. Producers
// never block on the network.
//
// Concurrency: Append/Force/Close are safe from any goroutine; WriteLoop
// runs in exactly one goroutine per connection.
type Outbox struct {
	mu      sync.Mutex // guards buf, spare, closing
	buf     []byte
	spare   []byte
	closing bool

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
	o.mu.Unlock()
	o.wake()
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
	o.mu.Unlock()
	o.wake()
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
	o.mu.Unlock()
	o.wake()
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
	for {
		select {
		case <-o.signal:
		case <-stop:
			return nil
		}
		o.mu.Lock()
		b, closing := o.buf, o.closing
		o.buf = o.spare[:0]
		o.mu.Unlock()
		if len(b) > 0 {
			if timeout > 0 {
				_ = c.SetWriteDeadline(time.Now().Add(timeout))
			}
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
		o.mu.Lock()
		if cap(b) <= 4*o.max || cap(b) <= 64<<10 {
			o.spare = b[:0]
		} else {
			o.spare = nil // do not pin a burst's memory
		}
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
