package gateway

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common/wire"
)

// gateConn keeps what is written to it; writes wait while the gate is
// shut (a client that does not read).
type gateConn struct {
	discardConn
	mu   sync.Mutex // guards buf
	buf  bytes.Buffer
	open chan struct{} // closed: writes go through
}

func (c *gateConn) Write(p []byte) (int, error) {
	<-c.open
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// fanGateway is a gateway that is never started, with a history of
// history bytes, for the fan-out's pure logic.
func fanGateway(t *testing.T, history int) *Gateway {
	l := logrus.New()
	l.SetOutput(io.Discard)
	cfg := DefaultConfig()
	cfg.Redis, cfg.Secret, cfg.Logger = nilRedis(t), "s", l
	cfg.BroadcastHistory = history
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.store = newStoreQueue(g.log, time.Second) // never run: group writes only queue
	return g
}

// fanSession is a session attached to a client whose queue holds queue
// bytes and whose connection takes nothing until read is called.
func fanSession(t *testing.T, g *Gateway, account string, v2 bool, queue int) (*session, *client, func() []wire.Kind) {
	conn := &gateConn{open: make(chan struct{})}
	c := &client{g: g, conn: conn, out: newClientOut(conn, 0, queue, nil)}
	s := g.newSession(account, 1, v2, nil)
	s.conn, s.bready, s.bpos = c, true, g.bring.last()
	c.sess = s
	g.sessMap[account] = s
	opened := false
	// read lets the client read: it returns every frame written so far
	// (a ClientShed as one KindClientShed per message it counts) once the
	// queue is empty.
	read := func() []wire.Kind {
		t.Helper()
		if !opened {
			opened = true
			close(conn.open)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.out.mu.Lock()
			idle := !c.out.writing && len(c.out.buf) == 0
			c.out.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("client queue not drained")
			}
			time.Sleep(time.Millisecond)
		}
		conn.mu.Lock()
		b := append([]byte(nil), conn.buf.Bytes()...)
		conn.buf.Reset()
		conn.mu.Unlock()
		var kinds []wire.Kind
		r := wire.NewReader(bytes.NewReader(b), 1<<20, 0)
		for {
			k, p, err := r.ReadFrame()
			if err != nil {
				return kinds
			}
			if k != wire.KindClientShed {
				kinds = append(kinds, k)
				continue
			}
			sh, err := wire.DecodeShed(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := uint32(0); i < sh.Count; i++ {
				kinds = append(kinds, k)
			}
		}
	}
	return s, c, read
}

// count counts kinds k in ks; a ClientShed counts as the messages it
// stands for (read expands it).
func count(ks []wire.Kind, k wire.Kind) int {
	n := 0
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

// A group broadcast reaches only the members; a session's stream 0 sees
// the numbers of the others' skipped, without taking that for a stall.
func TestGroupFanOutOnlyToMembers(t *testing.T) {
	g := fanGateway(t, 1<<20)
	in, _, readIn := fanSession(t, g, "in", true, 1<<20)
	_, _, readOut := fanSession(t, g, "out", true, 1<<20)
	in.mu.Lock()
	in.addGroupLocked("room", g.bring.last())
	in.mu.Unlock()
	g.groupBroadcast([]byte("room"), 1, []byte("a"))
	g.groupBroadcast([]byte("other"), 2, []byte("b"))
	g.broadcast(3, []byte("c"))
	g.groupBroadcast([]byte("room"), 4, []byte("d"))
	if got := readIn(); count(got, wire.KindClientPush) != 3 || in.bstall {
		t.Fatalf("member got %v (stalled %v), want 3 pushes", got, in.bstall)
	}
	if got := readOut(); count(got, wire.KindClientPush) != 1 {
		t.Fatalf("non-member got %v, want the broadcast to all only", got)
	}
}

// A client too slow for its broadcasts keeps its session: each broadcast
// meant for it is either delivered or counted in a ClientShed, exactly,
// version 1 and version 2 alike, including a broadcast the fan-out had not
// brought to it yet when the history was replayed.
func TestShedCountsEveryBroadcast(t *testing.T) {
	frame := wire.DataSize(100)
	for _, v2 := range []bool{false, true} {
		g := fanGateway(t, 3*wire.PushSize(100)) // keeps the last 3
		s, _, read := fanSession(t, g, "slow", v2, 2*wire.PushSize(100)+frame/2)
		data := make([]byte, 100)
		for i := 0; i < 10; i++ {
			g.broadcast(4100, data)
		}
		// One more numbered but not fanned out yet (another link's
		// broadcast in flight) when the client drains and the tick runs.
		e := g.bring.add("", 4100, data)
		got := read()
		s.tick()
		got = append(got, read()...)
		g.fanMu.Lock()
		s.deliverBroadcast(&e) // the fan-out reaches it now: nothing twice
		g.fanMu.Unlock()
		s.tick()
		got = append(got, read()...)
		want := wire.KindClientData
		if v2 {
			want = wire.KindClientPush
		}
		n, shed := count(got, want), count(got, wire.KindClientShed)
		if n+shed != 11 || shed == 0 {
			t.Fatalf("v2=%v: %d delivered + %d shed, want 11 in all, some shed: %v", v2, n, shed, got)
		}
		if s.state == sessEnded {
			t.Fatalf("v2=%v: session ended", v2)
		}
	}
}
