package intranet

import (
	"bytes"
	"io"
	"net"
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
