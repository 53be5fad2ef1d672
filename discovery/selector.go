package discovery

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors of the selector. Get and ParseMode wrap them with detail;
// test with errors.Is.
var (
	// ErrNoServers: the selector holds no candidates.
	ErrNoServers = errors.New("discovery: no available servers")
	// ErrUnknownMode: the select mode is not one of the Mode constants.
	ErrUnknownMode = errors.New("discovery: select mode not supported")
)

// Mode is a selection strategy.
type Mode int

// Selection strategies.
const (
	// Random picks a uniformly random candidate.
	Random Mode = iota
	// RoundRobin visits every candidate once per n calls, in key order.
	RoundRobin
	// LeastLoad picks the candidate with the smallest Load, spreading ties
	// round-robin.
	LeastLoad
	// ConsistentHash maps a key to a candidate on a hash ring, so a key
	// keeps its candidate while the set is stable and few keys move when
	// it changes.
	ConsistentHash
)

var modeNames = [...]string{
	Random:         "random",
	RoundRobin:     "round-robin",
	LeastLoad:      "least-load",
	ConsistentHash: "consistent-hash",
}

// String returns the name ParseMode accepts, or "Mode(n)" for an unknown
// value.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "random", "round-robin", "least-load" or
// "consistent-hash" (case and surrounding spaces ignored). Other input gives
// an error wrapping ErrUnknownMode that lists the valid names.
func ParseMode(s string) (Mode, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for m, n := range modeNames {
		if n == name {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want %s)", ErrUnknownMode, s, ModeNames())
}

// Valid returns nil for one of the Mode constants, else an error wrapping
// ErrUnknownMode. It is the one check of the set of modes: configs and
// flag parsers call it (or ParseMode) rather than listing the modes.
func (m Mode) Valid() error {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Errorf("%w: %v (want %s)", ErrUnknownMode, m, ModeNames())
	}
	return nil
}

// ModeNames lists the names ParseMode accepts, for usage and error texts:
// "random, round-robin, least-load or consistent-hash".
func ModeNames() string {
	return strings.Join(modeNames[:len(modeNames)-1], ", ") + " or " + modeNames[len(modeNames)-1]
}

// Candidate is an item a Selector chooses among. Key is its stable identity
// (the sort and hash key); Load is its current load for LeastLoad. Both may
// be called concurrently from any goroutine calling Get and must not block.
type Candidate interface {
	Key() string
	Load() uint32
}

// VirtualNodes is the number of points each candidate gets on the
// consistent-hash ring.
const VirtualNodes = 160

// ringPoint is one virtual node: a hash and the index of its candidate.
type ringPoint struct {
	hash uint64
	idx  int
}

// selectorState is an immutable snapshot published by Update.
type selectorState[T Candidate] struct {
	items []T         // sorted by Key, unique keys
	ring  []ringPoint // sorted by hash, then idx
}

// Selector picks one of a set of candidates by a Mode.
//
// Concurrency: atomic copy-on-write snapshot. Update builds a new immutable
// state (sorted candidates and hash ring) and publishes it through an
// atomic.Pointer; Get, GetAll and Len read the current snapshot without
// locking. The round-robin positions are atomic counters that survive
// Update. The random source is guarded by a mutex. All methods are safe for
// concurrent use.
type Selector[T Candidate] struct {
	state atomic.Pointer[selectorState[T]]
	// rrIndex counts RoundRobin picks; llIndex spreads LeastLoad ties.
	rrIndex atomic.Uint64
	llIndex atomic.Uint64

	// mu guards rnd.
	mu  sync.Mutex
	rnd *rand.Rand
}

// NewSelector returns an empty Selector. r drives Random and the starting
// round-robin position; nil means a time-seeded source. The Selector owns r
// afterwards.
func NewSelector[T Candidate](r *rand.Rand) *Selector[T] {
	if r == nil {
		r = rand.New(rand.NewSource(time.Now().UnixNano()))
	}
	s := &Selector[T]{rnd: r}
	s.state.Store(&selectorState[T]{})
	// Start at a random position so that many clients do not all begin on
	// the same server (as geerpc does).
	s.rrIndex.Store(uint64(r.Int63()))
	s.llIndex.Store(uint64(r.Int63()))
	return s
}

// Update replaces the candidate set with a copy of items, sorted by Key so
// that the order (and so the round-robin rotation) does not depend on the
// caller's order. Of items sharing a key the last one wins. The caller keeps
// ownership of items.
func (s *Selector[T]) Update(items []T) {
	keyed := make([]keyedItem[T], 0, len(items))
	for i, it := range items {
		keyed = append(keyed, keyedItem[T]{key: it.Key(), pos: i, item: it})
	}
	// Sort by key, later duplicates first so that Compact keeps them.
	slices.SortFunc(keyed, func(a, b keyedItem[T]) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return b.pos - a.pos
	})
	keyed = slices.CompactFunc(keyed, func(a, b keyedItem[T]) bool { return a.key == b.key })

	st := &selectorState[T]{
		items: make([]T, len(keyed)),
		ring:  make([]ringPoint, 0, len(keyed)*VirtualNodes),
	}
	for i, k := range keyed {
		st.items[i] = k.item
		for v := range VirtualNodes {
			st.ring = append(st.ring, ringPoint{hash: ringHash(k.key + "#" + strconv.Itoa(v)), idx: i})
		}
	}
	slices.SortFunc(st.ring, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return a.idx - b.idx
	})
	s.state.Store(st)
}

type keyedItem[T any] struct {
	key  string
	pos  int
	item T
}

// ringHash is FNV-1a (64 bit) followed by a 64-bit finaliser, so that keys
// differing only in their last characters still spread over the ring.
func ringHash(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// GetAll returns a copy of the candidates, sorted by key.
func (s *Selector[T]) GetAll() []T {
	return slices.Clone(s.state.Load().items)
}

// Len returns the number of candidates.
func (s *Selector[T]) Len() int { return len(s.state.Load().items) }

// Get picks a candidate by mode. key is used by ConsistentHash only. It
// returns an error wrapping ErrUnknownMode for an unknown mode and one
// wrapping ErrNoServers when there are no candidates. It never blocks.
func (s *Selector[T]) Get(mode Mode, key string) (T, error) {
	var zero T
	if err := mode.Valid(); err != nil {
		return zero, err
	}
	st := s.state.Load()
	n := len(st.items)
	if n == 0 {
		return zero, fmt.Errorf("%w (mode %v)", ErrNoServers, mode)
	}
	switch mode {
	case Random:
		s.mu.Lock()
		i := s.rnd.Intn(n)
		s.mu.Unlock()
		return st.items[i], nil
	case RoundRobin:
		i := (s.rrIndex.Add(1) - 1) % uint64(n)
		return st.items[i], nil
	case LeastLoad:
		return st.leastLoad(s.llIndex.Add(1) - 1), nil
	default: // ConsistentHash
		return st.lookup(key), nil
	}
}

// leastLoad returns a candidate of minimum load; ticket picks among ties.
// Load is read once per candidate so a changing load cannot skew the choice.
func (st *selectorState[T]) leastLoad(ticket uint64) T {
	minLoad := uint32(0)
	var tied []int
	for i, it := range st.items {
		l := it.Load()
		switch {
		case len(tied) == 0 || l < minLoad:
			minLoad = l
			tied = append(tied[:0], i)
		case l == minLoad:
			tied = append(tied, i)
		}
	}
	return st.items[tied[ticket%uint64(len(tied))]]
}

// lookup returns the candidate owning key on the ring: the first virtual
// node at or after the key's hash, wrapping around.
func (st *selectorState[T]) lookup(key string) T {
	h := ringHash(key)
	i, _ := slices.BinarySearchFunc(st.ring, h, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(st.ring) {
		i = 0
	}
	return st.items[st.ring[i].idx]
}
