package resume

import (
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// offlineCore is a core with the logins subscription up.
func offlineCore(size int) *NodeCore {
	c := newCore(NodeConfig{OfflineCache: size})
	c.LinkUp(t0, gw1)
	c.SubUp(t0)
	return c
}

// lookupOffline sends one message to name and answers its lookup with
// Offline; it fails unless exactly one lookup was asked.
func lookupOffline(t *testing.T, c *NodeCore, name string) {
	t.Helper()
	out, err := c.Send(t0, name, 1, nil)
	if err != nil || len(out.Lookups) != 1 {
		t.Fatalf("send to %s: %d lookups, %v", name, len(out.Lookups), err)
	}
	c.Offline(t0, name)
}

func TestOfflineCachedUntilAnnounced(t *testing.T) {
	c := offlineCore(10)
	lookupOffline(t, c, "bob")
	out, _ := c.Send(t0, "bob", 7, nil)
	if len(out.Lookups) != 0 || len(out.Events) != 1 || out.Events[0].Kind != EvUndeliverable || out.Events[0].Cmd != 7 || out.Events[0].Code != wire.CodeNoNode {
		t.Fatalf("known offline: lookups %v events %+v", out.Lookups, out.Events)
	}
	if c.Bytes() != 0 {
		t.Fatalf("%d bytes kept for an offline account", c.Bytes())
	}
	if out := c.Kick(t0, "bob", 0, "x"); len(out.Lookups) != 0 || len(out.Frames) != 0 {
		t.Fatal("a kick of an offline account looked it up")
	}
	c.Announced(t0, "bob")
	if out, _ := c.Send(t0, "bob", 8, nil); len(out.Lookups) != 1 || len(out.Events) != 0 {
		t.Fatalf("after the login's announcement: lookups %v events %+v", out.Lookups, out.Events)
	}
	st := c.OfflineStats()
	if st.Hits != 2 || st.Cached != 1 || st.Invalidations != 1 || st.Entries != 0 || st.Announcements != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The race the generation and the per-lookup flag close: a lookup reads
// Redis before a login, the login's announcement is applied before the
// lookup's answer. The answer must not be cached (nothing would remove
// it), and the messages are not dropped: the holder is looked up again.
func TestOfflineAnswerOlderThanAnnouncement(t *testing.T) {
	c := offlineCore(10)
	out, _ := c.Send(t0, "late", 1, []byte("a"))
	if len(out.Lookups) != 1 {
		t.Fatal("no lookup")
	}
	c.Announced(t0, "late")     // the login, announced first
	out = c.Offline(t0, "late") // then the answer read before it
	if len(out.Events) != 0 || len(out.Lookups) != 1 {
		t.Fatalf("stale offline answer: events %+v lookups %v", out.Events, out.Lookups)
	}
	out = c.Holder(t0, "late", gw1, 5)
	if got := framesTo(t, out, gw1); !eqSeqs(seqs(got), 1) {
		t.Fatalf("the message was not sent to the new holder: %v", seqs(got))
	}
	if st := c.OfflineStats(); st.Entries != 0 || st.Relooked != 1 || st.Cached != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Had the login ended before the second lookup, the second answer is
	// an ordinary offline, cached.
	c.NotHere(t0, gw1, "late", 5)
	c.Offline(t0, "late")
	if st := c.OfflineStats(); st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A lookup issued while the subscription was down, or before it was
// renewed, or before a gateway restored records, is not cached: events in
// between may have been missed.
func TestOfflineGenerations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		event func(c *NodeCore)
	}{
		{"down", func(c *NodeCore) { c.SubDown(t0) }},
		{"renewed", func(c *NodeCore) { c.SubDown(t0); c.SubUp(t0) }},
		{"resubscribed without an error seen", func(c *NodeCore) { c.SubUp(t0) }},
		{"restored", func(c *NodeCore) { c.FlushOffline(t0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := offlineCore(10)
			lookupOffline(t, c, "cached")
			c.Send(t0, "inflight", 1, nil)
			tc.event(c)
			c.Offline(t0, "inflight")
			st := c.OfflineStats()
			if st.Entries != 0 {
				t.Fatalf("%d entries survived (stats %+v)", st.Entries, st)
			}
			c.SubUp(t0)
			lookupOffline(t, c, "again")
			if st := c.OfflineStats(); st.Entries != 1 {
				t.Fatalf("not cached once up again: %+v", st)
			}
		})
	}
	c := newCore(NodeConfig{OfflineCache: 10}) // never subscribed
	lookupOffline(t, c, "x")
	if out, _ := c.Send(t0, "x", 1, nil); len(out.Lookups) != 1 {
		t.Fatal("cached without a subscription")
	}
}

func TestOfflineCacheBounded(t *testing.T) {
	c := offlineCore(3)
	for _, a := range []string{"a", "b", "c"} {
		lookupOffline(t, c, a)
	}
	c.Send(t0, "a", 1, nil)  // a is now the most recently used
	lookupOffline(t, c, "d") // evicts b
	st := c.OfflineStats()
	if st.Entries != 3 || st.Evictions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if out, _ := c.Send(t0, "b", 1, nil); len(out.Lookups) != 1 {
		t.Fatal("the least recently used entry was kept")
	}
	for _, a := range []string{"a", "c", "d"} {
		if out, _ := c.Send(t0, a, 1, nil); len(out.Lookups) != 0 {
			t.Fatalf("%s evicted", a)
		}
	}
	// Many random accounts: the cache stays at its bound.
	for i := 0; i < 1000; i++ {
		name := string(rune('A'+i%26)) + string(rune('0'+i))
		c.Send(t0, name, 1, nil)
		c.Offline(t0, name)
	}
	if st := c.OfflineStats(); st.Entries != 3 {
		t.Fatalf("%d entries", st.Entries)
	}
}

// Learning a holder by any event (SessionOnline, a client's message, a
// resume) removes the entry; an entry older than OfflineMaxAge is not used.
func TestOfflineEntryRemovedByEventsAndAge(t *testing.T) {
	c := offlineCore(10)
	lookupOffline(t, c, "p")
	c.Deliver(t0, gw1, "p", 9, 0)
	if st := c.OfflineStats(); st.Entries != 0 || st.Invalidations != 1 {
		t.Fatalf("stats %+v", st)
	}
	c = newCore(NodeConfig{OfflineCache: 10, OfflineMaxAge: time.Minute})
	c.LinkUp(t0, gw1)
	c.SubUp(t0)
	lookupOffline(t, c, "q")
	if out, _ := c.Send(t0.Add(59*time.Second), "q", 1, nil); len(out.Lookups) != 0 {
		t.Fatal("a fresh entry was not used")
	}
	if out, _ := c.Send(t0.Add(61*time.Second), "q", 1, nil); len(out.Lookups) != 1 {
		t.Fatal("an entry past its age was used")
	}
}

// Messages to random accounts with no session hold no memory once
// answered, with or without the cache.
func TestOfflineAccountsNotKept(t *testing.T) {
	for _, size := range []int{0, 3} {
		c := offlineCore(size)
		for i := 0; i < 1000; i++ {
			name := "r" + string(rune('0'+i%10)) + string(rune('a'+i/10%26)) + string(rune('A'+i/260))
			c.Send(t0, name, 1, nil)
			c.Offline(t0, name)
		}
		if n := c.Accounts(); n != 0 {
			t.Fatalf("cache %d: %d accounts kept", size, n)
		}
	}
}
