package gateway

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// rateLog writes at most one line per period for one kind of event, with
// the number of events since the last line, so abuse cannot flood the log.
type rateLog struct {
	every time.Duration
	mu    sync.Mutex // guards last, n
	last  time.Time
	n     int
}

func newRateLog(every time.Duration) *rateLog { return &rateLog{every: every} }

// Warn logs msg on log when the period passed, with the count of
// suppressed events.
func (r *rateLog) Warn(log logrus.FieldLogger, msg string) {
	r.mu.Lock()
	r.n++
	now := time.Now()
	if now.Sub(r.last) < r.every {
		r.mu.Unlock()
		return
	}
	n := r.n
	r.last, r.n = now, 0
	r.mu.Unlock()
	if n > 1 {
		log = log.WithField("events", n)
	}
	log.Warn(msg)
}
