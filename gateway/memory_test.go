package gateway_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// BenchmarkIdleClientMemory reports the memory the gateway process holds
// per logged-in idle client: heap in use plus goroutine stacks, measured
// before and after 2000 clients log in and go quiet. The clients' own side
// of the sockets lives in the same process and is counted too (a raw
// net.Conn each, no reader buffers), so the figure is an upper bound.
func BenchmarkIdleClientMemory(b *testing.B) {
	const clients = 2000
	e := newEnv(b, 1)
	e.startGame(lobbyType)
	e.ready()
	tickets := make([]string, clients)
	for i := range tickets {
		tickets[i] = fmt.Sprintf("idle-%d", i)
	}
	addr := e.gws[0].Addrs().Client
	var tks [][]byte
	for _, a := range tickets {
		t := e.loginTicket(a)
		tks = append(tks, wire.AppendLogin(nil, t.Account, t.Token))
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		before := memInUse()
		conns := make([]net.Conn, 0, clients)
		ack := make([]byte, 64)
		for _, f := range tks {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Write(f)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(ack); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		waitFor(b, 10*time.Second, "all logged in", func() bool { return e.gws[0].NumClients() == clients })
		after := memInUse()
		b.ReportMetric(float64(after-before)/clients, "B/client")
		b.ReportMetric(0, "ns/op")
		b.StopTimer()
		for _, c := range conns {
			c.Close()
		}
		waitFor(b, 20*time.Second, "all gone", func() bool { return e.gws[0].NumClients() == 0 })
		b.StartTimer()
	}
}

func memInUse() int64 {
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
