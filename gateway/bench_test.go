package gateway_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/node"
)

// BenchmarkRoundTrip measures request/response round trips for K
// concurrent clients: path=relay goes client → gateway → echo node →
// gateway → client; path=raw goes to a one-hop echo server written here
// with the same framing and the same coalescing writer. Both run in the
// same process and the same run, so their ratio is the cost of the extra
// hop. internal/benchratio turns the output into "ratio K=…" lines.
func BenchmarkRoundTrip(b *testing.B) {
	for _, k := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("path=raw/K=%d", k), func(b *testing.B) {
			addr := startRawEcho(b)
			conns := make([]net.Conn, k)
			for i := range conns {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				conns[i] = c
			}
			runRoundTrips(b, conns)
		})
		b.Run(fmt.Sprintf("path=relay/K=%d", k), func(b *testing.B) {
			e := newEnv(b, 1)
			startEcho(e)
			e.startGame(lobbyType) // the login service binds a lobby
			e.ready()
			conns := make([]net.Conn, k)
			for i := range conns {
				c := e.connect(fmt.Sprintf("bench-%d", i))
				conns[i] = c.conn
			}
			runRoundTrips(b, conns)
		})
	}
}

// startEcho runs a node of echoType that sends every client message
// straight back.
func startEcho(e *env) *node.Node {
	n, err := node.New(e.nodeConfig(echoType, 1))
	if err != nil {
		e.tb.Fatal(err)
	}
	n.RegisterFuncOnRelayMsg(func(src common.NodeType, _ common.Member, account string, cmd uint64, data []byte) {
		if src == common.Client {
			_ = n.SendClientMsgByRelay(account, uint64(echoType)*1000+cmd, data)
		}
	})
	n.EnableMessageRelay(true)
	if err := n.Start(context.Background()); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { n.Close() })
	e.nodes = append(e.nodes, &gameNode{Node: n})
	return n
}

// runRoundTrips spreads b.N round trips over the connections, each doing
// one request and waiting for its reply, and reports throughput and
// latency percentiles.
func runRoundTrips(b *testing.B, conns []net.Conn) {
	k := len(conns)
	per := max(b.N/k, 1)
	lat := make([][]time.Duration, k)
	errs := make(chan error, k)
	payload := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := wire.NewReader(c, 1<<20, 4096)
			req := wire.AppendData(nil, uint64(echoType)*1000+1, payload)
			l := make([]time.Duration, 0, per)
			for j := 0; j < per; j++ {
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if k, _, err := r.ReadFrame(); err != nil || k != wire.KindClientData {
					errs <- fmt.Errorf("reply: %v %s", err, k)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "rt/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

// startRawEcho serves the client framing and echoes every data frame.
func startRawEcho(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				out := intranet.NewOutbox(256 << 10)
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() { defer close(done); _ = out.WriteLoop(c, 10*time.Second, stop) }()
				r := wire.NewReader(c, 64<<10, 1024)
				for {
					k, p, err := r.ReadFrame()
					if err != nil {
						break
					}
					if k == wire.KindClientData {
						out.AppendWith(wire.HeaderSize+len(p), func(b []byte) {
							wire.AppendHeader(b[:0], k, len(p))
							copy(b[wire.HeaderSize:], p)
						})
					}
				}
				close(stop)
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}
