package gateway_test

import (
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/login"
)

// A version 2 message that cannot be delivered (no node of its type) is
// answered with ClientError and then acknowledged (ClientMsgAck) like any
// processed message, without waiting for later traffic: a client that
// waits for its messages' acknowledgement must not hang.
func TestUndeliverableMessageIsAcknowledged(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.ready()
	tk := e.loginTicket("nowhere")
	c, code := dialV2(t, tk.Gateway, tk)
	if code != wire.CodeOK {
		t.Fatalf("login ack %s", wire.CodeText(code))
	}
	const cmd = 9001 // type 9: no such node
	c.write(wire.AppendMsg(nil, 1, cmd, []byte("x")))
	var sawError bool
	for {
		k, p := c.read() // fails the test after 10 s
		switch k {
		case wire.KindClientError:
			if len(p) != 10 || p[1] != byte(wire.CodeNoNode) {
				t.Fatalf("bad ClientError % x", p)
			}
			sawError = true
		case wire.KindClientMsgAck:
			seq, err := wire.DecodeMsgAck(p)
			if err != nil || seq != 1 {
				t.Fatalf("ClientMsgAck %d, %v; want 1", seq, err)
			}
			if !sawError {
				t.Fatal("ClientMsgAck before the ClientError")
			}
			return
		}
	}
}

// dialV2 logs in with protocol version 2 and returns the client and the
// login ack's code; the ClientSession and ClientStream frames follow.
func dialV2(tb testing.TB, addr string, tk *login.Ticket) (*client, uint16) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	cl := &client{tb: tb, account: tk.Account, conn: c, r: wire.NewReader(c, 1<<20, 0), ticket: tk}
	cl.write(wire.AppendLoginVersion(nil, tk.Account, tk.Token, wire.ProtocolV2))
	k, p := cl.read()
	if k != wire.KindClientLoginAck {
		tb.Fatalf("%s: first frame %s, want login ack", tk.Account, k)
	}
	code, _, err := wire.DecodeCoded(p)
	if err != nil {
		tb.Fatal(err)
	}
	return cl, code
}
