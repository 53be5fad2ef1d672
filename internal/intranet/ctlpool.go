package intranet

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// CtlPool writes the CtlQueues of many connections from a few goroutines.
//
// With one WriteLoop goroutine per connection, a membership flush to N
// members makes N goroutines runnable at once. The Go scheduler has no
// priorities, so everything else the process must do soon (accepting a
// connection, sending a newcomer its Hello, reading a heartbeat) waits
// behind those N writers. At 5,000 members that wait reached seconds.
//
// A pool keeps one list of queues that have something to write, and a few
// workers (about one per core) that take a queue, write one round with a
// single non-blocking writev and put it back at the tail if more is left.
// Queues are listed by level: those holding small urgent frames
// (heartbeats, Hellos) are served first, then those holding a large one (a
// newcomer's first snapshot, which it is waiting for on a deadline), then
// the bulk (event batches). A turn at an urgent level writes only that
// queue's urgent lane. So heartbeats keep their priority across
// connections, not only within one, and newcomers get their snapshots
// ahead of the event flood to everyone else. When a socket's
// buffer is full, the rest of the round is handed to a goroutine of its
// own that waits for the peer like WriteLoop does (same stall rule); the
// queue returns to the pool when that goroutine is done. So a slow peer
// never holds a worker, and a fast one never costs a goroutine wake-up.
//
// Only plain TCP connections on Linux can be attached (see Attach); the
// others keep a WriteLoop goroutine.
type CtlPool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	lists  [nLevels]fifo // queues to serve, by level
	closed bool
	wg     sync.WaitGroup // workers
	slow   sync.WaitGroup // writers waiting on a full socket
}

// fifo is a queue of CtlQueues.
type fifo struct {
	items []*CtlQueue
	head  int
}

func (f *fifo) push(q *CtlQueue) { f.items = append(f.items, q) }

func (f *fifo) pop() *CtlQueue {
	if f.head == len(f.items) {
		return nil
	}
	q := f.items[f.head]
	f.items[f.head] = nil
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head > 1024 && f.head > len(f.items)/2 {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	return q
}

// NewCtlPool starts a pool of workers goroutines (at least 1).
func NewCtlPool(workers int) *CtlPool {
	p := &CtlPool{}
	p.cond = sync.NewCond(&p.mu)
	for range max(1, workers) {
		p.wg.Add(1)
		go p.worker()
	}
	return p
}

// Close stops the workers once every queue handed to them is served and
// waits for them and for the writers on full sockets. Close the attached
// queues (and wait for their Done) first. Safe twice.
func (p *CtlPool) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.slow.Wait()
}

// Levels of service, served in this order.
const (
	levelHeartbeat = iota // small urgent frames: heartbeats, Hellos
	levelSnapshot         // a large urgent frame: a newcomer's first snapshot
	levelBulk             // the rest: event batches, resyncs, last frames
	nLevels
)

// push schedules q at level; q.mu is held (lock order: q.mu, then p.mu).
func (p *CtlPool) push(q *CtlQueue, level int) {
	p.mu.Lock()
	p.lists[level].push(q)
	p.cond.Signal()
	p.mu.Unlock()
}

func (p *CtlPool) worker() {
	defer p.wg.Done()
	p.mu.Lock()
	for {
		var q *CtlQueue
		level := 0
		for ; level < nLevels && q == nil; level++ {
			q = p.lists[level].pop()
		}
		level--
		if q == nil {
			if p.closed {
				p.mu.Unlock()
				return
			}
			p.cond.Wait()
			continue
		}
		p.mu.Unlock()
		q.serve(level)
		p.mu.Lock()
	}
}

// pooled is a CtlQueue's state while attached to a pool; guarded by the
// queue's mu except where noted.
type pooled struct {
	pool   *CtlPool
	conn   net.Conn
	raw    syscall.RawConn
	stall  time.Duration
	stop   <-chan struct{}
	busy   bool          // a worker or a slow writer owns the queue
	in     [nLevels]bool // listed in pool.lists[level]
	ended  bool
	err    error
	round  [][]byte // owner only
	iov    []iovec  // owner only
	wrote  int      // owner only: bytes of round written
	target int      // owner only: bytes in round
}

// errNotPoolable: the connection has no raw socket for non-blocking writes.
var errNotPoolable = errors.New("intranet: connection cannot be written by a pool")

// Attach hands the writing of q to pool p: frames are written to c by the
// pool's workers, with no goroutine of q's own, until q is closed and
// drained, stop is closed, or a write fails. A write that makes no progress
// for stall fails as in WriteLoop. Then the pool closes c (so the
// connection's reader ends too) and Done; Err returns the write error, if
// any.
//
// It returns false, changing nothing, when c is not a plain TCP connection
// on Linux (TLS for example): run WriteLoop then. Call it at most once,
// and never together with WriteLoop.
func (q *CtlQueue) Attach(p *CtlPool, c net.Conn, stall time.Duration, stop <-chan struct{}) bool {
	raw, ok := rawConn(c)
	if !ok || p == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pl = &pooled{pool: p, conn: c, raw: raw, stall: stall, stop: stop}
	q.scheduleLocked()
	return true
}

// Err is the write error that ended an attached queue, once Done is
// closed (nil after a clean end).
func (q *CtlQueue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pl == nil {
		return nil
	}
	return q.pl.err
}

// hiMax is the most urgent bytes a queue may hold to be listed at the
// heartbeat level: heartbeats and Hellos, not a newcomer's first snapshot
// (urgent within its queue, so that it precedes heartbeats, but as large
// as the member list), which is listed at the snapshot level.
const hiMax = 4 << 10

// scheduleLocked lists q in its pool if it has something to write and
// nobody owns it: at the heartbeat level for a few small urgent frames, at
// the snapshot level for a large urgent frame, else at the bulk level. A
// queue is listed at most once per level, and only at the most urgent
// level that applies (a turn there reschedules what it leaves). q.mu is
// held.
func (q *CtlQueue) scheduleLocked() {
	pl := q.pl
	if pl.busy || pl.ended {
		return
	}
	level := levelBulk
	switch {
	case len(q.urgent) > 0 && q.urgentLen <= hiMax:
		level = levelHeartbeat
	case len(q.urgent) > 0:
		level = levelSnapshot
	case len(q.bulk) > 0 || q.closing:
	default:
		return
	}
	for l := range level + 1 {
		if pl.in[l] {
			return // served at least as soon as needed
		}
	}
	pl.in[level] = true
	pl.pool.push(q, level)
}

// serve writes one round of q for a worker, which took it from the list
// of level.
func (q *CtlQueue) serve(level int) {
	q.mu.Lock()
	pl := q.pl
	pl.in[level] = false
	if pl.busy || pl.ended {
		q.mu.Unlock()
		return // its owner reschedules it
	}
	pl.busy = true
	q.mu.Unlock()

	select {
	case <-pl.stop:
		q.end(nil)
		return
	default:
	}
	var end bool
	// A turn at an urgent level writes only the urgent lane: heartbeats,
	// greetings and first snapshots of many connections go out before
	// anyone's bulk.
	round := ctlRound
	if level != levelBulk {
		round = 0
	}
	pl.round, end = q.takeRound(pl.round[:0], round)
	if len(pl.round) > 0 {
		pl.target = 0
		for _, b := range pl.round {
			pl.target += len(b)
		}
		var err error
		pl.wrote, pl.iov, err = writevNow(pl.raw, pl.round, pl.iov)
		if err != nil {
			q.end(err)
			return
		}
		if pl.wrote < pl.target {
			// The socket is full: wait for the peer on a goroutine of
			// its own, never on a worker.
			rest, skip := net.Buffers(pl.round), pl.wrote
			for skip >= len(rest[0]) {
				skip -= len(rest[0])
				rest = rest[1:]
			}
			rest[0] = rest[0][skip:]
			pl.pool.slow.Add(1)
			go q.writeSlow(rest, end)
			return
		}
		clear(pl.round)
	}
	if end {
		q.end(nil)
		return
	}
	q.release()
}

// writeSlow finishes a round on a full socket, then gives q back.
func (q *CtlQueue) writeSlow(rest net.Buffers, end bool) {
	pl := q.pl
	defer pl.pool.slow.Done()
	var armed time.Time
	err := writeAll(pl.conn, rest, pl.stall, &armed)
	// Non-blocking writes ahead must not see this write's deadline expire.
	_ = pl.conn.SetWriteDeadline(time.Time{})
	clear(pl.round)
	if err != nil || end {
		q.end(err)
		return
	}
	q.release()
}

// release ends the owner's turn, listing q again if more is queued.
func (q *CtlQueue) release() {
	q.mu.Lock()
	q.pl.busy = false
	q.scheduleLocked()
	q.mu.Unlock()
}

// end finishes an attached queue: no more writes, the connection closed
// (so its reader ends too), Done closed.
func (q *CtlQueue) end(err error) {
	q.mu.Lock()
	pl := q.pl
	pl.ended, pl.err = true, err
	q.closing = true
	clear(q.urgent)
	clear(q.bulk)
	q.urgent, q.bulk, q.urgentLen, q.bulkLen, q.last = nil, nil, 0, 0, nil
	clear(pl.round)
	q.mu.Unlock()
	_ = pl.conn.Close()
	close(q.done)
}
