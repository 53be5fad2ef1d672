package mgrserver

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestNodesDocumented: docs/OPERATIONS.md describes every field of the
// /nodes document and of its elements.
func TestNodesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, typ := range []reflect.Type{reflect.TypeFor[Status](), reflect.TypeFor[NodeStatus]()} {
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !strings.Contains(doc, `"`+name+`":`) {
				t.Errorf("docs/OPERATIONS.md shows no /nodes document with %s.%s (%q)", typ.Name(), typ.Field(i).Name, name)
			}
			if typ == reflect.TypeFor[NodeStatus]() && !strings.Contains(doc, "| `"+name+"` |") {
				t.Errorf("docs/OPERATIONS.md does not explain the /nodes field %q", name)
			}
		}
	}
}
