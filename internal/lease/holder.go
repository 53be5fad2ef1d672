package lease

import "time"

// Holder is the leader's knowledge of its own lease, measured on its own
// monotonic clock. Redis expires the lease TTL after it applied the last
// renewal, and that was after the renewal was sent, so the lease is
// certainly held until sent+TTL: a leader may serve until then, less a
// margin for clock-rate differences between hosts. A process that was
// paused (SIGSTOP, a VM stall, a long GC) wakes up with its monotonic clock
// advanced and finds its lease no longer provably valid, before any
// goroutine has had the chance to renew it.
//
// Holder is pure: the caller passes the times. Not safe for concurrent use.
type Holder struct {
	TTL    time.Duration // the lease's time to live
	Margin time.Duration // served less than TTL by this much (see DefaultMargin)
	Grace  time.Duration // GiveUp this long after the TTL

	held bool
	sent time.Time // send time of the last renewal or acquisition Redis confirmed
}

// DefaultMargin is the margin for a TTL: a tenth of it.
func DefaultMargin(ttl time.Duration) time.Duration { return ttl / 10 }

// Confirmed records that Redis confirmed an acquisition or renewal sent at
// sent.
func (h *Holder) Confirmed(sent time.Time) {
	if !h.held || sent.After(h.sent) {
		h.sent = sent
	}
	h.held = true
}

// Drop forgets the lease (stepped down).
func (h *Holder) Drop() { h.held = false }

// Valid reports whether the lease is provably held at now: the leader may
// accept registrations and send membership events.
func (h *Holder) Valid(now time.Time) bool {
	return h.held && now.Sub(h.sent) < h.TTL-h.Margin
}

// Unconfirmed is how long since the last confirmed renewal was sent.
func (h *Holder) Unconfirmed(now time.Time) time.Duration { return now.Sub(h.sent) }

// GiveUp reports whether renewals have gone unconfirmed for longer than
// TTL + Grace: the leader should step down.
func (h *Holder) GiveUp(now time.Time) bool {
	return h.held && now.Sub(h.sent) > h.TTL+h.Grace
}
