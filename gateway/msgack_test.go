package gateway_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// A version 2 request/response exchange gets its ClientMsgAck with a
// later reply, in the same write, rather than in a frame (and a write, and
// a wake-up of the client) of its own: while no reply is due the gateway
// sends the client nothing. The last message's acknowledgement still
// comes alone, soon after.
func TestMsgAckRidesOnReplies(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.startGame(echoType)
	e.ready()
	tk := e.loginTicket("acker")
	c, code := dialV2(t, tk.Gateway, tk)
	if code != wire.CodeOK {
		t.Fatalf("login ack %s", wire.CodeText(code))
	}
	var acked uint32
	const n = 8
	for i := uint32(1); i <= n; i++ {
		c.write(wire.AppendMsg(nil, i, uint64(echoType)*1000+1, []byte{0, 0, 0, byte(i)}))
		for got := false; !got; {
			k, p := c.read()
			switch k {
			case wire.KindClientMsgAck:
				seq, err := wire.DecodeMsgAck(p)
				if err != nil {
					t.Fatal(err)
				}
				acked = seq
			case wire.KindClientPush:
				got = true
			}
		}
		// Nothing was asked: a ClientMsgAck of its own would come at the
		// gateway's next tick (every 20 ms).
		_ = c.conn.SetReadDeadline(time.Now().Add(40 * time.Millisecond))
		k, _, err := c.r.ReadFrame()
		if err == nil {
			t.Fatalf("after reply %d: a %s frame while no reply was due", i, k)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	if acked < n-2 {
		t.Fatalf("replies carried acknowledgements through %d, want at least %d", acked, n-2)
	}
	for acked < n {
		k, p := c.read() // fails after 10 s
		if k == wire.KindClientMsgAck {
			acked, _ = wire.DecodeMsgAck(p)
		}
	}
}
