package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/xserver/xserver/common/wire"
)

// WSCloseBase is added to a kick code to make the WebSocket close status
// the gateway sends after that kick: kick 7 (Duplicate) closes with 4007.
// Statuses 4000–4999 are reserved for applications by RFC 6455.
const WSCloseBase = 4000

// WSCloseStatus is the WebSocket close status that follows a ClientKick
// (or a refusing ClientLoginAck) of the given code. A node's own kick code
// of 1000 or more, which has no room in the range, closes with 4999.
func WSCloseStatus(code uint16) uint16 {
	if code >= 1000 {
		return WSCloseBase + 999
	}
	return WSCloseBase + code
}

// wsCloseWait is how long Close waits for the peer's answering close
// frame before it closes the socket anyway.
const wsCloseWait = 5 * time.Second

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

// serveWS upgrades the request and hands the hijacked socket, framed by
// wsConn, to the client code. Origin and subprotocols are not checked or
// negotiated, and no extension (compression) is accepted.
func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	up := ws.HTTPUpgrader{Timeout: g.cfg.WriteTimeout}
	conn, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		g.log.WithError(err).Debug("websocket upgrade failed")
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	// Bytes a client sent right behind its request (RFC 6455 says it waits
	// for the answer; not every client does) were read into the server's
	// buffer, which is dropped now: keep them.
	var early []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		early, _ = rw.Reader.Peek(rw.Reader.Buffered())
		early = append([]byte(nil), early...)
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	g.serveClient(newWSConn(conn, early, int64(g.cfg.MaxFrame)+64, g.cfg.WriteTimeout, local, wsAddr(r.RemoteAddr)))
}

// wsConn is a WebSocket (RFC 6455, server side) as the byte stream the
// client code reads and writes: the payloads of binary messages in, one
// binary message per Write out. It frames directly on the hijacked socket
// and owns no buffer: Read decodes in place in the caller's buffer (the
// client's pooled read buffer, which an idle connection gives back), and
// Write sends a header and the caller's bytes in one vectored write (over
// TLS, one record from a pooled buffer when the message is small). What
// it keeps between reads is the state of the frame under way (a partial
// header, the mask and the bytes left), some fifty bytes. So an idle
// WebSocket over plain TCP parks in the gateway's poller like a TCP client
// (pollable, readNow): no goroutine, no buffer.
//
//   - A read deadline only wakes the reader, as on TCP; it never tears the
//     socket down, so the kick that follows a login or idle timeout, or a
//     drain, is still written.
//   - Frames must be masked; reserved bits and opcodes, unmasked frames
//     and malformed control frames fail the connection with status 1002.
//     A text message closes it with 1003.
//   - Pings are answered with pongs from the reading goroutine; they do not
//     count as client activity (the idle timeout wants client frames).
//   - A data message longer than limit bytes (fragments counted together)
//     makes Read fail with wire.ErrFrameTooLarge (kick 3). Frames whole
//     within the bytes before it may already have been read.
//   - The peer's close frame is answered with the same status and ends the
//     stream: io.EOF for 1000, 1001 or none, an error otherwise.
//   - Close after setCloseCode (or a protocol failure) sends a close frame
//     with the code's status and waits, at most wsCloseWait, for the peer's
//     answer; without one it closes at once. If a Write is still stuck on
//     a peer that does not read, it closes at once too.
//
// Concurrency: one goroutine reads at a time (Read, readNow and Close are
// called by the client's reading goroutine of the moment); Write may run
// concurrently with them, and wmu orders every frame written.
type wsConn struct {
	raw           net.Conn // *net.TCPConn, or *tls.Conn for wss
	local, remote net.Addr
	ctlTimeout    time.Duration // for writing pongs and close frames

	// Reading side (the reading goroutine's).
	dec   wsDecoder
	early []byte // bytes read with the HTTP request, decoded first
	rerr  error  // sticky: the stream ended or broke

	wmu  sync.Mutex   // one frame written at a time; guards hout, werr
	hout wsHeaderOut  // the header of the frame being written
	werr error        // sticky: a write failed, or the close frame is out
	wdl  atomic.Int64 // write deadline for data, unix ns; 0 = none

	code      atomic.Uint32 // what to close with: a kick code, or wsStatusFlag|status; 0 = none
	closeOnce sync.Once
	closeErr  error
}

// wsStatusFlag marks a code holding a WebSocket status (a protocol
// failure) rather than a kick code.
const wsStatusFlag = 1 << 16

func newWSConn(raw net.Conn, early []byte, limit int64, ctlTimeout time.Duration, local, remote net.Addr) *wsConn {
	if local == nil {
		local = wsAddr("")
	}
	if ctlTimeout <= 0 {
		ctlTimeout = wsCloseWait
	}
	w := &wsConn{raw: raw, early: early, local: local, remote: remote, ctlTimeout: ctlTimeout}
	w.dec.limit = limit
	return w
}

// buffered reports whether bytes are waiting that the socket will not
// signal (a parked connection would not wake for them).
func (w *wsConn) buffered() bool { return len(w.early) > 0 }

// Read returns the next payload bytes, decoded in p.
func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if w.rerr != nil {
			return 0, w.rerr
		}
		if len(p) == 0 {
			return 0, nil
		}
		var n int
		var err error
		if len(w.early) > 0 {
			n = copy(p, w.early)
			if w.early = w.early[n:]; len(w.early) == 0 {
				w.early = nil
			}
		} else {
			n, err = w.raw.Read(p)
		}
		if m := w.decoded(p[:n]); m > 0 {
			return m, nil // the error, if any, comes next time
		}
		if err != nil && w.rerr == nil {
			return 0, err // io.EOF: gone without a close frame, as a TCP FIN
		}
	}
}

// readNow is Read without waiting, for the poller: 0 and syscall.EAGAIN
// when the socket holds no payload byte (it may have held control frames,
// which are handled).
func (w *wsConn) readNow(p []byte) (int, error) {
	if w.buffered() || len(p) == 0 {
		return w.Read(p)
	}
	for {
		if w.rerr != nil {
			return 0, w.rerr
		}
		n, err := rawReadNow(w.raw, p)
		if m := w.decoded(p[:n]); m > 0 {
			return m, nil
		}
		if err != nil && w.rerr == nil {
			return 0, err
		}
	}
}

// decoded decodes raw bytes in place, answers the control frames among
// them and records how the stream ended, if it did; it returns the
// payload bytes now at the start of b.
func (w *wsConn) decoded(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	n, err := w.dec.decode(b, w)
	if err != nil && w.rerr == nil {
		w.rerr = err
		var pe ws.ProtocolError
		switch {
		case errors.Is(err, errWSText):
			w.code.CompareAndSwap(0, wsStatusFlag|uint32(ws.StatusUnsupportedData))
		case errors.As(err, &pe):
			w.code.CompareAndSwap(0, wsStatusFlag|uint32(ws.StatusProtocolError))
		}
	}
	return n
}

// errWSText refuses a text message.
var errWSText = errors.New("gateway: WebSocket text message: only binary messages are accepted")

// wsPeerClosed is the peer's close frame with a status other than a
// normal one.
type wsPeerClosed struct {
	status ws.StatusCode
	reason string
}

func (e *wsPeerClosed) Error() string {
	return fmt.Sprintf("gateway: WebSocket closed by the client with status %d %q", e.status, e.reason)
}

// control acts on a whole control frame (wsControl). A ping is answered
// with a pong; the peer's close is answered (unless this side's went out
// first) and ends the stream.
func (w *wsConn) control(op ws.OpCode, p []byte) error {
	switch op {
	case ws.OpPing:
		w.wmu.Lock()
		_ = w.writeFrameLocked(ws.OpPong, p, time.Now().Add(w.ctlTimeout))
		w.wmu.Unlock()
		return nil
	case ws.OpClose:
		status, reason := ws.ParseCloseFrameData(p)
		var err error
		switch {
		case len(p) == 1:
			err = ws.ProtocolError("close frame of 1 byte: no room for a status")
		case len(p) >= 2:
			if cerr := ws.CheckCloseFrameData(status, reason); cerr != nil {
				err = cerr
			}
		}
		if err != nil {
			return err
		}
		w.wmu.Lock()
		if w.werr == nil { // answer with the same status
			var body []byte
			if len(p) >= 2 {
				body = p[:2]
			}
			_ = w.writeFrameLocked(ws.OpClose, body, time.Now().Add(w.ctlTimeout))
		}
		w.wmu.Unlock()
		switch status {
		case 0, ws.StatusNormalClosure, ws.StatusGoingAway:
			return io.EOF
		}
		return &wsPeerClosed{status: status, reason: reason}
	}
	return nil // an unsolicited pong
}

// Write sends p as one binary message.
func (w *wsConn) Write(p []byte) (int, error) {
	var dl time.Time
	if ns := w.wdl.Load(); ns != 0 {
		dl = time.Unix(0, ns)
	}
	w.wmu.Lock()
	err := w.writeFrameLocked(ws.OpBinary, p, dl)
	w.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// errWSClosing refuses writes after the close frame.
var errWSClosing = fmt.Errorf("gateway: WebSocket closing: %w", net.ErrClosed)

// writeFrameLocked writes one final frame. A failed write may have cut
// the frame, so every later write fails too; so do writes after a close
// frame. Needs wmu.
func (w *wsConn) writeFrameLocked(op ws.OpCode, p []byte, dl time.Time) error {
	if w.werr != nil {
		return w.werr
	}
	if err := ws.WriteHeaderBuffer(&w.hout, ws.Header{Fin: true, OpCode: op, Length: int64(len(p))}, w.hout.b[:]); err != nil {
		return err
	}
	_ = w.raw.SetWriteDeadline(dl)
	var err error
	_, tcp := w.raw.(*net.TCPConn)
	switch {
	case len(p) == 0:
		_, err = w.raw.Write(w.hout.b[:w.hout.n])
	case !tcp && w.hout.n+len(p) <= inSize:
		// TLS: one record, not one for the header and one for the payload.
		buf := inPool.Get().(*[]byte)
		n := copy(*buf, w.hout.b[:w.hout.n])
		n += copy((*buf)[n:], p)
		_, err = w.raw.Write((*buf)[:n])
		inPool.Put(buf)
	default:
		v := wsIovPool.Get().(*wsIov)
		v.bufs = append(v.arr[:0], w.hout.b[:w.hout.n], p)
		_, err = v.bufs.WriteTo(w.raw)
		v.arr, v.bufs = [2][]byte{}, nil // hold no caller's bytes
		wsIovPool.Put(v)
	}
	switch {
	case err != nil:
		w.werr = err
	case op == ws.OpClose:
		w.werr = errWSClosing
	}
	return err
}

// wsIov is a header and a payload for one vectored write, pooled: a
// net.Buffers made per write would be an allocation per message.
type wsIov struct {
	arr  [2][]byte
	bufs net.Buffers
}

var wsIovPool = sync.Pool{New: func() any { return new(wsIov) }}

// wsHeaderOut holds a frame header as ws.WriteHeaderBuffer writes it: the
// library encodes into b and hands the bytes to Write, which only notes
// their length, so the header and the payload go out in one write.
type wsHeaderOut struct {
	b [ws.MaxHeaderSize]byte
	n int
}

func (h *wsHeaderOut) Write(p []byte) (int, error) { h.n = len(p); return len(p), nil }

func (w *wsConn) setCloseCode(code uint16) { w.code.CompareAndSwap(0, uint32(code)) }

// closeStatus is the status and reason Close sends; false: none.
func (w *wsConn) closeStatus() (ws.StatusCode, string, bool) {
	v := w.code.Load()
	switch {
	case v == 0:
		return 0, "", false
	case v&wsStatusFlag != 0:
		s := ws.StatusCode(v &^ wsStatusFlag)
		if s == ws.StatusUnsupportedData {
			return s, "binary messages only", true
		}
		return s, "protocol error", true
	}
	return ws.StatusCode(WSCloseStatus(uint16(v))), wire.CodeText(uint16(v)), true
}

// Close ends the connection, with a close frame when a code was noted.
// Safe twice; called by the reading goroutine (or with none left).
func (w *wsConn) Close() error {
	w.closeOnce.Do(func() {
		if status, reason, ok := w.closeStatus(); ok && w.wmu.TryLock() {
			// TryLock: a Write still holding the lock is stuck on a peer
			// that does not read; it would not read a close frame either.
			sent := w.writeFrameLocked(ws.OpClose, ws.NewCloseFrameBody(status, reason), time.Now().Add(w.ctlTimeout)) == nil
			w.wmu.Unlock()
			if sent {
				w.awaitClose()
			}
		}
		w.closeErr = w.raw.Close()
	})
	return w.closeErr
}

// awaitClose reads (and drops) what the peer still sends until its close
// frame arrives, the socket ends or wsCloseWait passes.
func (w *wsConn) awaitClose() {
	if w.dec.closed || w.dec.broken {
		return // the peer's close is in, or nothing more can be decoded
	}
	w.dec.drop = true
	_ = w.raw.SetReadDeadline(time.Now().Add(wsCloseWait))
	buf := make([]byte, 512)
	for !w.dec.closed && !w.dec.broken {
		var n int
		var err error
		if len(w.early) > 0 {
			n = copy(buf, w.early)
			w.early = w.early[n:]
		} else {
			n, err = w.raw.Read(buf)
		}
		if n > 0 {
			_, _ = w.dec.decode(buf[:n], w)
		}
		if err != nil {
			return
		}
	}
}

func (w *wsConn) LocalAddr() net.Addr  { return w.local }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

func (w *wsConn) SetDeadline(t time.Time) error {
	_ = w.SetWriteDeadline(t)
	return w.SetReadDeadline(t)
}

// SetReadDeadline wakes a blocked Read at t. The socket stays open.
func (w *wsConn) SetReadDeadline(t time.Time) error { return w.raw.SetReadDeadline(t) }

// SetWriteDeadline bounds later Writes. A Write cut by it fails every
// later one (half a frame may be out).
func (w *wsConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	w.wdl.Store(ns)
	return nil
}

// wsAddr is the peer's address as the HTTP server saw it.
type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }
