package node

import (
	"math/rand"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
)

// Links to a gateway that keep failing, or that it accepts and drops at
// once, are tried again after a delay that doubles up to relayRetryMax
// (jittered by [0.5, 1.5)), not at every reconcile tick: a gateway that
// refuses every link is not hammered four times a second, with a warning
// each time. A link that lasted resets the delay.
func TestLinkRetryBacksOff(t *testing.T) {
	r := &relay{n: &Node{cfg: Config{Rand: rand.New(rand.NewSource(1))}}, retry: map[common.NodeID]*linkRetry{}}
	id := common.NewNodeID()
	base := relayRetryMin
	for i := 0; i < 8; i++ {
		before := time.Now()
		r.linkEnded(id, i%2 == 0, time.Second) // refused, or accepted and dropped at once
		wait := r.retry[id].until.Sub(before)
		if lo, hi := base/2, base*3/2+50*time.Millisecond; wait < lo || wait > hi {
			t.Fatalf("failure %d: next dial in %v, want within [%v, %v]", i+1, wait, lo, hi)
		}
		base = min(2*base, relayRetryMax)
	}
	r.linkEnded(id, true, relayRetryMax)
	if r.retry[id] != nil {
		t.Fatal("a link that lasted did not reset the backoff")
	}
}
