package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks, for the whole package, that no test leaves a goroutine
// behind (Broadcast calls, Run loops).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errBoom = errors.New("boom")

func TestBroadcast(t *testing.T) {
	tests := []struct {
		name string
		n    int
		fail map[int]bool // items whose call fails at once
		// want is the error Broadcast must return (nil for success).
		want error
		// wantCancelled: the calls that did not fail saw their ctx cancelled.
		wantCancelled bool
	}{
		{name: "no items", n: 0},
		{name: "one succeeds", n: 1},
		{name: "all succeed", n: 10},
		{name: "one fails", n: 10, fail: map[int]bool{3: true}, want: errBoom, wantCancelled: true},
		{name: "only one fails", n: 1, fail: map[int]bool{0: true}, want: errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := make([]int, tt.n)
			for i := range items {
				items[i] = i
			}
			var calls, cancelled atomic.Int32
			var mu sync.Mutex
			var ctxs []context.Context // guarded by mu
			err := Broadcast(context.Background(), items, func(ctx context.Context, i int) error {
				calls.Add(1)
				mu.Lock()
				ctxs = append(ctxs, ctx)
				mu.Unlock()
				if tt.fail[i] {
					return fmt.Errorf("item %d: %w", i, errBoom)
				}
				if tt.want != nil {
					// Only a cancellation lets a healthy call finish.
					<-ctx.Done()
					cancelled.Add(1)
					return ctx.Err()
				}
				return nil
			})
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Broadcast() = %v, want %v", err, tt.want)
			}
			if int(calls.Load()) != tt.n {
				t.Fatalf("%d calls for %d items", calls.Load(), tt.n)
			}
			if tt.wantCancelled && int(cancelled.Load()) != tt.n-len(tt.fail) {
				t.Fatalf("%d calls saw a cancellation, want %d", cancelled.Load(), tt.n-len(tt.fail))
			}
			// The derived context never outlives Broadcast.
			for _, ctx := range ctxs {
				if ctx.Err() == nil {
					t.Fatal("derived context still live after Broadcast returned")
				}
			}
		})
	}
}

func TestBroadcastReturnsFirstError(t *testing.T) {
	// Item 0 fails first; the others fail only after seeing the cancel,
	// so the first error is the one returned.
	errFirst := errors.New("first")
	err := Broadcast(context.Background(), []int{0, 1, 2, 3}, func(ctx context.Context, i int) error {
		if i == 0 {
			return errFirst
		}
		<-ctx.Done()
		return fmt.Errorf("item %d: %w", i, ctx.Err())
	})
	if !errors.Is(err, errFirst) {
		t.Fatalf("Broadcast() = %v, want %v", err, errFirst)
	}
}

func TestBroadcastParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Broadcast(ctx, []string{"a", "b"}, func(ctx context.Context, _ string) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Broadcast() = %v, want context.Canceled", err)
	}
}

func TestBroadcastNilCall(t *testing.T) {
	if err := Broadcast[int](context.Background(), []int{1}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Broadcast(nil call) = %v, want ErrInvalidConfig", err)
	}
}
