package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/tlstest"
	"github.com/xserver/xserver/node"
)

// rawWS is a test WebSocket client framing by hand (github.com/gobwas/ws,
// client side): it holds no goroutine, sends frames exactly as a test
// builds them, and sees every control frame the gateway sends.
type rawWS struct {
	net.Conn // the socket; Read and Write below are the message stream
	tb       testing.TB
	br       io.Reader
	pongs    [][]byte
	status   ws.StatusCode // the gateway's close status, once read
	closed   bool          // the gateway's close frame was read
	pending  []byte        // unread payload of the last binary frame
}

func dialRawWS(tb testing.TB, addr string, tc *tls.Config) *rawWS {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scheme := "ws://"
	if tc != nil {
		scheme = "wss://"
	}
	conn, br, _, err := ws.Dialer{TLSConfig: tc}.Dial(ctx, scheme+addr+"/ws")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := &rawWS{tb: tb, Conn: conn, br: conn}
	if br != nil {
		c.br = io.MultiReader(br, conn)
	}
	return c
}

// frame builds one client frame, masked unless unmasked is set.
func wsFrame(op ws.OpCode, fin bool, p []byte, unmasked bool) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), p...))
	if !unmasked {
		f = ws.MaskFrameInPlace(f)
	}
	b, err := ws.CompileFrame(f)
	if err != nil {
		panic(err)
	}
	return b
}

func (c *rawWS) send(frames ...[]byte) {
	c.tb.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Conn.Write(b); err != nil {
		c.tb.Fatalf("ws write: %v", err)
	}
}

// message sends b as one binary message.
func (c *rawWS) message(b []byte) { c.send(wsFrame(ws.OpBinary, true, b, false)) }

// Write sends p as one binary message.
func (c *rawWS) Write(p []byte) (int, error) {
	_, err := c.Conn.Write(wsFrame(ws.OpBinary, true, p, false))
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Read is the byte stream of the gateway's binary messages; pongs are
// kept aside and its close frame ends it (io.EOF).
func (c *rawWS) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.closed {
			return 0, io.EOF
		}
		h, payload, err := c.frame()
		if err != nil {
			return 0, err
		}
		switch h.OpCode {
		case ws.OpBinary, ws.OpContinuation:
			c.pending = payload
		case ws.OpPong:
			c.pongs = append(c.pongs, payload)
		case ws.OpClose: // answered, as a browser does
			c.closed = true
			c.status, _ = ws.ParseCloseFrameData(payload)
			_, _ = c.Conn.Write(wsFrame(ws.OpClose, true, payload[:min(2, len(payload))], false))
		default:
			return 0, fmt.Errorf("gateway sent a %v frame", h.OpCode)
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// frame reads one frame of the gateway's.
func (c *rawWS) frame() (ws.Header, []byte, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return h, nil, err
	}
	if h.Masked {
		return h, nil, errors.New("the gateway sent a masked frame")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// frames is the client protocol over this WebSocket.
func (c *rawWS) frames(account string) *client {
	return &client{tb: c.tb, account: account, conn: c, r: wire.NewReader(c, 1<<20, 0)}
}

// closeStatus reads to the end and returns the gateway's close status;
// it fails the test if the socket stays open.
func (c *rawWS) closeStatus() ws.StatusCode {
	c.tb.Helper()
	buf := make([]byte, 256)
	for !c.closed {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.tb.Fatal("the gateway did not close the WebSocket")
			}
			if !c.closed {
				c.tb.Fatalf("socket ended without a close frame: %v", err)
			}
		}
	}
	return c.status
}

// socketEnds waits for the gateway to close the TCP connection.
func (c *rawWS) socketEnds() {
	c.tb.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [64]byte
	for {
		_, err := c.Conn.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.tb.Fatal("the gateway did not close the socket")
		}
		return
	}
}

// wsRawLogin logs account in over a raw WebSocket.
func (e *env) wsRawLogin(account string) (*rawWS, *client) {
	e.tb.Helper()
	tk := e.loginTicket(account)
	w := dialRawWS(e.tb, tk.WebSocket, nil)
	c := w.frames(account)
	c.ticket = tk
	w.message(wire.AppendLogin(nil, tk.Account, tk.Token))
	if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
		e.tb.Fatalf("%s: login ack %s %v", account, k, p)
	}
	return w, c
}

// Idle logged-in WebSocket clients hold no goroutine each: after the
// upgrade the gateway frames on the raw socket, and an idle one waits in
// the epoll set like a TCP client. A message afterwards still gets its
// answer.
func TestIdleWebSocketsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections park in epoll on Linux only")
	}
	const n = 60
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	base := runtime.NumGoroutine()
	var cs []*client
	for i := 0; i < n; i++ {
		_, c := e.wsRawLogin(fmt.Sprintf("ws-parked-%d", i))
		cs = append(cs, c)
	}
	waitFor(t, 15*time.Second, "idle WebSockets to let their goroutines go", func() bool {
		return runtime.NumGoroutine()-base < n/4
	})
	for i, c := range cs {
		c.send(uint64(lobbyType)*1000+1, uint32(i+1))
		if _, seq, _ := c.reply(); seq != uint32(i+1) {
			t.Fatalf("client %d: reply %d", i, seq)
		}
	}
}

// The gateway follows RFC 6455 on the raw socket: fragments of a message
// and messages split anywhere make one byte stream, pings between
// fragments are answered, and bad frames close with the matching status.
func TestWSFraming(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	addr := e.gws[0].Addrs().WebSocket
	cmd := uint64(lobbyType)*1000 + 1
	data := func(seq uint32) []byte {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], seq)
		return wire.AppendData(nil, cmd, b[:])
	}

	t.Run("fragments and pings", func(t *testing.T) {
		w, c := e.wsRawLogin("frag")
		d := data(7)
		frames := [][]byte{
			wsFrame(ws.OpBinary, false, d[:3], false),
			wsFrame(ws.OpPing, true, []byte("hi"), false),
			wsFrame(ws.OpContinuation, false, d[3:8], false),
			wsFrame(ws.OpContinuation, false, nil, false),
			wsFrame(ws.OpContinuation, true, d[8:], false),
		}
		w.send(frames...)
		if _, seq, _ := c.reply(); seq != 7 {
			t.Fatalf("reply %d, want 7", seq)
		}
		if len(w.pongs) != 1 || string(w.pongs[0]) != "hi" {
			t.Fatalf("pongs %q, want one \"hi\"", w.pongs)
		}
		// The same bytes, one write per byte.
		var all []byte
		for _, f := range frames {
			all = append(all, f...)
		}
		for i := range all {
			w.send(all[i : i+1])
		}
		if _, seq, _ := c.reply(); seq != 7 {
			t.Fatalf("reply %d, want 7", seq)
		}
		// One client frame across two messages, then two in one.
		d = data(8)
		w.message(d[:5])
		w.message(append(d[5:], data(9)...))
		for want := uint32(8); want <= 9; want++ {
			if _, seq, _ := c.reply(); seq != want {
				t.Fatalf("reply %d, want %d", seq, want)
			}
		}
	})
	t.Run("unmasked frame", func(t *testing.T) {
		w, _ := e.wsRawLogin("unmasked")
		w.send(wsFrame(ws.OpBinary, true, data(1), true))
		if got := w.closeStatus(); got != ws.StatusProtocolError {
			t.Fatalf("close status %d, want %d", got, ws.StatusProtocolError)
		}
		w.socketEnds()
	})
	t.Run("text message", func(t *testing.T) {
		w, _ := e.wsRawLogin("texter")
		w.send(wsFrame(ws.OpText, true, []byte("hello"), false))
		if got := w.closeStatus(); got != ws.StatusUnsupportedData {
			t.Fatalf("close status %d, want %d", got, ws.StatusUnsupportedData)
		}
		w.socketEnds()
	})
	t.Run("long ping", func(t *testing.T) {
		w := dialRawWS(t, addr, nil)
		w.send(wsFrame(ws.OpPing, true, make([]byte, 126), false))
		if got := w.closeStatus(); got != ws.StatusProtocolError {
			t.Fatalf("close status %d, want %d", got, ws.StatusProtocolError)
		}
		w.socketEnds()
	})
	t.Run("client close", func(t *testing.T) {
		w, _ := e.wsRawLogin("leaver")
		w.send(wsFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"), false))
		if got := w.closeStatus(); got != ws.StatusGoingAway {
			t.Fatalf("close status %d, want the client's %d echoed", got, ws.StatusGoingAway)
		}
		w.socketEnds()
	})
	t.Run("login sent with the upgrade", func(t *testing.T) {
		tk := e.loginTicket("eager")
		conn, err := net.DialTimeout("tcp", tk.WebSocket, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		req := "GET /ws HTTP/1.1\r\nHost: " + tk.WebSocket + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
		b := append([]byte(req), wsFrame(ws.OpBinary, true, wire.AppendLogin(nil, tk.Account, tk.Token), false)...)
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
		}
		w := &rawWS{Conn: conn, tb: t, br: br}
		c := w.frames("eager")
		if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
			t.Fatalf("login ack %s %v", k, p)
		}
		c.send(cmd, 3)
		if _, seq, _ := c.reply(); seq != 3 {
			t.Fatalf("reply %d, want 3", seq)
		}
	})
}

// With TLS on the client listener, WebSocket clients use wss:// and talk
// to their nodes as over ws://.
func TestWSOverTLS(t *testing.T) {
	tc := tlstest.New(t)
	e := newEnvFull(t, 1, nil, &tc)
	e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket("wss")
	w := dialRawWS(t, tk.WebSocket, tc.Client)
	c := w.frames("wss")
	w.message(wire.AppendLogin(nil, tk.Account, tk.Token))
	if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
		t.Fatalf("login ack %s %v", k, p)
	}
	for i := uint32(1); i <= 3; i++ {
		c.send(uint64(lobbyType)*1000+1, i)
		if _, seq, from := c.reply(); seq != i || from != tk.Bindings[lobbyType].String() {
			t.Fatalf("reply %d from %s", seq, from)
		}
	}
	w.send(wsFrame(ws.OpPing, true, []byte("tls"), false))
	w.send(wsFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""), false))
	if got := w.closeStatus(); got != ws.StatusNormalClosure {
		t.Fatalf("close status %d, want %d", got, ws.StatusNormalClosure)
	}
	if len(w.pongs) != 1 || string(w.pongs[0]) != "tls" {
		t.Fatalf("pongs %q, want one \"tls\"", w.pongs)
	}
}

// A WebSocket client that stops reading is dropped as a slow consumer
// (version 1: kick 10) while another WebSocket session goes on.
func TestWSSlowConsumerDropped(t *testing.T) {
	e := newEnv(t, 1)
	// The lobby keeps what its slow player has not acknowledged for
	// longer than the kernel's socket buffers and the gateway's queue
	// take, so that the gateway is the one to notice (with the default
	// 256 KiB the lobby's own limit could end the session first, kick 16).
	e.nodeOpt = func(c *node.Config) { c.StreamLimit = 64 << 20 }
	lobby := e.startGame(lobbyType)
	e.nodeOpt = nil
	e.ready()
	slow, _ := e.wsRawLogin("slowpoke") // never reads from here on
	_, other := e.wsRawLogin("bystander")
	g := e.gws[0]
	payload := make([]byte, 8<<10)
	deadline := time.Now().Add(30 * time.Second)
	for g.NumClients() == 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow WebSocket client was not dropped")
		}
		_ = lobby.SendClientMsgByRelay("slowpoke", uint64(lobbyType)*1000+5, payload)
	}
	other.send(uint64(lobbyType)*1000+1, 1)
	if _, seq, _ := other.reply(); seq != 1 {
		t.Fatalf("bystander: reply %d", seq)
	}
	// Reading now, it finds what was queued, the kick and the close
	// status that goes with it.
	if got := slow.frames("slowpoke").closedWith(); got != wire.CodeSlow {
		t.Fatalf("slow client: kick %d, want %d", got, wire.CodeSlow)
	}
	if want := ws.StatusCode(gateway.WSCloseStatus(wire.CodeSlow)); slow.status != want {
		t.Fatalf("slow client: close status %d, want %d", slow.status, want)
	}
	slow.socketEnds()
}
