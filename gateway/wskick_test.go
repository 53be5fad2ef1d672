package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xserver/xserver/common/wire"
)

// A WebSocket client that is kicked (here by a second login of its
// account) receives the kick frame before the connection closes.
func TestWebSocketKickArrives(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	for round := 0; round < 20; round++ {
		tk := e.loginTicket("ws-twin")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ws, _, err := websocket.Dial(ctx, "ws://"+tk.WebSocket+"/ws", nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		conn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
		c := &client{tb: t, account: tk.Account, conn: conn, r: wire.NewReader(conn, 1<<20, 0), ticket: tk}
		c.write(wire.AppendLogin(nil, tk.Account, tk.Token))
		if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
			t.Fatalf("round %d: login ack %s %v", round, k, p)
		}
		c2 := e.connect("ws-twin") // over TCP: kicks the WebSocket session
		if got := c.closedWith(); got != wire.CodeDuplicate {
			t.Fatalf("round %d: WebSocket session closed with %q, want the duplicate-login kick", round, wire.CodeText(got))
		}
		conn.Close()
		c2.conn.Close()
	}
}
