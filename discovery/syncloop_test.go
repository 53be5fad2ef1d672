package discovery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func completeSync(context.Context) (SyncKind, error) { return CompleteSync, nil }

// startLoop runs l in a goroutine; the returned stop cancels it and waits.
func startLoop(t *testing.T, l *SyncLoop) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

func TestNewSyncLoopConfig(t *testing.T) {
	tests := []struct {
		name         string
		cfg          SyncConfig
		wantErr      bool
		wantInterval time.Duration
		wantGap      time.Duration
	}{
		{name: "missing sync", cfg: SyncConfig{Interval: time.Second}, wantErr: true},
		{name: "negative interval", cfg: SyncConfig{Sync: completeSync, Interval: -1}, wantErr: true},
		{name: "negative gap", cfg: SyncConfig{Sync: completeSync, MinGap: -1}, wantErr: true},
		{name: "defaults", cfg: SyncConfig{Sync: completeSync}, wantInterval: 30 * time.Second, wantGap: 500 * time.Millisecond},
		{name: "default config", cfg: func() SyncConfig { c := DefaultSyncConfig(); c.Sync = completeSync; return c }(), wantInterval: DefaultSyncInterval, wantGap: DefaultSyncMinGap},
		{name: "custom", cfg: SyncConfig{Sync: completeSync, Interval: time.Minute, MinGap: time.Second}, wantInterval: time.Minute, wantGap: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewSyncLoop(tt.cfg)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) || l != nil {
					t.Fatalf("NewSyncLoop() = %v, %v; want nil, ErrInvalidConfig", l, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.cfg.Interval != tt.wantInterval || l.cfg.MinGap != tt.wantGap {
				t.Fatalf("Interval, MinGap = %v, %v; want %v, %v", l.cfg.Interval, l.cfg.MinGap, tt.wantInterval, tt.wantGap)
			}
		})
	}
}

func TestSyncLoopForceTriggersSync(t *testing.T) {
	l, err := NewSyncLoop(SyncConfig{Interval: time.Hour, MinGap: time.Millisecond, Sync: completeSync})
	if err != nil {
		t.Fatal(err)
	}
	stop := startLoop(t, l)
	defer stop()
	waitFor(t, "the initial sync", func() bool { return l.Syncs() == 1 })
	for want := uint64(2); want <= 4; want++ {
		l.Force()
		// The interval is an hour: only the force can explain a sync.
		waitFor(t, "a forced sync", func() bool { return l.Syncs() == want })
	}
}

func TestSyncLoopForcesCollapse(t *testing.T) {
	var calls atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	l, err := NewSyncLoop(SyncConfig{
		Interval: time.Hour,
		MinGap:   time.Millisecond,
		Sync: func(ctx context.Context) (SyncKind, error) {
			if calls.Add(1) == 2 {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
					return PartialSync, ctx.Err()
				}
			}
			return CompleteSync, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Forces before the first sync collapse into one pending request, which
	// that sync satisfies.
	for range 5 {
		l.Force()
	}
	if n := len(l.force); n != 1 {
		t.Fatalf("%d pending forces, want 1", n)
	}
	stop := startLoop(t, l)
	defer stop()
	waitFor(t, "the initial sync", func() bool { return l.Syncs() == 1 })
	if n := len(l.force); n != 0 {
		t.Fatalf("%d forces still pending after a sync", n)
	}

	// Forces during a sync collapse too and are consumed by it.
	for range 5 {
		l.Force()
	}
	<-entered
	for range 5 {
		l.Force()
	}
	if n := len(l.force); n != 1 {
		t.Fatalf("%d pending forces during a sync, want 1", n)
	}
	close(release)
	waitFor(t, "the forced sync", func() bool { return l.Syncs() == 2 })
	if n := len(l.force); n != 0 {
		t.Fatalf("%d forces still pending after a sync", n)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d syncs, want 2", n)
	}

	// The loop still answers the next force.
	l.Force()
	waitFor(t, "a third sync", func() bool { return l.Syncs() == 3 })
}

func TestSyncLoopRetries(t *testing.T) {
	errSync := errors.New("sync failed")
	type result struct {
		kind SyncKind
		err  error
	}
	tests := []struct {
		name    string
		results []result // then CompleteSync forever
	}{
		{"partial", []result{{PartialSync, nil}}},
		{"error", []result{{CompleteSync, errSync}}},
		{"partial then error", []result{{PartialSync, nil}, {PartialSync, errSync}, {PartialSync, nil}}},
	}
	const gap = 20 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var starts []time.Time // guarded by mu
			var seen []result      // guarded by mu
			var calls int          // only touched by the Run goroutine
			l, err := NewSyncLoop(SyncConfig{
				Interval: time.Hour,
				MinGap:   gap,
				Sync: func(context.Context) (SyncKind, error) {
					mu.Lock()
					starts = append(starts, time.Now())
					mu.Unlock()
					calls++
					if calls <= len(tt.results) {
						r := tt.results[calls-1]
						return r.kind, r.err
					}
					return CompleteSync, nil
				},
				OnResult: func(kind SyncKind, err error) {
					mu.Lock()
					seen = append(seen, result{kind, err})
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			stop := startLoop(t, l)
			want := uint64(len(tt.results) + 1)
			// No force and an hour's interval: only retries explain these.
			waitFor(t, "the retries", func() bool { return l.Syncs() >= want })
			stop()

			mu.Lock()
			defer mu.Unlock()
			for i := 1; i < int(want); i++ {
				if d := starts[i].Sub(starts[i-1]); d < gap {
					t.Fatalf("retry %d came %v after the previous sync, want >= %v", i, d, gap)
				}
			}
			for i, r := range tt.results {
				if seen[i].kind != r.kind || !errors.Is(seen[i].err, r.err) {
					t.Fatalf("OnResult #%d = %v, want %v", i, seen[i], r)
				}
			}
			if last := seen[len(tt.results)]; last.kind != CompleteSync || last.err != nil {
				t.Fatalf("final OnResult = %v, want a complete sync", last)
			}
		})
	}
}

func TestSyncLoopInterval(t *testing.T) {
	l, err := NewSyncLoop(SyncConfig{Interval: 2 * time.Millisecond, MinGap: time.Millisecond, Sync: completeSync})
	if err != nil {
		t.Fatal(err)
	}
	stop := startLoop(t, l)
	defer stop()
	waitFor(t, "periodic syncs", func() bool { return l.Syncs() >= 3 })
}

func TestSyncLoopCancel(t *testing.T) {
	tests := []struct {
		name string
		// block makes Sync wait for ctx; otherwise it completes at once.
		block bool
		// before cancels before Run starts.
		before bool
		// wantSyncs is the count of completed syncs when Run returns.
		wantSyncs int
	}{
		{name: "before run", before: true, wantSyncs: 0},
		{name: "while waiting for the interval", wantSyncs: 1},
		{name: "during a sync", block: true, wantSyncs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			l, err := NewSyncLoop(SyncConfig{
				Interval: time.Hour,
				MinGap:   time.Millisecond,
				Sync: func(ctx context.Context) (SyncKind, error) {
					started <- struct{}{}
					if tt.block {
						<-ctx.Done()
						return PartialSync, ctx.Err()
					}
					return CompleteSync, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.before {
				cancel()
			}
			done := make(chan struct{})
			go func() { defer close(done); l.Run(ctx) }()
			if !tt.before {
				<-started
				if !tt.block {
					waitFor(t, "the first sync", func() bool { return l.Syncs() == 1 })
				}
				cancel()
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			cancel()
			if got := l.Syncs(); got != uint64(tt.wantSyncs) {
				t.Fatalf("Syncs() = %d, want %d", got, tt.wantSyncs)
			}
		})
	}
}

func TestSyncLoopSyncedWaitsForForce(t *testing.T) {
	started := make(chan struct{}, 4)
	l, err := NewSyncLoop(SyncConfig{
		Interval: time.Hour, MinGap: time.Millisecond, Synced: true,
		Sync: func(context.Context) (SyncKind, error) { started <- struct{}{}; return CompleteSync, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// A loop that ignored Synced would sync at once; give it the chance.
	select {
	case <-started:
		t.Fatal("a loop started as synced synced without being asked")
	case <-time.After(200 * time.Millisecond): // observation window, not synchronisation
	}
	l.Force()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("forced sync did not run")
	}
}
