package discovery

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Defaults for SyncConfig, after mgo's cluster sync loop.
const (
	// DefaultSyncInterval is the period of the scheduled full sync.
	DefaultSyncInterval = 30 * time.Second
	// DefaultSyncMinGap is the hold-off between two syncs (mgo's
	// syncShortDelay).
	DefaultSyncMinGap = 500 * time.Millisecond
)

// SyncKind tells how complete a sync was.
type SyncKind int

// Sync outcomes.
const (
	// PartialSync: the authoritative source could not be reached; the
	// loop retries after MinGap.
	PartialSync SyncKind = iota
	// CompleteSync: the view is up to date; the loop waits for the next
	// interval or a Force.
	CompleteSync
)

// String names the kind.
func (k SyncKind) String() string {
	switch k {
	case PartialSync:
		return "partial"
	case CompleteSync:
		return "complete"
	}
	return fmt.Sprintf("SyncKind(%d)", int(k))
}

// SyncConfig configures a SyncLoop.
type SyncConfig struct {
	// Interval is the period of the scheduled sync (default 30s).
	Interval time.Duration
	// MinGap is the hold-off after every sync, and so the retry delay
	// after a failed or partial one (default 500ms).
	MinGap time.Duration
	// Sync performs one synchronisation; required. It is called from the
	// Run goroutine only and must honour ctx.
	Sync func(ctx context.Context) (SyncKind, error)
	// OnResult, if set, is called from the Run goroutine after every sync.
	OnResult func(kind SyncKind, err error)
	// Synced says the caller has just completed a full sync (a node that
	// got a snapshot when it registered): Run then waits for Interval or a
	// Force before its first sync instead of syncing at once.
	Synced bool
}

// DefaultSyncConfig returns a config with the default timings; Sync must
// still be set.
func DefaultSyncConfig() SyncConfig {
	return SyncConfig{Interval: DefaultSyncInterval, MinGap: DefaultSyncMinGap}
}

// validate fills defaults for zero durations and rejects a missing Sync or
// negative durations.
func (c SyncConfig) validate() (SyncConfig, error) {
	if c.Sync == nil {
		return c, fmt.Errorf("%w: sync loop: Sync is required", ErrInvalidConfig)
	}
	if c.Interval < 0 || c.MinGap < 0 {
		return c, fmt.Errorf("%w: sync loop: negative Interval (%v) or MinGap (%v)", ErrInvalidConfig, c.Interval, c.MinGap)
	}
	if c.Interval == 0 {
		c.Interval = DefaultSyncInterval
	}
	if c.MinGap == 0 {
		c.MinGap = DefaultSyncMinGap
	}
	return c, nil
}

// SyncLoop keeps something in sync the way mgo's syncServersLoop keeps its
// cluster topology: sync, discard the force requests the sync just
// satisfied, hold off for MinGap, then wait for the next Interval or a
// Force. A failed or partial sync is retried after the hold-off instead.
//
// Concurrency: Run is the owning goroutine; Force and Syncs are safe from
// any goroutine and never block (Force is a non-blocking send on a channel
// of capacity 1, so forces made before the next sync collapse into one).
type SyncLoop struct {
	cfg   SyncConfig
	force chan struct{} // capacity 1: a pending force request
	syncs atomic.Uint64 // completed iterations
}

// NewSyncLoop validates cfg, fills its defaults and returns a loop that is
// not yet running.
func NewSyncLoop(cfg SyncConfig) (*SyncLoop, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &SyncLoop{cfg: cfg, force: make(chan struct{}, 1)}, nil
}

// Force requests a sync soon (after the current hold-off). It never blocks;
// requests made before the next sync starts collapse into one, and requests
// made while a sync runs are taken as satisfied by it.
func (l *SyncLoop) Force() {
	select {
	case l.force <- struct{}{}:
	default:
	}
}

// Syncs returns the number of completed iterations (Sync returned and
// OnResult ran).
func (l *SyncLoop) Syncs() uint64 { return l.syncs.Load() }

// Run syncs at once and then as described on SyncLoop until ctx is done.
// It blocks; call it once, from its own goroutine. Waits end early when ctx
// is done; a Sync in progress is only interrupted through its ctx.
func (l *SyncLoop) Run(ctx context.Context) {
	if l.cfg.Synced && !l.waitNext(ctx) {
		return
	}
	for ctx.Err() == nil {
		kind, err := l.cfg.Sync(ctx)

		// We just synchronised, so consume any outstanding request.
		select {
		case <-l.force:
		default:
		}
		if l.cfg.OnResult != nil {
			l.cfg.OnResult(kind, err)
		}
		l.syncs.Add(1)

		// Hold off before allowing another sync.
		if !sleepCtx(ctx, l.cfg.MinGap) {
			return
		}
		if err != nil || kind != CompleteSync {
			continue // retry now that the hold-off has passed
		}

		if !l.waitNext(ctx) {
			return
		}
	}
}

// waitNext waits for the next scheduled sync or a Force; false means ctx
// ended.
func (l *SyncLoop) waitNext(ctx context.Context) bool {
	timer := time.NewTimer(l.cfg.Interval)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-l.force:
		return true
	case <-timer.C:
		return true
	}
}

// sleepCtx waits for d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
