package gateway

import (
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/xserver/xserver/common/wire"
)

// tcpPair is a connected pair of loopback TCP sockets.
func tcpPair(t *testing.T) (server, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close(); server.Close() })
	return server, peer
}

// Close after a kick does not wait behind a Write stuck on a peer that
// does not read: it closes the socket at once, which ends the Write. Close
// is safe twice.
func TestWSCloseDoesNotWaitForAStuckWrite(t *testing.T) {
	raw, _ := tcpPair(t) // the peer never reads
	w := newWSConn(raw, nil, 1<<10, time.Second, nil, wsAddr("peer"))
	wrote := make(chan error, 1)
	go func() {
		chunk := make([]byte, 256<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
	}()
	// The writer is stuck once the socket buffers are full: wait until
	// it holds the write lock for a while.
	deadline := time.Now().Add(20 * time.Second)
	for stuck := 0; stuck < 20; {
		if time.Now().After(deadline) {
			t.Fatal("the writer never blocked")
		}
		if w.wmu.TryLock() {
			w.wmu.Unlock()
			stuck = 0
		} else {
			stuck++
		}
		time.Sleep(5 * time.Millisecond) // polling the lock's state, not synchronising
	}
	w.setCloseCode(wire.CodeSlow)
	start := time.Now()
	_ = w.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v behind a stuck Write", d)
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the stuck Write succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck Write did not end with Close")
	}
	_ = w.Close()
}

// Writing a message allocates nothing once warm.
func TestWSWriteAllocatesNothing(t *testing.T) {
	raw, peer := tcpPair(t)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := peer.Read(buf); err != nil {
				return
			}
		}
	}()
	w := newWSConn(raw, nil, 1<<10, time.Second, nil, wsAddr("peer"))
	msg := make([]byte, 300)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := w.Write(msg); err != nil {
			t.Fatal(err)
		}
	}); n > 0 {
		t.Fatalf("%v allocations per Write", n)
	}
	_ = w.Close()
}

// Decoding data frames allocates nothing.
func TestWSDecodeAllocatesNothing(t *testing.T) {
	stream := wsStreamOf(ws.OpBinary, true, 500)
	stream = append(stream, wsStreamOf(ws.OpBinary, false, 100)...)
	stream = append(stream, wsStreamOf(ws.OpContinuation, true, 100)...)
	d := wsDecoder{limit: 1 << 20}
	var ev wsEvents
	b := make([]byte, len(stream))
	if n := testing.AllocsPerRun(200, func() {
		copy(b, stream)
		for i := 0; i < len(b); i += 97 { // in pieces, as reads deliver them
			if _, err := d.decode(b[i:min(i+97, len(b))], &ev); err != nil {
				t.Fatal(err)
			}
		}
	}); n > 0 {
		t.Fatalf("%v allocations per decode", n)
	}
}
