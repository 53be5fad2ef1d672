package lease

import (
	"testing"
	"time"
)

func TestHolderValidOnlyWithinTTLLessMargin(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := Holder{TTL: 8 * time.Second, Margin: DefaultMargin(8 * time.Second), Grace: 30 * time.Second}
	if h.Valid(t0) {
		t.Fatal("valid before any confirmation")
	}
	h.Confirmed(t0)
	for _, tc := range []struct {
		at        time.Duration
		valid     bool
		stepsDown bool
	}{
		{0, true, false},
		{7 * time.Second, true, false},
		{7200 * time.Millisecond, false, false}, // TTL less the margin
		{8 * time.Second, false, false},         // a pause this long: not serving
		{38 * time.Second, false, false},
		{38*time.Second + time.Millisecond, false, true},
	} {
		if got := h.Valid(t0.Add(tc.at)); got != tc.valid {
			t.Errorf("Valid at +%v = %v, want %v", tc.at, got, tc.valid)
		}
		if got := h.GiveUp(t0.Add(tc.at)); got != tc.stepsDown {
			t.Errorf("GiveUp at +%v = %v, want %v", tc.at, got, tc.stepsDown)
		}
	}
	// A renewal confirmed late but sent early counts from its send time; a
	// late confirmation of an older send never moves validity back.
	h.Confirmed(t0.Add(5 * time.Second))
	h.Confirmed(t0.Add(4 * time.Second))
	if !h.Valid(t0.Add(12*time.Second)) || h.Valid(t0.Add(12300*time.Millisecond)) {
		t.Fatal("validity must run from the newest confirmed send")
	}
	h.Drop()
	if h.Valid(t0.Add(5 * time.Second)) {
		t.Fatal("valid after Drop")
	}
}

// Go's time.Now carries a monotonic reading, so a wall-clock step does not
// make a lease look valid longer.
func TestHolderUsesMonotonicTime(t *testing.T) {
	h := Holder{TTL: time.Second, Margin: DefaultMargin(time.Second)}
	now := time.Now()
	h.Confirmed(now)
	later := now.Add(2 * time.Second) // keeps the monotonic reading
	if h.Valid(later) {
		t.Fatal("valid 2 s after a 1 s lease")
	}
}
