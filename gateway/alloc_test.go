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
func benchGateway(b *testing.B) (*Gateway, *client, *link) {
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
	c.account = "bench-account"
	c.bindings = map[common.NodeType]common.NodeID{common.FirstGameType: ln.id}
	g.links[ln.id] = ln
	g.reindexLocked(ln.typ)
	g.clients[c.account] = c
	for _, o := range []*intranet.Outbox{ln.out, c.out} {
		o := o
		stop := make(chan struct{})
		done := make(chan struct{})
		conn := ln.conn
		if o == c.out {
			conn = c.conn
		}
		go func() { defer close(done); _ = o.WriteLoop(conn, time.Minute, stop) }()
		b.Cleanup(func() { close(stop); <-done })
	}
	return g, c, ln
}

// BenchmarkGatewayFrame counts the gateway's allocations per relayed frame
// in steady state: client → node routing, and node → client delivery.
func BenchmarkGatewayFrame(b *testing.B) {
	payload := make([]byte, 64)
	b.Run("dir=client-to-node", func(b *testing.B) {
		_, c, _ := benchGateway(b)
		frame := wire.AppendData(nil, uint64(common.FirstGameType)*1000+1, payload)
		p := frame[wire.HeaderSize:]
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if !c.relay(p) {
				b.Fatal("relay refused")
			}
		}
	})
	b.Run("dir=node-to-client", func(b *testing.B) {
		_, c, ln := benchGateway(b)
		frame := wire.AppendAccountMsg(nil, wire.KindToClient, c.account, 1, payload)
		p := frame[wire.HeaderSize:]
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := ln.handle(wire.KindToClient, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dir=node-to-node", func(b *testing.B) {
		_, _, ln := benchGateway(b)
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
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) Close() error                     { return nil }
