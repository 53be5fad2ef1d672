package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/xserver/xserver/common/wire"
)

// chunkConn reads its bytes a few at a time, as a socket may deliver them.
type chunkConn struct {
	discardConn
	r    *bytes.Reader
	step int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(p) > c.step {
		p = p[:c.step]
	}
	return c.r.Read(p)
}

// The burst reader's framing (client.next) agrees with wire.Reader on
// every input, however the bytes are split: the same frames, then an
// error at the same point.
func FuzzClientFrames(f *testing.F) {
	f.Add(wire.AppendFrame(wire.AppendFrame(nil, wire.KindClientPing, make([]byte, 8)), wire.KindClientMsg, []byte("hello")), uint8(3))
	f.Add([]byte{0, 0, 0, 1, 0}, uint8(1))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0, 1}, uint8(7))
	f.Add(wire.AppendFrame(nil, wire.KindClientData, make([]byte, 5000)), uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		const max = 8 << 10
		want := wire.NewReader(bytes.NewReader(data), max, 0)
		g := &Gateway{}
		g.cfg.MaxFrame = max
		c := &client{g: g, conn: &chunkConn{r: bytes.NewReader(data), step: int(step%64) + 1}}
		defer c.release()
		for i := 0; ; i++ {
			wk, wp, werr := want.ReadFrame()
			gk, gp, gerr := c.next(true)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("frame %d: wire.Reader %v, client.next %v", i, werr, gerr)
			}
			if werr != nil {
				for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, wire.ErrFrameTooLarge, wire.ErrFrameTooShort} {
					if errors.Is(werr, e) != errors.Is(gerr, e) {
						t.Fatalf("frame %d: wire.Reader %v, client.next %v", i, werr, gerr)
					}
				}
				return
			}
			if wk != gk || !bytes.Equal(wp, gp) {
				t.Fatalf("frame %d: %s %x, want %s %x", i, gk, gp, wk, wp)
			}
		}
	})
}
