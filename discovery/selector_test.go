package discovery

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
)

// cand is a test candidate.
type cand struct {
	key  string
	load uint32
}

func (c cand) Key() string  { return c.key }
func (c cand) Load() uint32 { return c.load }

func cands(ks ...string) []cand {
	out := make([]cand, len(ks))
	for i, k := range ks {
		out[i] = cand{key: k}
	}
	return out
}

func newTestSelector(seed int64, items []cand) *Selector[cand] {
	s := NewSelector[cand](rand.New(rand.NewSource(seed)))
	s.Update(items)
	return s
}

func TestModeString(t *testing.T) {
	tests := []struct {
		mode Mode
		name string
	}{
		{Random, "random"},
		{RoundRobin, "round-robin"},
		{LeastLoad, "least-load"},
		{ConsistentHash, "consistent-hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.mode.String(); got != tt.name {
				t.Fatalf("String() = %q, want %q", got, tt.name)
			}
			got, err := ParseMode(tt.name)
			if err != nil || got != tt.mode {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v", tt.name, got, err, tt.mode)
			}
		})
	}
	if got := Mode(42).String(); got != "Mode(42)" {
		t.Fatalf("Mode(42).String() = %q", got)
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{in: " Round-Robin ", want: RoundRobin},
		{in: "LEAST-LOAD", want: LeastLoad},
		{in: "", wantErr: true},
		{in: "roundrobin", wantErr: true},
		{in: "Mode(42)", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownMode) {
					t.Fatalf("ParseMode(%q) error = %v, want ErrUnknownMode", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// Valid is the one check of the set of modes: every named mode passes,
// anything else fails naming the valid ones.
func TestModeValid(t *testing.T) {
	for _, m := range []Mode{Random, RoundRobin, LeastLoad, ConsistentHash} {
		if err := m.Valid(); err != nil {
			t.Errorf("%v: %v", m, err)
		}
		if back, err := ParseMode(m.String()); err != nil || back != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), back, err)
		}
	}
	for _, m := range []Mode{-1, ConsistentHash + 1} {
		err := m.Valid()
		if !errors.Is(err, ErrUnknownMode) || !strings.Contains(err.Error(), "consistent-hash") {
			t.Errorf("%v.Valid() = %v, want ErrUnknownMode listing the modes", m, err)
		}
	}
	if got, want := ModeNames(), "random, round-robin, least-load or consistent-hash"; got != want {
		t.Errorf("ModeNames() = %q, want %q", got, want)
	}
}

func TestSelectorErrors(t *testing.T) {
	tests := []struct {
		name  string
		items []cand
		mode  Mode
		want  error
	}{
		{"empty random", nil, Random, ErrNoServers},
		{"empty round robin", nil, RoundRobin, ErrNoServers},
		{"empty least load", []cand{}, LeastLoad, ErrNoServers},
		{"empty consistent hash", nil, ConsistentHash, ErrNoServers},
		{"unknown mode", cands("a"), Mode(99), ErrUnknownMode},
		{"negative mode", cands("a"), Mode(-1), ErrUnknownMode},
		{"unknown mode when empty", nil, Mode(4), ErrUnknownMode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSelector(1, tt.items)
			got, err := s.Get(tt.mode, "k")
			if !errors.Is(err, tt.want) {
				t.Fatalf("Get(%v) error = %v, want %v", tt.mode, err, tt.want)
			}
			if got != (cand{}) {
				t.Fatalf("Get(%v) returned %v with an error", tt.mode, got)
			}
		})
	}
}

func TestSelectorUpdateCopiesAndSorts(t *testing.T) {
	in := cands("c", "a", "b")
	s := newTestSelector(1, in)
	in[0] = cand{key: "zzz"}
	want := cands("a", "b", "c")
	if got := s.GetAll(); !slices.Equal(got, want) {
		t.Fatalf("GetAll() = %v, want %v (input mutated after Update)", got, want)
	}
	out := s.GetAll()
	out[0] = cand{key: "yyy"}
	if got := s.GetAll(); !slices.Equal(got, want) {
		t.Fatalf("GetAll() = %v, want %v (result of GetAll mutated)", got, want)
	}
	if s.Len() != 3 {
		t.Fatalf("Len() = %d, want 3", s.Len())
	}
}

func TestSelectorUpdateDuplicateKeys(t *testing.T) {
	s := newTestSelector(1, []cand{{"b", 1}, {"a", 1}, {"b", 2}, {"b", 3}, {"a", 4}})
	if got, want := s.GetAll(), []cand{{"a", 4}, {"b", 3}}; !slices.Equal(got, want) {
		t.Fatalf("GetAll() = %v, want %v", got, want)
	}
}

func TestSelectorRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		n    int
		seed int64
	}{
		{"one", 1, 1},
		{"two", 2, 2},
		{"five", 5, 3},
		{"seven", 7, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := make([]cand, tt.n)
			for i := range items {
				items[i] = cand{key: fmt.Sprintf("s%d", i)}
			}
			s := newTestSelector(tt.seed, items)
			shuffler := rand.New(rand.NewSource(tt.seed))
			var seq []string
			for round := range 4 {
				counts := make(map[string]int)
				for range tt.n {
					c, err := s.Get(RoundRobin, "")
					if err != nil {
						t.Fatal(err)
					}
					counts[c.key]++
					seq = append(seq, c.key)
					// An Update with the same set, in another order, must not
					// restart or repeat the rotation.
					same := slices.Clone(items)
					shuffler.Shuffle(len(same), func(i, j int) { same[i], same[j] = same[j], same[i] })
					s.Update(same)
				}
				for _, it := range items {
					if counts[it.key] != 1 {
						t.Fatalf("round %d: %s picked %d times in %d calls: %v", round, it.key, counts[it.key], tt.n, counts)
					}
				}
			}
			for i := tt.n; i < len(seq); i++ {
				if seq[i] != seq[i-tt.n] {
					t.Fatalf("rotation order changed: %v", seq)
				}
			}
		})
	}
}

func TestSelectorRoundRobinStartsAtSeededOffset(t *testing.T) {
	first := make(map[string]bool)
	for seed := range int64(20) {
		s := newTestSelector(seed, cands("a", "b", "c", "d"))
		c, _ := s.Get(RoundRobin, "")
		first[c.key] = true
	}
	if len(first) < 2 {
		t.Fatalf("every selector started on the same server: %v", first)
	}
}

func TestSelectorLeastLoad(t *testing.T) {
	tests := []struct {
		name  string
		items []cand
		calls int
		want  map[string]int
	}{
		{"single minimum", []cand{{"a", 5}, {"b", 1}, {"c", 3}}, 9, map[string]int{"b": 9}},
		{"tie spread evenly", []cand{{"a", 1}, {"b", 0}, {"c", 0}, {"d", 5}}, 100, map[string]int{"b": 50, "c": 50}},
		{"all tied", []cand{{"a", 2}, {"b", 2}, {"c", 2}}, 9, map[string]int{"a": 3, "b": 3, "c": 3}},
		{"zero and max", []cand{{"a", ^uint32(0)}, {"b", 0}}, 4, map[string]int{"b": 4}},
		{"one", []cand{{"a", 7}}, 3, map[string]int{"a": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSelector(5, tt.items)
			got := make(map[string]int)
			for range tt.calls {
				c, err := s.Get(LeastLoad, "")
				if err != nil {
					t.Fatal(err)
				}
				got[c.key]++
			}
			if len(got) != len(tt.want) {
				t.Fatalf("picks %v, want %v", got, tt.want)
			}
			for k, n := range tt.want {
				if got[k] != n {
					t.Fatalf("picks %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestSelectorRandomHitsAll(t *testing.T) {
	s := newTestSelector(8, cands("a", "b", "c", "d", "e"))
	got := make(map[string]int)
	for range 1000 {
		c, err := s.Get(Random, "")
		if err != nil {
			t.Fatal(err)
		}
		got[c.key]++
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if got[k] < 100 {
			t.Fatalf("random picks %v: %s picked %d times of 1000", got, k, got[k])
		}
	}
}

func TestSelectorConsistentHash(t *testing.T) {
	keysN := make([]string, 1000)
	for i := range keysN {
		keysN[i] = fmt.Sprintf("player-%d", i)
	}
	assign := func(s *Selector[cand]) map[string]string {
		m := make(map[string]string, len(keysN))
		for _, k := range keysN {
			c, err := s.Get(ConsistentHash, k)
			if err != nil {
				t.Fatal(err)
			}
			m[k] = c.key
		}
		return m
	}
	four := cands("s0", "s1", "s2", "s3")
	s := newTestSelector(1, four)
	before := assign(s)

	// Stable for a key: repeated calls, another seed, another input order.
	if again := assign(s); !mapsEqual(before, again) {
		t.Fatal("same selector mapped a key differently on a second call")
	}
	other := newTestSelector(99, cands("s3", "s1", "s0", "s2"))
	if again := assign(other); !mapsEqual(before, again) {
		t.Fatal("a selector with the same set mapped keys differently")
	}

	perServer := make(map[string]int)
	for _, v := range before {
		perServer[v]++
	}
	for _, c := range four {
		if perServer[c.key] < 100 {
			t.Fatalf("uneven ring: %v", perServer)
		}
	}

	s.Update(append(slices.Clone(four), cand{key: "s4"}))
	after := assign(s)
	moved := 0
	for k, was := range before {
		if now := after[k]; now != was {
			moved++
			if now != "s4" {
				t.Fatalf("key %s moved from %s to %s, not to the new server", k, was, now)
			}
		}
	}
	if moved == 0 || moved >= len(keysN)/3 {
		t.Fatalf("%d of %d keys moved going from 4 to 5 servers, want 0 < moved < %d", moved, len(keysN), len(keysN)/3)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSelectorConcurrent(t *testing.T) {
	s := newTestSelector(3, cands("a", "b", "c"))
	sets := [][]cand{cands("a", "b", "c"), cands("b", "c", "d", "e"), cands("a"), nil}
	var readers, writer sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.Get(Mode(i%4), fmt.Sprint(r, i))
				if err != nil && !errors.Is(err, ErrNoServers) {
					t.Errorf("Get: %v", err)
					return
				}
				_ = s.GetAll()
				_ = s.Len()
			}
		})
	}
	writer.Go(func() {
		for i := range 500 {
			s.Update(sets[i%len(sets)])
		}
	})
	writer.Wait()
	close(stop)
	readers.Wait()
}
