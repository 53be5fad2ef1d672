package gateway

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
)

func TestParseRateLimits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []RateLimit
		err  bool
	}{
		{in: "", want: nil},
		{in: " ; ", want: nil},
		{in: "frames=50", want: []RateLimit{{Frames: 50}}},
		{in: "frames=50,burst=100,bytes=64KiB,byte-burst=1m", want: []RateLimit{{Frames: 50, FrameBurst: 100, Bytes: 64 << 10, ByteBurst: 1 << 20}}},
		{in: "type=7,frames=2.5,action=kick; cmd=4000-4099,bytes=100k", want: []RateLimit{
			{MinType: 7, MaxType: 7, Frames: 2.5, Kick: true},
			{MinCmd: 4000, MaxCmd: 4099, Bytes: 100 << 10},
		}},
		{in: "type=5-9, frames = 3 , action=error", want: []RateLimit{{MinType: 5, MaxType: 9, Frames: 3}}},
		{in: "type=7", err: true},                      // no rate
		{in: "type=9-5,frames=1", err: true},           // descending
		{in: "type=70000,frames=1", err: true},         // not a type
		{in: "cmd=0,frames=1", err: true},              // no node
		{in: "frames=x", err: true},                    // not a number
		{in: "frames=1,speed=2", err: true},            // unknown key
		{in: "frames=1,action=ban", err: true},         // unknown action
		{in: "frames", err: true},                      // no value
		{in: "bytes=1TiB", err: true},                  // unknown unit
		{in: "bytes=99999999999999999999k", err: true}, // overflow
	} {
		got, err := ParseRateLimits(tc.in)
		if tc.err {
			if !errors.Is(err, ErrRateLimit) {
				t.Errorf("%q: err %v, want ErrRateLimit", tc.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestRateLimitValidate(t *testing.T) {
	const maxFrame = 1000
	r := RateLimit{Frames: 2.5, Bytes: 100}
	if err := r.validate(maxFrame); err != nil {
		t.Fatal(err)
	}
	if r.FrameBurst != 3 || r.ByteBurst != maxFrame+frameOverhead {
		t.Fatalf("defaults: %+v", r)
	}
	if s := r.String(); s != "frames=2.5,burst=3,bytes=100,byte-burst=1018" {
		t.Fatalf("String %q", s)
	}
	for _, bad := range []RateLimit{
		{},
		{Frames: -1},
		{MinType: 4, MaxType: 5, MinCmd: 1, MaxCmd: 2, Frames: 1},
		{MinType: 1, MaxType: 2, Frames: 1}, // reserved types
		{Bytes: 10, ByteBurst: 10},          // a large frame could never pass
		{Frames: 1, FrameBurst: -1},
	} {
		if err := bad.validate(maxFrame); !errors.Is(err, ErrRateLimit) {
			t.Errorf("%+v: %v, want ErrRateLimit", bad, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Redis, cfg.Secret = nilRedis(t), "s"
	in := []RateLimit{{Frames: 1}}
	cfg.RateLimits = in
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if in[0].FrameBurst != 0 || cfg.RateLimits[0].FrameBurst != 1 {
		t.Fatal("validate must fill the defaults in its own copy")
	}
}

func TestBuckets(t *testing.T) {
	const sec = int64(time.Second)
	limits := []RateLimit{
		{Frames: 10, FrameBurst: 2},                          // every message
		{MinType: 5, MaxType: 5, Bytes: 100, ByteBurst: 100}, // type 5: bytes
		{MinCmd: 6000, MaxCmd: 6009, Frames: 1, FrameBurst: 1, Kick: true},
	}
	b := newBuckets(limits, 0)
	steps := []struct {
		now  int64
		t    common.NodeType
		cmd  uint64
		size int
		want int
	}{
		{0, 4, 4001, 10, -1},
		{0, 4, 4001, 10, -1},
		{0, 4, 4001, 10, 0},            // burst of 2 spent
		{sec / 10, 4, 4001, 10, -1},    // 1 token back after 100 ms
		{sec / 10, 4, 4001, 10, 0},     //
		{sec, 5, 5001, 80, -1},         // bytes: 100 → 20
		{sec, 5, 5001, 30, 1},          // 20 < 30: refused by limit 1...
		{sec, 4, 4001, 10, -1},         // ...and it took no frame token:
		{sec, 4, 4001, 10, 0},          // of 2, the type 5 message took 1
		{sec + sec/2, 5, 5001, 70, -1}, // 20+50 bytes
		{2 * sec, 6, 6001, 1, -1},      // cmd range
		{2 * sec, 6, 6001, 1, 2},       // 1/s
		{2*sec - sec, 6, 6001, 1, 2},   // a clock step back adds nothing
		{3 * sec, 6, 6001, 1, -1},      //
		{100 * sec, 4, 4001, 10, -1},   // refilled to the burst, not beyond
		{100 * sec, 4, 4001, 10, -1},   //
		{100 * sec, 4, 4001, 10, 0},    //
	}
	for i, st := range steps {
		if got := b.take(limits, st.now, st.t, st.cmd, st.size); got != st.want {
			t.Fatalf("step %d (%+v): got %d, want %d (state %+v)", i, st, got, st.want, b)
		}
	}
}

// A long run at exactly the rate passes every message; a run at twice the
// rate passes half of them (plus the burst).
func TestBucketsSteadyRate(t *testing.T) {
	limits := []RateLimit{{Frames: 100, FrameBurst: 10}}
	b := newBuckets(limits, 0)
	step := int64(time.Second) / 100
	for i := int64(1); i <= 1000; i++ {
		if b.take(limits, i*step, 4, 4000, 1) != -1 {
			t.Fatalf("message %d at the rate refused", i)
		}
	}
	passed := 0
	start := 1000 * step
	for i := int64(1); i <= 2000; i++ {
		if b.take(limits, start+i*step/2, 4, 4000, 1) == -1 {
			passed++
		}
	}
	if passed < 1000 || passed > 1010 {
		t.Fatalf("at twice the rate %d of 2000 passed, want 1000-1010", passed)
	}
}

func FuzzParseRateLimits(f *testing.F) {
	for _, s := range []string{"", "frames=50", "type=7,frames=2,burst=5,action=kick; cmd=4000-4099,bytes=64KiB", "bytes=1m,byte-burst=2MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		limits, err := ParseRateLimits(s)
		if err != nil {
			if !errors.Is(err, ErrRateLimit) {
				t.Fatalf("%q: error %v does not wrap ErrRateLimit", s, err)
			}
			return
		}
		for i := range limits {
			r := limits[i]
			if r.validate(64<<10) != nil {
				continue
			}
			// What String writes parses back to the same limit.
			back, err := ParseRateLimits(r.String())
			if err != nil || len(back) != 1 {
				t.Fatalf("%q: String %q does not parse: %v", s, r.String(), err)
			}
			if back[0].validate(64<<10) != nil || back[0] != r {
				t.Fatalf("%q: %+v round-trips to %+v", s, r, back[0])
			}
			b := newBuckets(limits[i:i+1], 0)
			b.take(limits[i:i+1], 1, r.MinType, r.MinCmd, 1)
		}
	})
}
