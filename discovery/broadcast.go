package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrInvalidConfig: a config or argument was rejected up front.
var ErrInvalidConfig = errors.New("discovery: invalid config")

// Broadcast calls call for every item concurrently, one goroutine each, and
// waits for all of them. It returns the first error a call reports (nil if
// none did) and, on that first error, cancels the context given to the other
// calls so they can give up early. The derived context is always cancelled
// before Broadcast returns, so nothing leaks; call must not keep it.
//
// With no items it returns nil at once. A nil call is rejected with an error
// wrapping ErrInvalidConfig.
func Broadcast[T any](ctx context.Context, items []T, call func(ctx context.Context, item T) error) error {
	if call == nil {
		return fmt.Errorf("%w: broadcast: nil call", ErrInvalidConfig)
	}
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error // written once, under once; read after wg.Wait
	)
	for _, item := range items {
		wg.Go(func() {
			if err := call(ctx, item); err != nil {
				once.Do(func() {
					first = err
					cancel()
				})
			}
		})
	}
	wg.Wait()
	return first
}
