package common

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestNodeIDText(t *testing.T) {
	id := NewNodeID()
	b, err := json.Marshal(map[string]NodeID{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]NodeID
	if err := json.Unmarshal(b, &back); err != nil || back["id"] != id {
		t.Fatalf("round trip %s: %v %v", b, back, err)
	}
	if _, err := NodeIDFromBytes([]byte{1, 2}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("short id: %v", err)
	}
	if _, err := ParseNodeID("nope"); err == nil {
		t.Fatal("bad text accepted")
	}
	if !(NodeID{}).IsZero() || id.IsZero() {
		t.Fatal("IsZero")
	}
}

func TestNodeTypeString(t *testing.T) {
	for typ, want := range map[NodeType]string{Client: "client", MgrServer: "mgrserver", Login: "login", Gateway: "gateway", 7: "type7"} {
		if typ.String() != want {
			t.Errorf("%d: %q", typ, typ.String())
		}
	}
}
