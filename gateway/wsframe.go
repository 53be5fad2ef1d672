package gateway

import (
	"fmt"

	"github.com/gobwas/ws"

	"github.com/xserver/xserver/common/wire"
)

// wsControl acts on the whole control frames the decoder meets; a non-nil
// error ends the stream (the peer's close always does).
type wsControl interface {
	control(op ws.OpCode, payload []byte) error
}

// wsDecoder decodes the frames a WebSocket client sends (RFC 6455 §5) in
// place: decode is handed the raw bytes as they came off the socket, in
// any split, and leaves the unmasked payload of the data frames at the
// start of the same slice. It owns no buffer; between calls it keeps a
// partial header, the current frame's mask and length, and the payload of
// a control frame under way (at most 125 bytes, only while it arrives).
// Headers are parsed and checked by github.com/gobwas/ws (ReadHeaderBuffer,
// CheckHeader), and payloads unmasked by its Cipher.
//
// Rules: every frame must be masked; reserved bits (no extension is
// negotiated), reserved opcodes, fragmented or long control frames and
// misplaced continuations break the stream (a ws.ProtocolError; nothing
// after it is decoded). A text message (errWSText) or a data message over
// limit bytes (wire.ErrFrameTooLarge) is refused: decode returns the error
// once, and from then on drops data payloads but still follows the frames
// (so a close frame behind them is found). After the peer's close frame
// nothing is decoded.
type wsDecoder struct {
	limit   int64 // most bytes in one data message, fragments together
	hdr     wsHeaderIn
	scratch [ws.MaxHeaderSize - 2]byte // ReadHeaderBuffer's work space
	mask    [4]byte
	op      ws.OpCode
	inFrame bool // a header was read; remain payload bytes follow
	frag    bool // the data message goes on in a continuation frame
	drop    bool // drop data payloads (a message was refused, or this side closes)
	closed  bool // the peer's close frame was read
	broken  bool // a protocol error: the stream cannot be followed
	remain  int64
	pos     int    // payload bytes of the frame already unmasked (the mask's phase)
	msg     int64  // bytes of the data message so far
	ctl     []byte // the control frame's payload so far
}

// decode decodes b in place and returns how many payload bytes are now at
// b's start, with the first error met (see wsDecoder).
func (d *wsDecoder) decode(b []byte, c wsControl) (int, error) {
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	out, i := 0, 0
	for i < len(b) && !d.closed && !d.broken {
		if !d.inFrame {
			i += d.hdr.fill(b[i:])
			if !d.hdr.whole() {
				break
			}
			h, err := ws.ReadHeaderBuffer(&d.hdr, d.scratch[:])
			d.hdr.reset()
			if err == nil {
				state := ws.StateServerSide
				if d.frag {
					state = state.Set(ws.StateFragmented)
				}
				err = ws.CheckHeader(h, state)
			}
			if err != nil {
				if _, ok := err.(ws.ProtocolError); !ok {
					err = ws.ProtocolError(err.Error())
				}
				d.broken = true
				fail(err)
				break
			}
			switch {
			case h.OpCode.IsControl():
				if h.Length > 0 {
					d.ctl = make([]byte, 0, h.Length) // at most 125: checked above
				}
			default:
				if h.OpCode != ws.OpContinuation {
					d.msg = 0
					if h.OpCode == ws.OpText && !d.drop {
						d.drop = true
						fail(errWSText)
					}
				}
				d.msg += h.Length
				if d.msg > d.limit && !d.drop {
					d.drop = true
					fail(fmt.Errorf("%w: WebSocket message over %d bytes", wire.ErrFrameTooLarge, d.limit))
				}
				d.frag = !h.Fin
			}
			d.inFrame, d.remain, d.pos, d.mask, d.op = true, h.Length, 0, h.Mask, h.OpCode
		}
		k := int(min(d.remain, int64(len(b)-i)))
		chunk := b[i : i+k]
		switch {
		case d.op.IsControl():
			ws.Cipher(chunk, d.mask, d.pos)
			d.ctl = append(d.ctl, chunk...)
		case !d.drop:
			ws.Cipher(chunk, d.mask, d.pos)
			out += copy(b[out:], chunk)
		}
		i += k
		d.pos += k
		d.remain -= int64(k)
		if d.remain == 0 {
			d.inFrame = false
			if d.op.IsControl() {
				p := d.ctl
				d.ctl = nil
				if d.op == ws.OpClose {
					d.closed = true
				}
				if err := c.control(d.op, p); err != nil {
					fail(err)
				}
			}
		}
	}
	return out, first
}

// wsHeaderIn collects a frame header, which may arrive in pieces, and
// reads it back to ws.ReadHeaderBuffer.
type wsHeaderIn struct {
	b    [ws.MaxHeaderSize]byte
	n, r uint8 // bytes collected; bytes read back
}

// size is the header's full size, as far as the bytes collected tell.
func (h *wsHeaderIn) size() int {
	if h.n < 2 {
		return 2
	}
	n := 2
	if h.b[1]&0x80 != 0 {
		n += 4 // mask
	}
	switch h.b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// fill takes from b what the header still lacks and says how much.
func (h *wsHeaderIn) fill(b []byte) int {
	used := 0
	for {
		need := h.size()
		if int(h.n) >= need || used == len(b) {
			return used
		}
		k := copy(h.b[h.n:need], b[used:])
		h.n += uint8(k)
		used += k
	}
}

func (h *wsHeaderIn) whole() bool { return h.n >= 2 && int(h.n) >= h.size() }

func (h *wsHeaderIn) reset() { h.n, h.r = 0, 0 }

// Read hands the collected bytes to ws.ReadHeaderBuffer.
func (h *wsHeaderIn) Read(p []byte) (int, error) {
	k := copy(p, h.b[h.r:h.n])
	h.r += uint8(k)
	if k == 0 && len(p) > 0 {
		return 0, fmt.Errorf("gateway: WebSocket header read past its %d bytes", h.n)
	}
	return k, nil
}
