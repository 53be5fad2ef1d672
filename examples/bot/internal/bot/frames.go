package bot

import (
	"encoding/binary"
	"fmt"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// EventKind says what a gateway frame means to a client.
type EventKind int

// Event kinds, one per client kind a gateway sends (PROTOCOL.md §3.2).
const (
	EvUnknown      EventKind = iota // a kind clients ignore (forward compatibility)
	EvLoginAck                      // ClientLoginAck: Code, Text
	EvData                          // ClientData: Cmd, Data
	EvKick                          // ClientKick: Code, Text; the gateway closes next
	EvPong                          // ClientPong
	EvNotDelivered                  // ClientError: Code, Cmd (not fatal)
)

// Event is one decoded gateway frame. Data is a copy, so an Event
// outlives the reader's buffer.
type Event struct {
	Kind EventKind
	Code uint16
	Text string
	Cmd  uint64
	Data []byte
}

// Decode turns one gateway → client frame into an Event. A frame of a
// client kind that does not decode is an error wrapping
// common.ErrBadInput; an unknown kind is EvUnknown, not an error. It is
// pure and does not retain p.
func Decode(k wire.Kind, p []byte) (Event, error) {
	switch k {
	case wire.KindClientLoginAck, wire.KindClientKick:
		code, text, err := wire.DecodeCoded(p)
		if err != nil {
			return Event{}, fmt.Errorf("bot: %s: %w", k, err)
		}
		ev := Event{Kind: EvLoginAck, Code: code, Text: text}
		if k == wire.KindClientKick {
			ev.Kind = EvKick
		}
		return ev, nil
	case wire.KindClientData:
		cmd, data, err := wire.DecodeData(p)
		if err != nil {
			return Event{}, fmt.Errorf("bot: %s: %w", k, err)
		}
		return Event{Kind: EvData, Cmd: cmd, Data: append([]byte(nil), data...)}, nil
	case wire.KindClientPong:
		return Event{Kind: EvPong, Data: append([]byte(nil), p...)}, nil
	case wire.KindClientError:
		if len(p) != 10 {
			return Event{}, fmt.Errorf("bot: %s: %w: %d bytes, want 10", k, common.ErrBadInput, len(p))
		}
		return Event{Kind: EvNotDelivered, Code: binary.BigEndian.Uint16(p), Cmd: binary.BigEndian.Uint64(p[2:])}, nil
	}
	return Event{Kind: EvUnknown}, nil
}
