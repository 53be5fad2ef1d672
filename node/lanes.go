package node

import (
	"hash/maphash"
	"sync"
	"time"
)

// laneCount is how many lanes the relay's callbacks run on. A handler that
// blocks (a Call made from it, a slow database write) holds up only the
// accounts and senders of its lane.
const laneCount = 16

// laneLimit is how many callbacks may wait in all lanes before the gateway
// links stop reading: the backpressure reaches the gateways, and through
// them the players, instead of the node's memory growing without bound.
const laneLimit = 8192

// lanes runs the relay's user callbacks (relayed messages, lose-account,
// disconnect, resume, undeliverable) off the gateway links' readers, so a
// link keeps reading its call replies, acknowledgements and pings while a
// handler runs or waits on a Call. (A link's reader may claim an idle
// lane and run one callback itself, handing its reading to a new goroutine
// if the callback takes long: see claim and gwLink.runInline.) Callbacks
// with the same key (an account, or the node that sent a message) run one
// at a time in the order they were posted; different keys run concurrently. A lane has a goroutine
// while it has work and for laneIdle after, so a steady trickle of
// messages wakes a parked goroutine rather than starting one per message.
type lanes struct {
	seed maphash.Seed
	ls   [laneCount]lane
	wg   sync.WaitGroup // callbacks posted and not yet run
	gwg  sync.WaitGroup // lane goroutines
	quit chan struct{}  // closed by close: idle lane goroutines exit

	mu     sync.Mutex // guards queued, room, closed
	queued int
	room   chan struct{} // closed while queued < laneLimit
	closed bool
}

type lane struct {
	mu      sync.Mutex // guards q, running, idle, inline
	q       []func()
	running bool          // the lane has a goroutine
	idle    bool          // which waits on wake
	inline  bool          // a claim: a link's reader runs one of the lane's callbacks itself
	wake    chan struct{} // cap 1
}

// laneIdle is how long a lane's goroutine waits for more work before it
// exits.
const laneIdle = time.Second

func newLanes() *lanes {
	q := &lanes{seed: maphash.MakeSeed(), room: make(chan struct{}), quit: make(chan struct{})}
	for i := range q.ls {
		q.ls[i].wake = make(chan struct{}, 1)
	}
	close(q.room)
	return q
}

// post queues f on the lane of key. It never blocks, so it may be called
// under the relay's lock, which is what keeps a player's callbacks in the
// order the relay decided them. After a closed lanes, f is dropped.
func (q *lanes) post(key string, f func()) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.admitLocked()
	q.mu.Unlock()
	l := q.lane(key)
	l.mu.Lock()
	l.q = append(l.q, f)
	if l.inline {
		// The claimant hands the queue on when its callback returns.
		l.mu.Unlock()
		return
	}
	if l.running {
		idle := l.idle
		l.idle = false
		l.mu.Unlock()
		if idle {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	l.running = true
	l.mu.Unlock()
	q.gwg.Add(1)
	go q.drain(l)
}

// drain runs l's callbacks until its queue stays empty for laneIdle.
func (q *lanes) drain(l *lane) {
	defer q.gwg.Done()
	var t *time.Timer
	for {
		l.mu.Lock()
		var batch []func()
		if !l.inline { // else what is queued waits for the claim's callback
			batch, l.q = l.q, nil
		}
		if len(batch) == 0 {
			l.idle = true
			l.mu.Unlock()
			if t == nil {
				t = time.NewTimer(laneIdle)
			} else {
				t.Reset(laneIdle)
			}
			select {
			case <-l.wake:
				continue
			case <-t.C:
			case <-q.quit:
			}
			l.mu.Lock()
			if l.idle { // nothing was posted meanwhile
				l.idle, l.running = false, false
				l.mu.Unlock()
				t.Stop()
				return
			}
			l.mu.Unlock()
			continue
		}
		l.mu.Unlock()
		for i, f := range batch {
			batch[i] = nil
			f()
			q.done()
		}
	}
}

// claim reserves key's lane for a callback its caller runs itself, with
// run, when the lane is idle: nothing queued and no callback running. It
// is taken in the same place post would be called (under the relay's
// lock), so callbacks posted for the key after it wait for the claimed one
// and run in order. It returns nil, reserving nothing, when the lane is
// busy or the lanes are closed: then post.
func (q *lanes) claim(key string) *lane {
	l := q.lane(key)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	l.mu.Lock()
	if l.inline || len(l.q) > 0 || (l.running && !l.idle) {
		l.mu.Unlock()
		return nil
	}
	l.inline = true
	l.mu.Unlock()
	q.admitLocked()
	return l
}

// lane is key's lane.
func (q *lanes) lane(key string) *lane { return &q.ls[maphash.String(q.seed, key)%laneCount] }

// admitLocked counts one more callback waiting or running; q.mu is held
// (close waits for the callbacks counted under it).
func (q *lanes) admitLocked() {
	q.queued++
	if q.queued == laneLimit {
		q.room = make(chan struct{})
	}
	q.wg.Add(1)
}

// run runs f, the callback of the claim on l, on the caller's goroutine,
// then releases the claim: what was posted to the lane meanwhile goes to
// the lane's goroutine.
func (q *lanes) run(l *lane, f func()) {
	defer func() {
		q.done()
		l.mu.Lock()
		l.inline = false
		switch {
		case len(l.q) == 0:
		case l.running && l.idle:
			l.idle = false
			select {
			case l.wake <- struct{}{}:
			default:
			}
		case !l.running:
			l.running = true
			q.gwg.Add(1)
			go q.drain(l)
		}
		l.mu.Unlock()
	}()
	f()
}

func (q *lanes) done() {
	q.mu.Lock()
	q.queued--
	if q.queued == laneLimit-1 {
		close(q.room)
	}
	q.mu.Unlock()
	q.wg.Done()
}

// wait returns once fewer than laneLimit callbacks are queued, or when stop
// closes, and how long it blocked (0 without reading the clock when it did
// not).
func (q *lanes) wait(stop <-chan struct{}) time.Duration {
	q.mu.Lock()
	room := q.room
	q.mu.Unlock()
	select {
	case <-room:
		return 0
	default:
	}
	t0 := time.Now()
	select {
	case <-room:
	case <-stop:
	}
	return time.Since(t0)
}

// close runs what is queued, refuses what comes after, and waits for the
// lanes' goroutines; safe twice.
func (q *lanes) close() {
	q.mu.Lock()
	first := !q.closed
	q.closed = true
	q.mu.Unlock()
	q.wg.Wait()
	if first {
		close(q.quit)
	}
	q.gwg.Wait()
}
