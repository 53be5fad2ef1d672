package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/xserver/xserver/common/wire"
)

// WSCloseBase is added to a kick code to make the WebSocket close status
// the gateway sends after that kick: kick 7 (Duplicate) closes with 4007.
// Statuses 4000–4999 are reserved for applications by RFC 6455.
const WSCloseBase = 4000

// WSCloseStatus is the WebSocket close status that follows a ClientKick
// (or a refusing ClientLoginAck) of the given code. A node's own kick code
// of 1000 or more, which has no room in the range, closes with 4999.
func WSCloseStatus(code uint16) websocket.StatusCode {
	if code >= 1000 {
		return WSCloseBase + 999
	}
	return websocket.StatusCode(WSCloseBase + int(code))
}

// closeCoder is a client connection that can tell its peer why it is
// closed. The client code calls setCloseCode with the kick or refusal code
// it has queued; the next Close then says so (a WebSocket sends a close
// frame with WSCloseStatus(code)). A plain TCP connection has no such
// channel and does not implement it.
type closeCoder interface {
	setCloseCode(code uint16)
}

// noteCloseCode records on c, if it can carry one, the code it ends with.
// The first code wins.
func noteCloseCode(c net.Conn, code uint16) {
	if cc, ok := c.(closeCoder); ok {
		cc.setCloseCode(code)
	}
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		g.log.WithError(err).Debug("websocket upgrade failed")
		return
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	g.serveClient(newWSConn(ws, int64(g.cfg.MaxFrame)+64, local, wsAddr(r.RemoteAddr)))
}

// wsConn is a WebSocket as the byte stream the client code reads and
// writes: binary messages in, one binary message per Write out. Unlike the
// library's own net.Conn wrapper:
//
//   - a read deadline only wakes the reader, as on TCP; it never tears the
//     socket down, so the kick that follows a login or idle timeout, or a
//     drain, is still written;
//   - the per-message limit stays in force: a message longer than limit
//     bytes makes Read fail with wire.ErrFrameTooLarge (kick 3). Frames
//     whole within the first limit bytes may already have been read;
//   - Close after setCloseCode sends a close frame with the code's status
//     and waits (at most the library's 5 s) for the peer's answer; without
//     a code it closes at once.
//
// One goroutine (pump) reads the socket and hands each chunk over an
// unbuffered channel, so Read can give up at a deadline while the socket
// read goes on. Read and Write may run concurrently; Reads are serialised.
type wsConn struct {
	ws            *websocket.Conn
	ctx           context.Context // the connection's life; cancelled by Close
	cancel        context.CancelFunc
	limit         int64
	local, remote net.Addr

	chunks   chan wsChunk // pump → Read, unbuffered
	pumpDone chan struct{}

	readMu  sync.Mutex // one Read at a time; guards pending, pooled, readErr
	pending []byte     // the unread rest of the last chunk
	pooled  *[]byte    // pending's pooled buffer
	readErr error      // sticky: the pump's last word
	rdl     deadline
	wdl     atomic.Pointer[time.Time]

	code      atomic.Uint32 // kick code to close with; 0 = none
	closeOnce sync.Once
	closeErr  error
}

type wsChunk struct {
	b      []byte
	pooled *[]byte // b's pooled buffer, given back once b is read
	err    error
}

// wsChunkSize is the most the pump reads from the socket in one go, in a
// pooled buffer held only until Read has copied it out.
const wsChunkSize = 4 << 10

func newWSConn(ws *websocket.Conn, limit int64, local, remote net.Addr) *wsConn {
	// The adapter enforces the message limit itself: the library's limit
	// closes the socket at once, with no room for the kick frame.
	ws.SetReadLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	w := &wsConn{
		ws: ws, ctx: ctx, cancel: cancel, limit: limit, local: local, remote: remote,
		chunks: make(chan wsChunk), pumpDone: make(chan struct{}), rdl: makeDeadline(),
	}
	if w.local == nil {
		w.local = wsAddr("")
	}
	go w.pump()
	return w
}

// pump reads messages until the socket fails, a message breaks the rules
// or the connection is closed. While it waits for a message it holds no
// buffer; each chunk read goes to Read in a pooled buffer that Read gives
// back once it has copied it all out.
func (w *wsConn) pump() {
	defer close(w.pumpDone)
	for {
		typ, r, err := w.ws.Reader(w.ctx)
		if err != nil {
			w.deliver(nil, wsReadError(err))
			return
		}
		if typ != websocket.MessageBinary {
			_ = w.ws.Close(websocket.StatusUnsupportedData, "binary messages only")
			w.deliver(nil, fmt.Errorf("gateway: %v WebSocket message: only binary messages are accepted", typ))
			return
		}
		var size int64
		for {
			buf := wsPool.Get().(*[]byte)
			// Read at most one byte past the limit: enough to know.
			b := (*buf)[:min(int64(wsChunkSize), w.limit+1-size)]
			n, err := r.Read(b)
			size += int64(n)
			if size > w.limit {
				wsPool.Put(buf)
				w.deliver(nil, fmt.Errorf("%w: WebSocket message over %d bytes", wire.ErrFrameTooLarge, w.limit))
				return
			}
			if n > 0 {
				if !w.deliverBuf(buf, n) {
					return
				}
			} else {
				wsPool.Put(buf)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				w.deliver(nil, wsReadError(err))
				return
			}
		}
	}
}

var wsPool = sync.Pool{New: func() any { b := make([]byte, wsChunkSize); return &b }}

// deliverBuf hands the first n bytes of a pooled buffer to Read, which
// gives it back; false when the connection is closed first.
func (w *wsConn) deliverBuf(buf *[]byte, n int) bool {
	select {
	case w.chunks <- wsChunk{b: (*buf)[:n], pooled: buf}:
		return true
	case <-w.ctx.Done():
		wsPool.Put(buf)
		return false
	}
}

// deliver hands c to Read; false when the connection is closed first.
func (w *wsConn) deliver(b []byte, err error) bool {
	select {
	case w.chunks <- wsChunk{b: b, err: err}:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// wsReadError maps the peer's normal close to io.EOF, as a TCP FIN.
func wsReadError(err error) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return io.EOF
	}
	if errors.Is(err, context.Canceled) {
		return net.ErrClosed
	}
	return err
}

func (w *wsConn) Read(p []byte) (int, error) {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	for len(w.pending) == 0 {
		if w.readErr != nil {
			return 0, w.readErr
		}
		expired := w.rdl.wait()
		select {
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		default:
		}
		select {
		case c := <-w.chunks:
			w.pending, w.pooled, w.readErr = c.b, c.pooled, c.err
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-w.ctx.Done():
			return 0, net.ErrClosed
		}
	}
	n := copy(p, w.pending)
	w.pending = w.pending[n:]
	if len(w.pending) == 0 && w.pooled != nil {
		wsPool.Put(w.pooled)
		w.pending, w.pooled = nil, nil
	}
	return n, nil
}

// Write sends p as one binary message.
func (w *wsConn) Write(p []byte) (int, error) {
	ctx := w.ctx
	if t := w.wdl.Load(); t != nil && !t.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, *t)
		defer cancel()
	}
	if err := w.ws.Write(ctx, websocket.MessageBinary, p); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
		}
		return 0, err
	}
	return len(p), nil
}

func (w *wsConn) setCloseCode(code uint16) { w.code.CompareAndSwap(0, uint32(code)) }

// Close ends the connection, with a close frame when a code was noted.
// Safe twice.
func (w *wsConn) Close() error {
	w.closeOnce.Do(func() {
		if code := uint16(w.code.Load()); code != 0 {
			w.closeErr = w.ws.Close(WSCloseStatus(code), wire.CodeText(code))
		} else {
			w.closeErr = w.ws.CloseNow()
		}
		w.cancel()
		<-w.pumpDone
		w.rdl.set(time.Time{})
	})
	return w.closeErr
}

func (w *wsConn) LocalAddr() net.Addr  { return w.local }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

func (w *wsConn) SetDeadline(t time.Time) error {
	_ = w.SetWriteDeadline(t)
	return w.SetReadDeadline(t)
}

// SetReadDeadline wakes a blocked Read at t. The socket stays open.
func (w *wsConn) SetReadDeadline(t time.Time) error {
	w.rdl.set(t)
	return nil
}

// SetWriteDeadline bounds later Writes. A Write cut by it closes the
// socket (the library cannot abandon half a message).
func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.wdl.Store(&t)
	return nil
}

// wsAddr is the peer's address as the HTTP server saw it.
type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

// deadline is a settable point in time with a channel closed when it
// passes (the shape of the standard library's in-memory pipe deadline).
type deadline struct {
	mu     sync.Mutex // guards timer, cancel
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: its close has happened or is about to
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
