package node

import (
	"time"
)

// cause is why an attempt to join the cluster failed.
type cause int

const (
	causeRedis       cause = iota + 1 // the leader record could not be read
	causeNoLeader                     // no leader record is published
	causeStaleRecord                  // the record names a leader older than one seen
	causeUnreachable                  // the published leader could not be dialled
	causeRefused                      // it refused: not the leader (a standby), or shutting down
	causeAuth                         // it refused the registration's MAC: wrong secret
	causeCluster                      // it serves another cluster
	causeLost                         // the connection failed during the handshake
)

// key names the cause in rate-limited logs.
func (c cause) key() string {
	switch c {
	case causeRedis:
		return "redis"
	case causeNoLeader:
		return "no_leader"
	case causeStaleRecord:
		return "stale_record"
	case causeUnreachable:
		return "unreachable"
	case causeRefused:
		return "refused"
	case causeAuth:
		return "auth"
	case causeCluster:
		return "cluster"
	}
	return "lost"
}

// misconfig reports whether the cause is a configuration error that
// deserves a warning at once: it does not heal by waiting.
func (c cause) misconfig() bool { return c == causeAuth || c == causeCluster || c == causeStaleRecord }

// warnAfter is how long a transient cause must persist before it is
// worth a warning: a leader hand-over or a Redis blip heals sooner.
const warnAfter = 10 * time.Second

// retry is the connect loop's decision core: how long to wait after each
// outcome, and whether the cause deserves a warning. Every failure kind
// backs off exponentially from min to max; the end of a registered session
// resets the backoff, and a hand-over (the leader said it is stepping down,
// or a newer one was published) may retry at once, once. Pure and not safe
// for concurrent use: the connect loop owns it.
type retry struct {
	min, max     time.Duration
	next         time.Duration // base delay after the next failure; 0: min
	failingSince time.Time     // first failure since start or the last registration
}

// failed records an attempt that did not register and returns the base
// delay before the next attempt (to be jittered) and whether a warning for
// c is due (the caller rate-limits it further).
func (r *retry) failed(c cause, now time.Time) (delay time.Duration, warn bool) {
	if r.failingSince.IsZero() {
		r.failingSince = now
	}
	d := max(r.next, r.min)
	r.next = min(2*d, r.max)
	return min(d, r.max), c.misconfig() || now.Sub(r.failingSince) >= warnAfter
}

// failingFor is how long attempts have been failing (0 when not failing).
func (r *retry) failingFor(now time.Time) time.Duration {
	if r.failingSince.IsZero() {
		return 0
	}
	return now.Sub(r.failingSince)
}

// ended records the end of a registered session that lasted as long, and
// returns the delay before the next attempt. A session that lasted resets
// the backoff, and after a hand-over the next attempt goes at once. A
// session that ended soon after it began counts as a failure for the
// backoff, so a leader that accepts and drops at once is not hammered.
func (r *retry) ended(handover bool, lasted time.Duration) time.Duration {
	r.failingSince = time.Time{}
	if lasted < r.max {
		d := max(r.next, r.min)
		r.next = min(2*d, r.max)
		return min(d, r.max)
	}
	r.next = 0
	if handover {
		r.next = r.min // the fast retry is the one; failures back off from here
		return 0
	}
	return r.min
}
