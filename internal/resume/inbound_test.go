package resume

import (
	"testing"
)

func TestInboundAccept(t *testing.T) {
	type step struct {
		sid  uint64
		csq  uint32
		want bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{1, 1, true}, {1, 2, true}, {1, 3, true}}},
		{"duplicate", []step{{1, 1, true}, {1, 2, true}, {1, 2, false}, {1, 1, false}}},
		{"resend inside the window", []step{{1, 1, true}, {1, 3, true}, {1, 2, true}, {1, 2, false}, {1, 3, false}}},
		{"version 1 always new", []step{{1, 0, true}, {1, 0, true}}},
		{"older than the window", []step{{1, 1, true}, {1, 300, true}, {1, 44, false}, {1, 45, true}, {1, 45, false}}},
		{"jump past the window clears it", []step{{1, 5, true}, {1, 5 + Window, true}, {1, 6, true}, {1, 5, false}}},
		{"new session restarts", []step{{1, 1, true}, {1, 2, true}, {2, 1, true}, {2, 2, true}, {2, 2, false}}},
		{"shift across words", []step{{1, 10, true}, {1, 80, true}, {1, 10, false}, {1, 11, true}, {1, 150, true}, {1, 80, false}, {1, 10, false}, {1, 12, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in Inbound
			for i, s := range tc.steps {
				if got := in.Accept(s.sid, s.csq); got != s.want {
					t.Fatalf("step %d: Accept(%d, %d) = %v, want %v", i, s.sid, s.csq, got, s.want)
				}
			}
		})
	}
}

func TestInboundStateUnion(t *testing.T) {
	// Two nodes saw interleaved messages 1…10 of one session (a: odd,
	// b: even but 6). Their union says 1–5 and 7–10 were processed.
	var a, b Inbound
	for i := uint32(1); i <= 10; i++ {
		switch {
		case i%2 == 1:
			a.Accept(7, i)
		case i != 6:
			b.Accept(7, i)
		}
	}
	var p Processed
	p.Add(a.State())
	p.Add(b.State())
	if p.Hi() != 10 {
		t.Fatalf("hi %d", p.Hi())
	}
	for i := uint32(1); i <= 10; i++ {
		if p.Has(i) != (i != 6) {
			t.Errorf("Has(%d) = %v", i, p.Has(i))
		}
	}
	if f := p.Floor(0); f != 5 {
		t.Errorf("floor %d, want 5", f)
	}
	if f := p.Floor(6); f != 10 {
		t.Errorf("floor from 6 = %d, want 10", f)
	}
}

func FuzzInbound(f *testing.F) {
	f.Add([]byte{1, 2, 3, 2, 1, 200, 3, 4})
	f.Fuzz(func(t *testing.T, steps []byte) {
		// Against a model: a set of accepted csqs, with everything more
		// than Window below the highest one treated as seen.
		var in Inbound
		seen := map[uint32]bool{}
		var hi uint32
		csq := uint32(0)
		for _, b := range steps {
			csq = (csq + uint32(b)) % 2000
			if csq == 0 {
				continue
			}
			want := !seen[csq] && !(hi >= Window && csq <= hi-Window)
			if got := in.Accept(1, csq); got != want {
				t.Fatalf("Accept(%d) = %v, want %v (hi %d)", csq, got, want, hi)
			}
			if want {
				seen[csq] = true
				hi = max(hi, csq)
			}
		}
	})
}
