package mgrserver_test

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	pb "github.com/xserver/xserver/proto"
)

// rawPeer speaks the intranet protocol by hand, to misbehave on purpose.
type rawPeer struct {
	tb    testing.TB
	conn  net.Conn
	r     *wire.Reader
	hello pb.Hello
	id    common.NodeID
}

func dialRaw(tb testing.TB, addr string) *rawPeer {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	p := &rawPeer{tb: tb, conn: c, r: wire.NewReader(c, 16<<20, 0), id: common.NewNodeID()}
	k, b := p.read()
	if k != wire.KindHello {
		tb.Fatalf("first frame %s, want hello", k)
	}
	if err := p.hello.Unmarshal(b); err != nil {
		tb.Fatal(err)
	}
	return p
}

func (p *rawPeer) read() (wire.Kind, []byte) {
	p.tb.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, b, err := p.r.ReadFrame()
	if err != nil {
		p.tb.Fatalf("read: %v", err)
	}
	return k, b
}

func (p *rawPeer) write(b []byte) {
	p.tb.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.tb.Fatalf("write: %v", err)
	}
}

func (p *rawPeer) registerFrame(secret string) []byte {
	f, err := wire.Frame(wire.KindRegister, &pb.Register{
		Mac:  intranet.MAC(secret, p.hello.Nonce, p.id.Bytes()),
		Info: &pb.NodeInfo{Id: p.id.Bytes(), Type: uint32(common.FirstGameType), Addrs: []string{"127.0.0.1", "127.0.0.1"}},
	})
	if err != nil {
		p.tb.Fatal(err)
	}
	return f
}

// register authenticates and returns once the snapshot arrived.
func (p *rawPeer) register() *pb.Snapshot {
	p.tb.Helper()
	p.write(p.registerFrame(testSecret))
	for {
		k, b := p.read()
		if k == wire.KindSnapshot {
			var s pb.Snapshot
			if err := s.Unmarshal(b); err != nil {
				p.tb.Fatal(err)
			}
			return &s
		}
	}
}

// expectClosed reads until the server closes, returning the error frame's
// code (0 if none came).
func (p *rawPeer) expectClosed() uint32 {
	p.tb.Helper()
	var code uint32
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		k, b, err := p.r.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.tb.Fatalf("connection not closed by the server")
			}
			return code
		}
		if k == wire.KindError {
			var e pb.Error
			if err := e.Unmarshal(b); err != nil {
				p.tb.Fatal(err)
			}
			code = e.Code
		}
	}
}

func frameOf(kind wire.Kind, payload []byte) []byte { return wire.AppendFrame(nil, kind, payload) }

func (p *rawPeer) String() string { return fmt.Sprintf("raw peer %s", p.id) }
