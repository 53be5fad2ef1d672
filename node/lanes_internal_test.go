package node

import (
	"testing"
	"time"
)

// A claimed lane (a link's reader runs the callback itself) keeps the
// order of its key's callbacks: what is posted meanwhile runs after the
// claimed callback, even with the lane's goroutine parked and waiting for
// work, and a second claim is refused while the first runs.
func TestClaimedLaneKeepsOrder(t *testing.T) {
	q := newLanes()
	defer q.close()
	ran := make(chan string, 4)
	q.post("alice", func() { ran <- "first" })
	if got := <-ran; got != "first" {
		t.Fatal(got)
	}
	waitLaneParked(t, q)

	l := q.claim("alice")
	if l == nil {
		t.Fatal("an idle lane refused a claim")
	}
	if q.claim("alice") != nil {
		t.Fatal("a claimed lane was claimed twice")
	}
	q.post("alice", func() { ran <- "posted" })
	q.run(l, func() {
		// Long enough for a wrongly woken lane goroutine to run "posted".
		select {
		case got := <-ran:
			t.Errorf("%q ran while the claimed callback ran", got)
		case <-time.After(50 * time.Millisecond):
		}
		ran <- "claimed"
	})
	for _, want := range []string{"claimed", "posted"} {
		select {
		case got := <-ran:
			if got != want {
				t.Fatalf("ran %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q never ran", want)
		}
	}
}

// A lane with work queued or running cannot be claimed: the message goes
// behind that work.
func TestBusyLaneRefusesClaim(t *testing.T) {
	q := newLanes()
	defer q.close()
	release := make(chan struct{})
	running := make(chan struct{})
	q.post("bob", func() { close(running); <-release })
	<-running
	if q.claim("bob") != nil {
		t.Fatal("a lane running a callback was claimed")
	}
	close(release)
}

// waitLaneParked waits until q has a lane goroutine parked for more work.
func waitLaneParked(t *testing.T, q *lanes) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i := range q.ls {
			l := &q.ls[i]
			l.mu.Lock()
			parked := l.running && l.idle
			l.mu.Unlock()
			if parked {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no lane goroutine parked")
		}
		time.Sleep(time.Millisecond)
	}
}
