package node

import "sync"

// dispatcher runs callbacks one at a time, in the order they were queued,
// on its own goroutine, so user code never runs under the node's locks and
// never blocks the connection reader. The queue is unbounded: callbacks are
// expected to be quick.
type dispatcher struct {
	mu     sync.Mutex // guards queue, closed
	queue  []func()
	closed bool
	signal chan struct{}
	done   chan struct{}
}

func newDispatcher() *dispatcher {
	d := &dispatcher{signal: make(chan struct{}, 1), done: make(chan struct{})}
	go d.loop()
	return d
}

func (d *dispatcher) post(f func()) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.queue = append(d.queue, f)
	select { // under mu, so close cannot race the send
	case d.signal <- struct{}{}:
	default:
	}
	d.mu.Unlock()
}

func (d *dispatcher) loop() {
	defer close(d.done)
	for {
		_, ok := <-d.signal
		for {
			d.mu.Lock()
			q := d.queue
			d.queue = nil
			d.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, f := range q {
				f()
			}
		}
		if !ok {
			return
		}
	}
}

// close runs what is queued, then stops; safe twice; waits.
func (d *dispatcher) close() {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.signal)
	}
	d.mu.Unlock()
	<-d.done
}
