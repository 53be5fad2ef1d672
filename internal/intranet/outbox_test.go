package intranet

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestOutboxLimitAndFlush(t *testing.T) {
	o := NewOutbox(10)
	if !o.Append([]byte("12345")) || !o.Append([]byte("67890")) {
		t.Fatal("appends within the limit refused")
	}
	if o.Append([]byte("x")) {
		t.Fatal("append over the limit accepted")
	}
	if !o.Force([]byte("forced")) {
		t.Fatal("force refused")
	}
	if o.AppendWith(1, func([]byte) {}) {
		t.Fatal("append accepted while a forced frame holds the queue over its limit")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan []byte)
	go func() { all, _ := io.ReadAll(b); got <- all }()
	done := make(chan error)
	go func() { done <- o.WriteLoop(a, time.Second, nil) }()
	o.CloseWith([]byte("bye"))
	if o.Append([]byte("late")) || o.Force([]byte("late")) {
		t.Fatal("append after close accepted")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Close()
	if all := <-got; !bytes.Equal(all, []byte("1234567890forcedbye")) {
		t.Fatalf("wrote %q", all)
	}
	o.Close() // safe twice
	select {
	case <-o.Done():
	default:
		t.Fatal("Done not closed after WriteLoop returned")
	}
}

func TestOutboxStopAndWriteError(t *testing.T) {
	o := NewOutbox(1 << 10)
	a, b := net.Pipe()
	b.Close() // writes fail
	defer a.Close()
	done := make(chan error)
	go func() { done <- o.WriteLoop(a, time.Second, nil) }()
	o.Append([]byte("x"))
	if err := <-done; err == nil {
		t.Fatal("write error not returned")
	}

	o2 := NewOutbox(1 << 10)
	stop := make(chan struct{})
	go func() { done <- o2.WriteLoop(a, time.Second, stop) }()
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestOutboxDirectWritesKeepOrder has producers write directly to an idle
// TCP connection while others queue behind a busy one, with a tiny socket
// buffer and a slow reader so that direct writes are cut short: every
// byte arrives, each producer's frames in its order.
func TestOutboxDirectWritesKeepOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_ = w.(*net.TCPConn).SetWriteBuffer(4096)
	r := <-accepted
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)

	const producers, frames, size = 4, 2000, 40
	o := NewOutbox(64 << 20)
	done := make(chan error, 1)
	go func() { done <- o.WriteLoop(w, 10*time.Second, nil) }()
	go func() {
		for p := 0; p < producers; p++ {
			go func() {
				for i := 0; i < frames; i++ {
					f := bytes.Repeat([]byte{byte(p)}, size)
					f[1], f[2] = byte(i>>8), byte(i)
					if !o.Append(f) {
						t.Error("append refused")
						return
					}
				}
			}()
		}
	}()
	next := make([]int, producers)
	buf := make([]byte, size)
	for got := 0; got < producers*frames; got++ {
		if got%500 == 0 {
			time.Sleep(time.Millisecond) // let the socket buffers fill
		}
		_ = r.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
		p := int(buf[0])
		if p >= producers || int(buf[1])<<8|int(buf[2]) != next[p] {
			t.Fatalf("frame %d: producer %d frame %d, want frame %d", got, p, int(buf[1])<<8|int(buf[2]), next[min(p, producers-1)])
		}
		next[p]++
	}
	o.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// countConn counts Writes and the bytes they carry.
type countConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	bytes  int
}

func (c *countConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.bytes += len(b)
	c.mu.Unlock()
	return len(b), nil
}

func (c *countConn) SetWriteDeadline(time.Time) error { return nil }

func (c *countConn) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.bytes
}

// Producers made runnable together (a poll that found many sockets
// readable) get their frames into one write: the writer's wake-up does not
// run it ahead of them after the first frame. Without the yield the
// writer ran first after every append and wrote one frame each time.
func TestOutboxCoalescesProducersWokenTogether(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one P: the run queue order decides
	const n = 200
	o := NewOutbox(1 << 20)
	c := &countConn{}
	stop := make(chan struct{})
	loop := make(chan error, 1)
	go func() { loop <- o.WriteLoop(c, time.Second, stop) }()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			o.Append([]byte("0123456789"))
		}()
	}
	close(start)
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, b := c.counts()
		if b == 10*n {
			if w > n/10 {
				t.Fatalf("%d frames took %d writes, want at most %d", n, w, n/10)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bytes written", b, 10*n)
		}
		runtime.Gosched()
	}
	close(stop)
	<-loop
}
