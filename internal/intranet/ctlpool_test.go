//go:build linux

package intranet

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func waitDone(t *testing.T, q *CtlQueue, d time.Duration) {
	t.Helper()
	select {
	case <-q.Done():
	case <-time.After(d):
		t.Fatalf("queue not done within %v", d)
	}
}

// An attached queue writes everything in order (urgent frames ahead of
// queued bulk), then its last frame, then closes the connection and Done.
func TestCtlPoolWritesInOrderAndCloses(t *testing.T) {
	p := NewCtlPool(2)
	defer p.Close()
	a, b := tcpPair(t)
	q := NewCtlQueue(1 << 20)
	q.Bulk([]byte("b1"))
	q.Urgent([]byte("U1"))
	q.Bulk([]byte("b2"))
	if !q.Attach(p, a, time.Second, nil) {
		t.Fatal("plain TCP not attached")
	}
	q.Bulk([]byte("b3"))
	q.CloseWith([]byte("bye"))
	waitDone(t, q, 10*time.Second)
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(b) // EOF: the pool closed the connection
	if err != nil {
		t.Fatal(err)
	}
	if string(all) != "U1b1b2b3bye" {
		t.Fatalf("wrote %q", all)
	}
	if q.Bulk([]byte("late")) || q.Urgent([]byte("late")) {
		t.Fatal("frame accepted after the end")
	}
}

// Only plain TCP is attached: anything else keeps its WriteLoop.
func TestCtlPoolAttachOnlyTCP(t *testing.T) {
	p := NewCtlPool(1)
	defer p.Close()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	q := NewCtlQueue(1 << 10)
	if q.Attach(p, a, time.Second, nil) {
		t.Fatal("a pipe was attached")
	}
	if q.Attach(nil, a, time.Second, nil) {
		t.Fatal("attached to no pool")
	}
}

// A full socket buffer moves the rest of the round to a writer of its
// own: the bytes still arrive whole and in order once the peer reads, and
// shared frames are never modified.
func TestCtlPoolFullSocket(t *testing.T) {
	p := NewCtlPool(1)
	defer p.Close()
	a, b := tcpPair(t)
	q := NewCtlQueue(64 << 20)
	if !q.Attach(p, a, 5*time.Second, nil) {
		t.Fatal("not attached")
	}
	var want bytes.Buffer
	chunk := bytes.Repeat([]byte{'x'}, 1000)
	keep := bytes.Clone(chunk)
	for i := range 32000 { // 32 MB: far more than both socket buffers
		f := chunk
		if i%1000 == 0 {
			f = []byte{byte('a' + i/1000%26)}
			q.Urgent(f)
		} else {
			q.Bulk(f)
		}
		want.Write(f)
	}
	// Nothing is read yet: the pool must have met a full socket.
	got := make(chan []byte, 1)
	go func() {
		_ = b.SetReadDeadline(time.Now().Add(30 * time.Second))
		all, _ := io.ReadAll(b)
		got <- all
	}()
	q.Close()
	waitDone(t, q, 30*time.Second)
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	all := <-got
	if len(all) != want.Len() {
		t.Fatalf("read %d bytes, want %d", len(all), want.Len())
	}
	// Urgent one-byte frames may overtake bulk; the bulk bytes keep their
	// order and count.
	if n := bytes.Count(all, []byte{'x'}); n != bytes.Count(want.Bytes(), []byte{'x'}) {
		t.Fatalf("%d bulk bytes, want %d", n, bytes.Count(want.Bytes(), []byte{'x'}))
	}
	if !bytes.Equal(chunk, keep) {
		t.Fatal("a shared frame was modified")
	}
}

// A peer that reads nothing is cut off after the stall time: Done, Err
// says why, the connection is closed; and the worker was never held (a
// second queue on the same one-worker pool is written meanwhile).
func TestCtlPoolStallDoesNotHoldWorker(t *testing.T) {
	p := NewCtlPool(1)
	defer p.Close()
	a, _ := tcpPair(t)
	_ = a.SetWriteBuffer(16 << 10)
	q := NewCtlQueue(64 << 20)
	if !q.Attach(p, a, 3*time.Second, nil) {
		t.Fatal("not attached")
	}
	big := bytes.Repeat([]byte{'x'}, 4<<20)
	q.Bulk(big)

	c, d := tcpPair(t)
	q2 := NewCtlQueue(1 << 20)
	if !q2.Attach(p, c, time.Second, nil) {
		t.Fatal("not attached")
	}
	q2.Urgent([]byte("ping"))
	_ = d.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(d, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("second queue not written: %q %v", buf, err)
	}
	select {
	case <-q.Done():
		t.Fatal("the second queue was written only after the first gave up: the worker was held")
	default:
	}

	waitDone(t, q, 30*time.Second)
	if err := q.Err(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Err = %v, want a deadline error", err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("connection still open after the stall")
	}
	q2.Close()
	waitDone(t, q2, 10*time.Second)
}

// stop ends an attached queue without writing what is queued.
func TestCtlPoolStop(t *testing.T) {
	p := NewCtlPool(1)
	defer p.Close()
	a, b := tcpPair(t)
	q := NewCtlQueue(1 << 20)
	stop := make(chan struct{})
	close(stop)
	if !q.Attach(p, a, time.Second, stop) {
		t.Fatal("not attached")
	}
	q.Bulk([]byte("never"))
	waitDone(t, q, 10*time.Second)
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if all, _ := io.ReadAll(b); len(all) != 0 {
		t.Fatalf("wrote %q after stop", all)
	}
}

// Queues with an urgent frame are served before queues with only bulk,
// whatever their order: heartbeats keep priority across connections.
func TestCtlPoolUrgentQueuesFirst(t *testing.T) {
	p := &CtlPool{} // no workers: the test takes from the lists itself
	p.cond = sync.NewCond(&p.mu)
	var qs []*CtlQueue
	for range 3 {
		a, _ := tcpPair(t)
		q := NewCtlQueue(1 << 20)
		if !q.Attach(p, a, time.Second, nil) {
			t.Fatal("not attached")
		}
		q.Bulk([]byte("event"))
		qs = append(qs, q)
	}
	qs[2].Urgent([]byte("ping"))
	qs[2].Urgent([]byte("ping")) // listed once
	if q := p.lists[levelHeartbeat].pop(); q != qs[2] {
		t.Fatal("the queue with a heartbeat is not served first")
	}
	if q := p.lists[levelHeartbeat].pop(); q != nil {
		t.Fatal("a queue listed twice")
	}
	for i, want := range qs {
		if q := p.lists[levelBulk].pop(); q != want {
			t.Fatalf("bulk entry %d out of order", i)
		}
	}

	// A large urgent frame (a newcomer's first snapshot) comes after the
	// heartbeats (it must not delay other connections' ones) but before
	// the bulk: the newcomer waits for it on a deadline.
	a, _ := tcpPair(t)
	big := NewCtlQueue(1 << 20)
	if !big.Attach(p, a, time.Second, nil) {
		t.Fatal("not attached")
	}
	big.UrgentForce(make([]byte, 2*hiMax))
	big.Urgent([]byte("ping")) // behind the snapshot in its queue
	if q := p.lists[levelHeartbeat].pop(); q != nil {
		t.Fatal("a snapshot-sized urgent frame listed with the heartbeats")
	}
	if q := p.lists[levelBulk].pop(); q != nil {
		t.Fatal("a first snapshot listed with the bulk")
	}
	if q := p.lists[levelSnapshot].pop(); q != big {
		t.Fatal("the snapshot's queue not listed at its level")
	}
}

// A turn from the urgent list writes the urgent lane only; the bulk waits
// for a normal turn.
func TestCtlPoolUrgentTurnWritesOnlyUrgent(t *testing.T) {
	p := &CtlPool{}
	p.cond = sync.NewCond(&p.mu)
	a, b := tcpPair(t)
	q := NewCtlQueue(1 << 20)
	if !q.Attach(p, a, time.Second, nil) {
		t.Fatal("not attached")
	}
	q.Bulk([]byte("event"))
	q.Urgent([]byte("ping"))
	if p.lists[levelHeartbeat].pop() != q || p.lists[levelBulk].pop() != q {
		t.Fatal("not listed on both lists")
	}
	q.serve(levelHeartbeat)
	buf := make([]byte, 4)
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if q.Len() != len("event") {
		t.Fatalf("bulk written on an urgent turn (%d bytes left)", q.Len())
	}
	q.serve(levelBulk) // its normal turn
	buf = make([]byte, 5)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "event" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// A pool writes many connections without a goroutine per connection.
func TestCtlPoolNoGoroutinePerConnection(t *testing.T) {
	p := NewCtlPool(2)
	defer p.Close()
	const n = 300
	before := runtime.NumGoroutine()
	qs := make([]*CtlQueue, n)
	peers := make([]*net.TCPConn, n)
	for i := range qs {
		a, b := tcpPair(t)
		qs[i], peers[i] = NewCtlQueue(1<<20), b
		if !qs[i].Attach(p, a, time.Second, nil) {
			t.Fatal("not attached")
		}
	}
	frame := []byte("event-batch")
	for round := range 5 {
		for _, q := range qs {
			q.Bulk(frame)
		}
		if g := runtime.NumGoroutine() - before; g > 20 {
			t.Fatalf("round %d: %d more goroutines for %d connections", round, g, n)
		}
	}
	for i, q := range qs {
		q.Close()
		waitDone(t, q, 10*time.Second)
		_ = peers[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		all, err := io.ReadAll(peers[i])
		if err != nil || !bytes.Equal(all, bytes.Repeat(frame, 5)) {
			t.Fatalf("connection %d read %q, %v", i, all, err)
		}
	}
}
