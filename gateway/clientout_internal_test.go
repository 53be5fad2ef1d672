package gateway

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/intranet"
)

// A frame that finds the queue idle is handed to the kernel by the
// producer itself: when Append returns, nothing is queued and no writer
// goroutine was started (a lone reply crosses no goroutine).
func TestClientOutIdleFrameWrittenDirectly(t *testing.T) {
	srv, cli := tcpPair(t)
	o := newClientOut(srv, time.Second, 1<<20, nil)
	for i := 0; i < 3; i++ {
		frame := []byte{0, 0, 0, 2, 0, byte(i)}
		if !o.Append(frame) {
			t.Fatal("Append refused")
		}
		o.mu.Lock()
		writing, queued := o.writing, len(o.buf)
		o.mu.Unlock()
		if writing || queued != 0 {
			t.Fatalf("frame %d: after Append writing=%v queued=%d, want it written directly", i, writing, queued)
		}
		got := make([]byte, len(frame))
		_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("frame %d: read %x, %v", i, got, err)
		}
		// The next frame is direct again only once the last write is
		// older than the coalescing window: age it.
		o.mu.Lock()
		o.wroteNs -= int64(2 * intranet.CoalesceAfter)
		o.mu.Unlock()
	}
	o.Close()
	<-o.Done()
}

// Frames that follow each other closely, and everything the kernel does
// not take at once, go through the writer in order and complete.
func TestClientOutBurstKeepsOrder(t *testing.T) {
	srv, cli := tcpPair(t)
	o := newClientOut(srv, 5*time.Second, 64<<20, nil)
	var want bytes.Buffer
	big := bytes.Repeat([]byte{7}, 1<<20) // larger than the socket buffers
	for i := 0; i < 8; i++ {
		frame := append([]byte{byte(i)}, big...)
		if !o.Append(frame) {
			t.Fatal("Append refused")
		}
		want.Write(frame)
	}
	o.Close()
	got := make([]byte, want.Len())
	_ = cli.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(cli, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("bytes out of order or corrupted")
	}
	<-o.Done()
}
