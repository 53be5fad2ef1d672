package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xserver/xserver/common/wire"
)

// A WebSocket client speaks the same frames in binary messages and can
// talk to the same nodes as a TCP client.
func TestWebSocketClient(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket("browser")
	if tk.WebSocket == "" {
		t.Fatal("ticket carries no WebSocket address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+tk.WebSocket+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	defer conn.Close()
	c := &client{tb: t, account: "browser", conn: conn, r: wire.NewReader(conn, 1<<20, 0), ticket: tk}
	c.write(wire.AppendLogin(nil, tk.Account, tk.Token))
	if k, p := c.read(); k != wire.KindClientLoginAck || p[0] != 0 || p[1] != 0 {
		t.Fatalf("login ack %s %v", k, p)
	}
	for i := uint32(0); i < 5; i++ {
		c.send(uint64(lobbyType)*1000+1, i)
		if _, seq, from := c.reply(); seq != i || from != tk.Bindings[lobbyType].String() {
			t.Fatalf("reply %d from %s", seq, from)
		}
	}
}
