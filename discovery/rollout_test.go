package discovery

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestParseRollouts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rollouts
		err  bool
	}{
		{in: "", want: nil},
		{in: "type=4,version=2.0,share=10%", want: Rollouts{{Type: 4, Version: "2.0", Share: 0.1}}},
		{in: "type=4,version=2.0,share=0.25,accounts=a|b; type=9,version=x", want: Rollouts{
			{Type: 4, Version: "2.0", Share: 0.25, Accounts: map[string]struct{}{"a": {}, "b": {}}},
			{Type: 9, Version: "x"},
		}},
		{in: "version=2.0", err: true},
		{in: "type=4", err: true},
		{in: "type=3,version=2", err: true},
		{in: "type=4,version=2,share=120%", err: true},
		{in: "type=4,version=2,share=-1", err: true},
		{in: "type=4,version=2,color=red", err: true},
		{in: "type=4,version=2;type=4,version=3", err: true},
	} {
		got, err := ParseRollouts(tc.in)
		if tc.err {
			if !errors.Is(err, ErrRollout) {
				t.Errorf("%q: %v, want ErrRollout", tc.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

type ver struct{ key, v string }

func (c ver) Key() string  { return c.key }
func (c ver) Load() uint32 { return 0 }
func version(c ver) string { return c.v }

func TestNarrow(t *testing.T) {
	r := &Rollout{Type: 4, Version: "2"}
	mixed := []ver{{"a", "1"}, {"b", "2"}, {"c", "1"}}
	if got := Narrow(r, true, mixed, version); !reflect.DeepEqual(got, []ver{{"b", "2"}}) {
		t.Errorf("new side: %v", got)
	}
	if got := Narrow(r, false, mixed, version); !reflect.DeepEqual(got, []ver{{"a", "1"}, {"c", "1"}}) {
		t.Errorf("old side: %v", got)
	}
	old := []ver{{"a", "1"}}
	if got := Narrow(r, true, old, version); !reflect.DeepEqual(got, old) {
		t.Errorf("no new instance: %v, want every instance", got)
	}
	if got := Narrow(r, true, []ver(nil), version); got != nil {
		t.Errorf("none: %v", got)
	}
	// Rendezvous keeps a key on its item while others come and go.
	items := []ver{{"a", ""}, {"b", ""}, {"c", ""}}
	moved := 0
	for i := range 300 {
		k := fmt.Sprint("acct-", i)
		before := Rendezvous(k, items)
		if after := Rendezvous(k, items[:2]); before.key != "c" && after != before {
			t.Fatalf("%s moved from %v to %v though its item stayed", k, before, after)
		} else if before.key == "c" {
			moved++
		}
	}
	if moved < 50 || moved > 150 {
		t.Errorf("%d of 300 keys on one of 3 items", moved)
	}
}

// The share is the share of accounts: 2 000 accounts at 10 % give 10 %
// ± 3 %, and the side of an account does not depend on anything else.
func TestRolloutShareOfAccounts(t *testing.T) {
	for _, share := range []float64{0, 0.01, 0.1, 0.5, 1} {
		r := &Rollout{Type: 4, Version: "2", Share: share}
		in := 0
		for i := range 2000 {
			if r.In(fmt.Sprintf("player-%d", i)) {
				in++
			}
		}
		if got := float64(in) / 2000; got < share-0.03 || got > share+0.03 {
			t.Errorf("share %v: %v of the accounts", share, got)
		}
	}
	r := &Rollout{Type: 4, Version: "2", Accounts: map[string]struct{}{"qa": {}}}
	if !r.In("qa") || r.In("player-1") {
		t.Error("listed accounts")
	}
}

func FuzzParseRollouts(f *testing.F) {
	for _, s := range []string{"type=4,version=2.0,share=10%,accounts=a|b", "type=5,version=x;type=6,version=y,share=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRollouts(s)
		if err != nil {
			if !errors.Is(err, ErrRollout) {
				t.Fatalf("%q: %v does not wrap ErrRollout", s, err)
			}
			return
		}
		for i := range rs {
			if rs[i].Share < 0 || rs[i].Share > 1 || rs[i].Version == "" || rs[i].Type < 4 {
				t.Fatalf("%q: %+v", s, rs[i])
			}
			_ = rs[i].String()
			_ = rs[i].In(s)
		}
	})
}
