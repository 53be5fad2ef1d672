package intranet

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func TestCtlQueueLanesAndLimits(t *testing.T) {
	q := NewCtlQueue(10)
	if !q.Bulk([]byte("12345")) || !q.Bulk([]byte("67890")) {
		t.Fatal("bulk within the limit refused")
	}
	if q.Bulk([]byte("x")) {
		t.Fatal("bulk over the limit accepted")
	}
	if !q.BulkForce([]byte("F")) || !q.Urgent([]byte("u1")) || !q.UrgentForce([]byte("U2")) {
		t.Fatal("forced or urgent frame refused")
	}
	if q.Len() != 11 {
		t.Fatalf("Len %d, want 11", q.Len())
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan []byte)
	go func() { all, _ := io.ReadAll(b); got <- all }()
	done := make(chan error)
	go func() { done <- q.WriteLoop(a, time.Second, nil) }()
	q.CloseWith([]byte("bye"))
	q.Close()
	if q.Bulk([]byte("late")) || q.Urgent([]byte("late")) {
		t.Fatal("frame accepted after close")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Close()
	if all := <-got; string(all) != "u1U21234567890Fbye" {
		t.Fatalf("wrote %q", all)
	}
}

// An urgent frame queued behind a large bulk backlog is written after at
// most the round in flight, never after the whole backlog; and the shared
// bulk buffers are written as they are, never modified.
func TestCtlQueueUrgentJumpsBacklog(t *testing.T) {
	q := NewCtlQueue(64 << 20)
	chunk := bytes.Repeat([]byte{'e'}, 1000)
	keep := bytes.Clone(chunk)
	for range 4000 { // 4 MB of the same shared buffer
		q.Bulk(chunk)
	}
	a, b := net.Pipe() // unbuffered: the writer blocks until the reader reads
	defer a.Close()
	defer b.Close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- q.WriteLoop(a, time.Second, stop) }()

	buf := make([]byte, 1000)
	if _, err := io.ReadFull(b, buf); err != nil { // the writer is in its first round
		t.Fatal(err)
	}
	q.Urgent([]byte("PING"))
	before := len(buf)
	var window []byte
	for {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		window = append(window, buf[:n]...)
		if i := bytes.Index(window, []byte("PING")); i >= 0 {
			before += i
			break
		}
		if len(window) > 8 {
			before += len(window) - 8
			window = window[len(window)-8:]
		}
	}
	if before > 2*ctlRound {
		t.Fatalf("urgent frame written after %d bulk bytes, backlog 4000000", before)
	}
	if !bytes.Equal(chunk, keep) {
		t.Fatal("a shared buffer was modified")
	}
	close(stop)
	a.Close()
	<-done
}

// A reader that keeps taking bytes, however slowly, is not cut off by the
// stall timeout; one that takes none is.
func TestCtlQueueStall(t *testing.T) {
	q := NewCtlQueue(1 << 20)
	q.Bulk(bytes.Repeat([]byte{'x'}, 64<<10))
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- q.WriteLoop(a, time.Second, nil) }()
	buf := make([]byte, 16<<10)
	for range 4 { // slow reads: together longer than the stall, each well within it
		time.Sleep(300 * time.Millisecond)
		if _, err := io.ReadFull(b, buf); err != nil {
			t.Fatal(err)
		}
	}
	q.Bulk([]byte("more"))
	if err := <-done; err == nil {
		t.Fatal("a reader that took nothing was not cut off")
	}
}
