package gateway_test

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/node"
)

// BenchmarkCall measures node-to-node calls through a gateway with 100
// concurrent callers — calls per second (calls/s) and the p99 round trip
// — against one-way node messages in the same setup (msgs/s: 100 senders,
// counted at the receiver). Both run in one process here; the figures are
// relative, not an operator's measure.
func BenchmarkCall(b *testing.B) {
	const callers = 100
	payload := common.Raw(make([]byte, 64))
	b.Run("op=call", func(b *testing.B) {
		e := newEnv(b, 1)
		callee := e.startCallee(func(_ context.Context, _ common.Member, _ uint64, data []byte) ([]byte, error) {
			return data, nil
		})
		caller := e.startCallee(nil)
		e.linked(callee, caller)
		var next atomic.Int64
		lat := make([][]time.Duration, callers)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var reply common.Raw
				for next.Add(1) <= int64(b.N) {
					t0 := time.Now()
					if err := caller.Call(context.Background(), callee.GetID(), 1, &payload, &reply); err != nil {
						b.Error(err)
						return
					}
					lat[i] = append(lat[i], time.Since(t0))
				}
			}(i)
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		if len(all) > 0 {
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		}
	})
	b.Run("op=send", func(b *testing.B) {
		e := newEnv(b, 1)
		var got atomic.Int64
		done := make(chan struct{})
		n, err := node.New(e.nodeConfig(callType, 7))
		if err != nil {
			b.Fatal(err)
		}
		n.RegisterFuncOnRelayMsg(func(common.NodeType, common.Member, string, uint64, []byte) {
			if got.Add(1) == int64(b.N) {
				close(done)
			}
		})
		n.EnableMessageRelay(true)
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		sender := e.startCallee(nil)
		e.linked(n, sender)
		var next atomic.Int64
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < callers; i++ {
			go func() {
				for next.Add(1) <= int64(b.N) {
					for sender.SendByID(n.GetID(), 1, &payload) != nil {
						time.Sleep(time.Millisecond) // queue full: let it drain
					}
				}
			}()
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("%d of %d messages arrived", got.Load(), b.N)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}
