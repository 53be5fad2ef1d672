package bot

import (
	"bytes"
	"errors"
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// payload strips the header off one encoded frame.
func payload(frame []byte) (wire.Kind, []byte) {
	k, p, err := wire.NewReader(bytes.NewReader(frame), 0, 0).ReadFrame()
	if err != nil {
		panic(err)
	}
	return k, p
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  Event
		bad   bool
	}{
		{"login ok", wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeOK, "ok"), Event{Kind: EvLoginAck, Text: "ok"}, false},
		{"bad token", wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeBadToken, "bad token"), Event{Kind: EvLoginAck, Code: 1, Text: "bad token"}, false},
		{"kick", wire.AppendCoded(nil, wire.KindClientKick, wire.CodeDuplicate, "logged in elsewhere"), Event{Kind: EvKick, Code: 7, Text: "logged in elsewhere"}, false},
		{"data", wire.AppendData(nil, 4011, []byte(`{"text":"hi"}`)), Event{Kind: EvData, Cmd: 4011, Data: []byte(`{"text":"hi"}`)}, false},
		{"empty data", wire.AppendData(nil, 4001, nil), Event{Kind: EvData, Cmd: 4001, Data: []byte{}}, false},
		{"pong", wire.AppendFrame(nil, wire.KindClientPong, []byte("12345678")), Event{Kind: EvPong, Data: []byte("12345678")}, false},
		// PROTOCOL.md §3.7: ClientError for cmd 4001, no node.
		{"not delivered", []byte{0, 0, 0, 0x0c, 0, 0x6a, 0, 6, 0, 0, 0, 0, 0, 0, 0x0f, 0xa1}, Event{Kind: EvNotDelivered, Code: 6, Cmd: 4001}, false},
		{"unknown kind", wire.AppendFrame(nil, 107, []byte("future")), Event{Kind: EvUnknown}, false},
		{"intranet kind", wire.AppendFrame(nil, wire.KindHello, nil), Event{Kind: EvUnknown}, false},
		{"short ack", wire.AppendFrame(nil, wire.KindClientLoginAck, []byte{0}), Event{}, true},
		{"short data", wire.AppendFrame(nil, wire.KindClientData, []byte{0, 0, 0}), Event{}, true},
		{"long error", wire.AppendFrame(nil, wire.KindClientError, make([]byte, 11)), Event{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, p := payload(tt.frame)
			got, err := Decode(k, p)
			if tt.bad {
				if !errors.Is(err, common.ErrBadInput) {
					t.Fatalf("Decode = %+v, %v; want ErrBadInput", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tt.want.Kind || got.Code != tt.want.Code || got.Text != tt.want.Text || got.Cmd != tt.want.Cmd ||
				!bytes.Equal(got.Data, tt.want.Data) {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeCopiesData(t *testing.T) {
	k, p := payload(wire.AppendData(nil, 4011, []byte("abc")))
	ev, err := Decode(k, p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] = 'x'
	}
	if string(ev.Data) != "abc" {
		t.Errorf("Data aliases the reader's buffer: %q", ev.Data)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint16(wire.KindClientLoginAck), []byte{0, 0, 'o', 'k'})
	f.Add(uint16(wire.KindClientData), []byte{0, 0, 0, 0, 0, 0, 0x0f, 0xab, '{', '}'})
	f.Add(uint16(wire.KindClientError), []byte{0, 6, 0, 0, 0, 0, 0, 0, 0x0f, 0xa1})
	f.Add(uint16(wire.KindClientKick), []byte{0, 9})
	f.Add(uint16(wire.KindClientPong), []byte("12345678"))
	f.Fuzz(func(t *testing.T, kind uint16, p []byte) {
		ev, err := Decode(wire.Kind(kind), p)
		if err != nil {
			if !errors.Is(err, common.ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		if ev.Kind == EvData && len(ev.Data) != len(p)-8 {
			t.Fatalf("data of %d bytes from a %d-byte payload", len(ev.Data), len(p))
		}
	})
}
