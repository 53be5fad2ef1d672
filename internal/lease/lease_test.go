package lease

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Record
		err  bool
	}{
		{"3 127.0.0.1:7300 abc", Record{3, "127.0.0.1:7300", "abc"}, false},
		{"0 a b", Record{}, true},
		{"x a b", Record{}, true},
		{"3 a", Record{}, true},
		{"3 a b c", Record{}, true},
		{"", Record{}, true},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if c.err {
			if !errors.Is(err, ErrBadRecord) {
				t.Errorf("%q: %v, want ErrBadRecord", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v", c.in, got, err)
		}
		if got.String() != c.in {
			t.Errorf("round trip %q -> %q", c.in, got.String())
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("3 127.0.0.1:7300 abc")
	f.Add("18446744073709551615 [::1]:1 t")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Epoch == 0 || r.Addr == "" || r.Token == "" {
			t.Fatalf("accepted %q as %+v", s, r)
		}
		if again, err := Parse(r.String()); err != nil || again != r {
			t.Fatalf("round trip of %q: %+v %v", s, again, err)
		}
	})
}
