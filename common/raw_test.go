package common

import (
	"bytes"
	"testing"

	"github.com/gogo/protobuf/proto"
)

func TestRawThroughProto(t *testing.T) {
	in := Raw("\x08\x01any bytes")
	b, err := proto.Marshal(&in)
	if err != nil || !bytes.Equal(b, in) {
		t.Fatalf("marshal: %q %v", b, err)
	}
	var out Raw
	if err := proto.Unmarshal(b, &out); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("unmarshal: %q %v", out, err)
	}
	b[0] = 'X'
	if out[0] == 'X' {
		t.Fatal("Unmarshal kept the caller's buffer")
	}
}
