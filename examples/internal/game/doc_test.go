package game

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDocumented: docs/GAME.md, which clients and other nodes are written
// from, gives every command with its number and every JSON field of every
// body.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "GAME.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for name, cmd := range map[string]uint64{
		"CmdEnter": CmdEnter, "CmdWorld": CmdWorld, "CmdPrivate": CmdPrivate, "CmdOnline": CmdOnline, "CmdQueue": CmdQueue,
		"PushPresence": PushPresence, "PushWorld": PushWorld, "PushPrivate": PushPrivate, "PushMatched": PushMatched,
		"NodePresence": NodePresence, "NodeWho": NodeWho, "NodeEnqueue": NodeEnqueue,
		"NodeMatched": NodeMatched, "NodeDequeue": NodeDequeue,
	} {
		if !strings.Contains(doc, fmt.Sprintf("| `%d`", cmd)) {
			t.Errorf("docs/GAME.md has no table row for %s (%d)", name, cmd)
		}
	}
	for _, typ := range []int{int(LobbyType), int(MatchType)} {
		if !strings.Contains(doc, fmt.Sprintf("| `%d` |", typ)) {
			t.Errorf("docs/GAME.md does not describe node type %d", typ)
		}
	}
	for _, v := range []any{Player{}, Enter{}, EnterReply{}, OnlineList{}, WorldChat{}, PrivateChat{}, Queue{}, Ack{},
		ChatLine{}, Presence{}, Ticket{}, Matched{}, Enqueued{}, Dequeued{}} {
		for _, f := range jsonFields(reflect.TypeOf(v)) {
			if !strings.Contains(doc, `"`+f+`":`) {
				t.Errorf("docs/GAME.md shows no %T body with the field %q", v, f)
			}
		}
	}
}

// jsonFields are the JSON names of t's fields, embedded structs' included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}
