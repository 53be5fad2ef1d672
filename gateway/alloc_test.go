package gateway

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
)

// benchGateway is a gateway with one client session and one node link
// whose sockets are drained, so a benchmark exercises exactly the
// gateway's per-frame work in both directions.
func benchGateway(b *testing.B, v2 bool) (*Gateway, *client, *link) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	cfg := DefaultConfig()
	cfg.Redis, cfg.Secret, cfg.Logger = nilRedis(b), "s", l
	cfg.ClientQueueBytes = 64 << 20 // measure relaying, not the slow-client path
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	drained := func() net.Conn { return discardConn{} }
	ln := &link{g: g, conn: drained(), out: intranet.NewOutbox(64 << 20), stop: make(chan struct{}), id: common.NewNodeID(), typ: common.FirstGameType, log: g.log}
	c := newClient(g, drained())
	s := g.newSession("bench-account", 7, v2, map[common.NodeType]common.NodeID{common.FirstGameType: ln.id})
	s.conn = c
	c.sess = s
	g.links[ln.id] = ln
	g.reindexLocked(ln.typ)
	g.sessMap[s.account] = s
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); _ = ln.out.WriteLoop(ln.conn, time.Minute, stop) }()
	b.Cleanup(func() { close(stop); <-done; c.out.Close(); <-c.out.Done() })
	return g, c, ln
}

// BenchmarkGatewayFrame counts the gateway's allocations per relayed frame
// in steady state: client → node routing, and node → client delivery.
func BenchmarkGatewayFrame(b *testing.B) {
	payload := make([]byte, 64)
	cmd := uint64(common.FirstGameType)*1000 + 1
	for _, v2 := range []bool{false, true} {
		name := "v1"
		if v2 {
			name = "v2"
		}
		b.Run("dir=client-to-node/"+name, func(b *testing.B) {
			_, c, ln := benchGateway(b, v2)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				seq := uint32(0)
				if v2 {
					seq = uint32(i + 1)
				}
				if !c.relay(c.sess, seq, cmd, payload) {
					b.Fatal("relay refused")
				}
				if i%64 == 63 { // the node acknowledges in batches
					ln.acked(uint64(i + 1))
				}
			}
		})
		b.Run("dir=node-to-client/"+name, func(b *testing.B) {
			_, c, ln := benchGateway(b, v2)
			frame := make([]byte, wire.PushSizeFor(c.sess.account, len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			acks := []wire.Ack{{Stream: 1}}
			for i := 0; i < b.N; i++ {
				wire.PutPushFrame(frame, c.sess.account, c.sess.sid, 3, uint32(i+1), 0, 1, payload)
				if err := ln.handle(wire.KindPush, frame[wire.HeaderSize:]); err != nil {
					b.Fatal(err)
				}
				if v2 && i%64 == 63 { // the client acknowledges in batches
					acks[0].Seq = uint32(i + 1)
					c.sess.onClientAck(acks)
				}
			}
		})
	}
	b.Run("dir=node-to-node", func(b *testing.B) {
		_, _, ln := benchGateway(b, false)
		frame := wire.AppendNodeMsg(nil, &wire.NodeMsg{SrcType: ln.typ, Src: ln.id, Dst: ln.id, Cmd: 1, Data: payload})
		p := frame[wire.HeaderSize:]
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := ln.handle(wire.KindNodeMsg, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// discardConn is a connection whose writes complete at once.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) Close() error                     { return nil }
