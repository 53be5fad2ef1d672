package game

import (
	"errors"
	"testing"

	"github.com/xserver/xserver/common"
)

func TestRoundTrip(t *testing.T) {
	in := Matched{MatchID: "m1", Account: "a", Mode: "duel", Opponent: Player{Account: "b", Name: "Bee"}}
	var out Matched
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(b, &out); err != nil || out != in {
		t.Fatalf("%+v %v", out, err)
	}
	if err := Decode([]byte("{"), &out); !errors.Is(err, common.ErrBadInput) {
		t.Fatalf("bad JSON: %v", err)
	}
	if CmdEnter/Offset != uint64(LobbyType) || CmdQueue/Offset != uint64(LobbyType) {
		t.Fatal("client cmds must address the lobby type")
	}
}
