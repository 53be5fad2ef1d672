package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/internal/lograte"
)

// storeQueue runs Redis writes off the data path, in order, on a few
// background goroutines: a rebind's record, a session's end. A full queue
// drops the job (the next refresh re-asserts the state) and says so.
type storeQueue struct {
	log     logrus.FieldLogger
	timeout time.Duration
	jobs    chan func(context.Context)
	wg      sync.WaitGroup
	drops   *lograte.Limiter
}

const storeWorkers = 4

func newStoreQueue(log logrus.FieldLogger, timeout time.Duration) *storeQueue {
	return &storeQueue{log: log, timeout: timeout, jobs: make(chan func(context.Context), 8192), drops: lograte.New(10 * time.Second)}
}

// enqueue schedules job; it never blocks. false: the queue was full and
// the job was dropped.
func (q *storeQueue) enqueue(job func(context.Context)) bool {
	select {
	case q.jobs <- job:
		return true
	default:
		q.drops.Warn(q.log, "Redis write queue full; a write was skipped (the periodic refresh restores the state)")
		return false
	}
}

// run works until stop, then returns (drain finishes what is queued).
func (q *storeQueue) run(stop <-chan struct{}) {
	for i := 0; i < storeWorkers; i++ {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for {
				select {
				case job := <-q.jobs:
					q.do(job)
				case <-stop:
					return
				}
			}
		}()
	}
	q.wg.Wait()
}

func (q *storeQueue) do(job func(context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	job(ctx)
}

// drain runs what is still queued (after run returned), each job once.
func (q *storeQueue) drain() {
	for {
		select {
		case job := <-q.jobs:
			q.do(job)
		default:
			return
		}
	}
}
