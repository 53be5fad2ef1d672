// Package lograte keeps logs readable under abuse and misconfiguration: a
// Limiter writes at most one line per period for each cause, and the line
// carries the number of events since the previous one, so a storm of bad
// dials or refused connections costs a few lines, not one per event.
package lograte

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultEvery is the period used by New(0).
const DefaultEvery = 10 * time.Second

// maxKeys bounds the causes remembered; keys are meant to be a small fixed
// set (the messages' constant text), so this only guards against misuse.
const maxKeys = 1024

// Limiter rate-limits log lines per key. The zero value is not usable; call
// New. Safe for concurrent use.
type Limiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex // guards keys
	keys map[string]*state
}

type state struct {
	last time.Time // when a line was last written
	n    int       // events since that line, this one included
}

// New returns a limiter writing at most one line per every (DefaultEvery
// when every <= 0) for each key.
func New(every time.Duration) *Limiter {
	if every <= 0 {
		every = DefaultEvery
	}
	return &Limiter{every: every, now: time.Now, keys: make(map[string]*state)}
}

// WithClock replaces the limiter's clock (tests); it returns l.
func (l *Limiter) WithClock(now func() time.Time) *Limiter {
	l.mu.Lock()
	l.now = now
	l.mu.Unlock()
	return l
}

// Allow counts one event of key and reports whether a line may be written
// now, with the number of events it stands for (this one and those
// suppressed since the last line).
func (l *Limiter) Allow(key string) (events int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.keys[key]
	if st == nil {
		if len(l.keys) >= maxKeys {
			clear(l.keys)
		}
		l.keys[key] = &state{last: now}
		return 1, true
	}
	st.n++
	if now.Sub(st.last) < l.every {
		return 0, false
	}
	n := st.n
	st.last, st.n = now, 0
	return n, true
}

// Warn logs msg at warning level unless a line with the same msg was
// written less than the period ago. msg is the key: keep it constant and
// put the details in log's fields. It reports whether a line was written.
func (l *Limiter) Warn(log logrus.FieldLogger, msg string) bool {
	return l.Log(log, logrus.WarnLevel, msg, msg)
}

// Log logs msg at level under key, rate-limited like Warn. A line standing
// for more than one event carries an "events" field with the count.
func (l *Limiter) Log(log logrus.FieldLogger, level logrus.Level, key, msg string) bool {
	n, ok := l.Allow(key)
	if !ok {
		return false
	}
	if n > 1 {
		log = log.WithField("events", n)
	}
	switch level {
	case logrus.ErrorLevel, logrus.FatalLevel, logrus.PanicLevel:
		log.Error(msg)
	case logrus.WarnLevel:
		log.Warn(msg)
	case logrus.InfoLevel:
		log.Info(msg)
	default:
		log.Debug(msg)
	}
	return true
}
