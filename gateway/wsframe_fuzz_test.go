package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"testing"

	"github.com/gobwas/ws"

	"github.com/xserver/xserver/common/wire"
)

// wsEvents records the control frames a decoder hands over; a close ends
// the stream as wsConn.control does.
type wsEvents struct{ got []string }

func (e *wsEvents) control(op ws.OpCode, p []byte) error {
	e.got = append(e.got, fmt.Sprintf("%d:%x", op, p))
	if op == ws.OpClose {
		return io.EOF
	}
	return nil
}

// wsOutcome is what decoding a stream gave.
type wsOutcome struct {
	out            []byte
	events         []string
	err            string // the first error's class
	closed, broken bool
}

func wsErrClass(err error) string {
	var pe ws.ProtocolError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &pe):
		return "protocol"
	case errors.Is(err, errWSText):
		return "text"
	case errors.Is(err, wire.ErrFrameTooLarge):
		return "too large"
	case err == io.EOF:
		return "closed"
	}
	return err.Error()
}

// wsDecodeSteps runs the in-place decoder over data handed in pieces of
// step bytes (the last piece shorter).
func wsDecodeSteps(data []byte, step int, limit int64) wsOutcome {
	d := wsDecoder{limit: limit}
	var ev wsEvents
	var o wsOutcome
	var first error
	for i := 0; i < len(data); i += step {
		b := append([]byte(nil), data[i:min(i+step, len(data))]...)
		n, err := d.decode(b, &ev)
		o.out = append(o.out, b[:n]...)
		if err != nil && first == nil {
			first = err
		}
	}
	o.events, o.err, o.closed, o.broken = ev.got, wsErrClass(first), d.closed, d.broken
	return o
}

// wsDecodeRef is the reference: whole frames read with ws.ReadHeader from
// a reader, checked and unmasked, with the same rules.
func wsDecodeRef(data []byte, limit int64) wsOutcome {
	var o wsOutcome
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	r := bytes.NewReader(data)
	var ev wsEvents
	frag, drop := false, false
	var msg int64
loop:
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err == nil {
			st := ws.StateServerSide
			if frag {
				st = st.Set(ws.StateFragmented)
			}
			err = ws.CheckHeader(h, st)
		}
		if err != nil {
			o.broken = true
			fail(ws.ProtocolError(err.Error()))
			break
		}
		if !h.OpCode.IsControl() {
			if h.OpCode != ws.OpContinuation {
				msg = 0
				if h.OpCode == ws.OpText && !drop {
					drop = true
					fail(errWSText)
				}
			}
			msg += h.Length
			if msg > limit && !drop {
				drop = true
				fail(wire.ErrFrameTooLarge)
			}
			frag = !h.Fin
		}
		p := make([]byte, min(h.Length, int64(r.Len())))
		_, _ = io.ReadFull(r, p)
		ws.Cipher(p, h.Mask, 0)
		whole := int64(len(p)) == h.Length
		switch {
		case h.OpCode.IsControl():
			if !whole {
				break loop
			}
			if h.OpCode == ws.OpClose {
				o.closed = true
			}
			if err := ev.control(h.OpCode, p); err != nil {
				fail(err)
			}
			if o.closed {
				break loop
			}
		case !drop:
			o.out = append(o.out, p...)
		}
		if !whole {
			break
		}
	}
	o.events, o.err = ev.got, wsErrClass(first)
	return o
}

func (o wsOutcome) equal(p wsOutcome) bool {
	return bytes.Equal(o.out, p.out) && fmt.Sprint(o.events) == fmt.Sprint(p.events) &&
		o.err == p.err && o.closed == p.closed && o.broken == p.broken
}

// wsStream builds a client stream from a seed: binary messages cut into
// fragments, with pings between them, masked as a client must.
func wsStream(seed int64, msgs int) []byte {
	rng := rand.New(rand.NewSource(seed))
	var s []byte
	add := func(op ws.OpCode, fin bool, p []byte) {
		f := ws.MaskFrameInPlace(ws.NewFrame(op, fin, append([]byte(nil), p...)))
		b, err := ws.CompileFrame(f)
		if err != nil {
			panic(err)
		}
		s = append(s, b...)
	}
	for i := 0; i < msgs; i++ {
		m := make([]byte, rng.Intn(300))
		rng.Read(m)
		op := ws.OpBinary
		for len(m) > 0 || op == ws.OpBinary {
			k := min(len(m), rng.Intn(100))
			fin := k == len(m)
			add(op, fin, m[:k])
			m, op = m[k:], ws.OpContinuation
			if rng.Intn(3) == 0 {
				add(ws.OpPing, true, []byte{byte(i)})
			}
			if fin {
				break
			}
		}
	}
	return s
}

// The in-place decoder gives the same payload, control frames and error
// as the reference decoder, however the bytes are split.
func FuzzWSDecoder(f *testing.F) {
	f.Add(wsStream(1, 3), uint8(0))
	f.Add(wsStream(2, 5), uint8(6))
	f.Add(append(wsStream(3, 1), wsStream(4, 1)[:7]...), uint8(2))
	f.Add([]byte{0x82, 0x05, 1, 2, 3, 4, 5}, uint8(3))                                  // unmasked
	f.Add([]byte{0x81, 0x80, 1, 2, 3, 4}, uint8(1))                                     // text
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, uint8(5))          // 64-bit length, top bit set
	f.Add([]byte{0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4}, uint8(9))                         // 4096 bytes: over the limit below
	f.Add([]byte{0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4}, uint8(4))                         // ping of 126 bytes
	f.Add([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8, 0x82, 0x80, 0, 0, 0, 0}, uint8(1)) // close 1000, then a frame
	f.Add([]byte{0x02, 0x80, 1, 2, 3, 4, 0x82, 0x80, 1, 2, 3, 4}, uint8(7))             // fragment, then a new message
	f.Add([]byte{0xc2, 0x80, 1, 2, 3, 4}, uint8(2))                                     // rsv1 (compression) not negotiated
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		const limit = 1 << 10
		want := wsDecodeRef(data, limit)
		for _, s := range []int{len(data) + 1, int(step%32) + 1, 1} {
			if got := wsDecodeSteps(data, s, limit); !got.equal(want) {
				t.Fatalf("in pieces of %d: %+v\nreference: %+v", s, got, want)
			}
		}
	})
}

// Long random streams decode to the messages sent, in any split.
func TestWSDecoderStreams(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		data := wsStream(seed, 20)
		want := wsDecodeRef(data, 1<<20)
		if want.err != "none" || len(want.out) == 0 {
			t.Fatalf("seed %d: reference %+v", seed, want)
		}
		for _, step := range []int{1, 2, 3, 7, 13, 64, 1000, len(data)} {
			if got := wsDecodeSteps(data, step, 1<<20); !got.equal(want) {
				t.Fatalf("seed %d, pieces of %d: %d bytes, events %d, err %s; want %d, %d, %s",
					seed, step, len(got.out), len(got.events), got.err, len(want.out), len(want.events), want.err)
			}
		}
	}
}

// Each rule of the decoder, on its own.
func TestWSDecoderRules(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		err  string
		out  int
	}{
		{name: "unmasked", data: []byte{0x82, 0x01, 7}, err: "protocol"},
		{name: "text", data: []byte{0x81, 0x81, 1, 2, 3, 4, 5}, err: "text"},
		{name: "length with its top bit set", data: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, err: "protocol"},
		{name: "message over the limit", data: []byte{0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4, 5}, err: "too large"},
		{name: "fragments over the limit", data: append(wsStreamOf(ws.OpBinary, false, 1000), wsStreamOf(ws.OpContinuation, true, 100)...), err: "too large", out: 1000},
		{name: "ping of 126 bytes", data: []byte{0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4}, err: "protocol"},
		{name: "fragmented ping", data: []byte{0x09, 0x80, 1, 2, 3, 4}, err: "protocol"},
		{name: "reserved opcode", data: []byte{0x83, 0x80, 1, 2, 3, 4}, err: "protocol"},
		{name: "rsv1 without compression", data: []byte{0xc2, 0x80, 1, 2, 3, 4}, err: "protocol"},
		{name: "new message inside a fragmented one", data: []byte{0x02, 0x80, 1, 2, 3, 4, 0x82, 0x80, 1, 2, 3, 4}, err: "protocol"},
		{name: "continuation without a message", data: []byte{0x80, 0x80, 1, 2, 3, 4}, err: "protocol"},
		{name: "close", data: []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8, 0x82, 0x81, 0, 0, 0, 0, 9}, err: "closed"},
		{name: "ping inside a message", data: append(append(wsStreamOf(ws.OpBinary, false, 10), wsStreamOf(ws.OpPing, true, 3)...), wsStreamOf(ws.OpContinuation, true, 5)...), err: "none", out: 15},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, step := range []int{1, 3, len(c.data)} {
				got := wsDecodeSteps(c.data, step, 1<<10)
				if got.err != c.err || len(got.out) != c.out {
					t.Fatalf("pieces of %d: error %q, %d bytes out; want %q, %d", step, got.err, len(got.out), c.err, c.out)
				}
			}
		})
	}
}

// wsStreamOf is one masked frame of n bytes.
func wsStreamOf(op ws.OpCode, fin bool, n int) []byte {
	b, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewFrame(op, fin, make([]byte, n))))
	if err != nil {
		panic(err)
	}
	return b
}
