package intranet

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// CtlQueue is the control plane's send queue. It has two lanes:
//
//   - urgent: heartbeats, their answers and snapshots. Written before
//     anything in the bulk lane, so a heartbeat never waits behind a
//     backlog of membership events.
//   - bulk: membership events and other ordered traffic, in order.
//
// Both lanes hold references to encoded frames, not copies: one event
// batch or snapshot encoded once is queued to every peer and written from
// the same memory. A frame given to the queue must therefore never be
// modified afterwards. Frames jump the bulk lane only whole, so the byte
// stream always stays a sequence of complete frames.
//
// A queue is written either by its own WriteLoop goroutine or, attached to
// a CtlPool (Attach), by the pool's workers.
//
// Concurrency: every method but WriteLoop is safe from any goroutine;
// WriteLoop runs in exactly one goroutine per connection.
type CtlQueue struct {
	mu        sync.Mutex // guards the fields below
	urgent    [][]byte
	urgentLen int
	bulk      [][]byte
	bulkLen   int
	last      []byte // written after everything else, then the loop ends
	closing   bool

	max    int
	pl     *pooled       // set by Attach: written by a CtlPool
	signal chan struct{} // cap 1: "there is something to write"
	done   chan struct{} // closed when WriteLoop returns
}

// ctlRound bounds the bulk bytes taken per write, so urgent frames queued
// meanwhile wait for at most one round.
const ctlRound = 128 << 10

// NewCtlQueue returns a queue holding at most max bytes in each lane
// (forced frames may exceed it).
func NewCtlQueue(max int) *CtlQueue {
	return &CtlQueue{max: max, signal: make(chan struct{}, 1), done: make(chan struct{})}
}

// Urgent queues frame ahead of every bulk frame not yet written. It returns
// false, queueing nothing, when the urgent lane is full or the queue is
// closing.
func (q *CtlQueue) Urgent(frame []byte) bool { return q.put(true, frame, false) }

// UrgentForce is Urgent without the limit (a snapshot a peer must get).
func (q *CtlQueue) UrgentForce(frame []byte) bool { return q.put(true, frame, true) }

// Bulk queues frame (one or more whole frames) after everything in the bulk
// lane. It returns false, queueing nothing, when that would exceed the
// limit or the queue is closing.
func (q *CtlQueue) Bulk(frame []byte) bool { return q.put(false, frame, false) }

// BulkForce is Bulk without the limit (a resync snapshot).
func (q *CtlQueue) BulkForce(frame []byte) bool { return q.put(false, frame, true) }

func (q *CtlQueue) put(urgent bool, frame []byte, force bool) bool {
	if len(frame) == 0 {
		return true
	}
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return false
	}
	if urgent {
		if !force && q.urgentLen+len(frame) > q.max {
			q.mu.Unlock()
			return false
		}
		q.urgent = append(q.urgent, frame)
		q.urgentLen += len(frame)
	} else {
		if !force && q.bulkLen+len(frame) > q.max {
			q.mu.Unlock()
			return false
		}
		q.bulk = append(q.bulk, frame)
		q.bulkLen += len(frame)
	}
	if q.pl != nil {
		q.scheduleLocked()
		q.mu.Unlock()
		return true
	}
	q.mu.Unlock()
	q.wake()
	return true
}

// Len is the number of queued bytes in the bulk lane.
func (q *CtlQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bulkLen
}

// Close stops accepting frames; WriteLoop writes what is queued, then
// returns. Safe twice.
func (q *CtlQueue) Close() { q.CloseWith(nil) }

// CloseWith queues a last frame, written after everything queued, and
// closes. Only the first call's frame counts.
func (q *CtlQueue) CloseWith(frame []byte) {
	q.mu.Lock()
	if !q.closing {
		q.last = frame
		q.closing = true
		if q.pl != nil {
			q.scheduleLocked()
		}
	}
	q.mu.Unlock()
	q.wake()
}

// Done is closed when WriteLoop has returned.
func (q *CtlQueue) Done() <-chan struct{} { return q.done }

func (q *CtlQueue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take removes the next round to write: every urgent frame, then bulk
// frames up to ctlRound bytes (at least one), and, once both lanes are
// empty on a closing queue, the last frame. end reports that nothing will
// follow.
func (q *CtlQueue) take(dst [][]byte) (out [][]byte, end bool) { return q.takeRound(dst, ctlRound) }

// takeRound is take with at most round bulk bytes (0: none, unless the
// urgent lane is empty too, then at least one frame).
func (q *CtlQueue) takeRound(dst [][]byte, round int) (out [][]byte, end bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out = append(dst, q.urgent...)
	clear(q.urgent)
	q.urgent, q.urgentLen = q.urgent[:0], 0
	n, i := 0, 0
	for ; i < len(q.bulk) && ((i == 0 && (round > 0 || len(out) == 0)) || n+len(q.bulk[i]) <= round); i++ {
		n += len(q.bulk[i])
		out = append(out, q.bulk[i])
	}
	rest := copy(q.bulk, q.bulk[i:])
	clear(q.bulk[rest:])
	q.bulk, q.bulkLen = q.bulk[:rest], q.bulkLen-n
	if q.closing && len(q.bulk) == 0 {
		if q.last != nil {
			out = append(out, q.last)
			q.last = nil
		}
		return out, true
	}
	return out, false
}

// WriteLoop writes queued frames to c until the queue is closed and
// drained, stop is closed, or a write fails. stall bounds how long a write
// may make no progress at all: a slow reader that keeps taking bytes is
// not cut off, only one that takes none for stall. It returns the write
// error, if any. It does not close c.
func (q *CtlQueue) WriteLoop(c net.Conn, stall time.Duration, stop <-chan struct{}) error {
	defer close(q.done)
	var round [][]byte
	var armed time.Time // when the write deadline was last pushed
	for {
		select {
		case <-q.signal:
		case <-stop:
			return nil
		}
		for {
			var end bool
			round, end = q.take(round[:0])
			if len(round) > 0 {
				if err := writeAll(c, round, stall, &armed); err != nil {
					return err
				}
				clear(round)
			}
			if end {
				return nil
			}
			if len(round) == 0 {
				break
			}
			select {
			case <-stop:
				return nil
			default:
			}
		}
	}
}

// writeAll writes bufs (with writev where the connection supports it),
// failing only when a write makes no progress for stall (up to 1.25 ×
// stall: like LazyDeadline, the deadline is pushed at most once per
// quarter of it, which spares a timer update per write on a busy queue).
func writeAll(c net.Conn, bufs [][]byte, stall time.Duration, armed *time.Time) error {
	nb := net.Buffers(bufs)
	for len(nb) > 0 {
		if now := time.Now(); stall > 0 && now.Sub(*armed) >= stall/4 {
			*armed = now
			_ = c.SetWriteDeadline(now.Add(stall + stall/4))
		}
		n, err := nb.WriteTo(c)
		if err != nil {
			if n > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				*armed = time.Time{} // slow but alive: a fresh deadline, keep going
				continue
			}
			return err
		}
	}
	return nil
}
