package resume

import "time"

// offlineCache remembers accounts a holder lookup found without a session,
// so that further messages to them cost no lookup. It is a bounded LRU:
// the least recently used entry is evicted when it is full (a node, or a
// player it relays for, may message any number of random accounts).
//
// Entries are valid only while the node's subscription to the gateways'
// logins channel is up and unbroken since the lookup was issued: a login
// announcement removes the account's entry, and a lost, renewed or
// doubtful subscription (or a gateway restoring records after Redis lost
// them) removes every entry. See NodeCore.SubUp and friends.
type offlineCache struct {
	max  int
	m    map[string]*offEntry
	head offEntry // sentinel: head.next is the most recently used
}

type offEntry struct {
	name       string
	at         time.Time // when the lookup said offline
	prev, next *offEntry
}

func (o *offlineCache) init(max int) {
	o.max = max
	o.m = make(map[string]*offEntry)
	o.head.prev, o.head.next = &o.head, &o.head
}

func (o *offlineCache) len() int { return len(o.m) }

func (o *offlineCache) unlink(e *offEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (o *offlineCache) front(e *offEntry) {
	e.prev, e.next = &o.head, o.head.next
	o.head.next.prev = e
	o.head.next = e
}

// add records name as offline at now; it returns whether an entry was
// evicted to make room.
func (o *offlineCache) add(name string, now time.Time) (evicted bool) {
	if o.max <= 0 {
		return false
	}
	if e := o.m[name]; e != nil {
		e.at = now
		o.unlink(e)
		o.front(e)
		return false
	}
	if len(o.m) >= o.max {
		last := o.head.prev
		o.unlink(last)
		delete(o.m, last.name)
		evicted = true
	}
	e := &offEntry{name: name, at: now}
	o.m[name] = e
	o.front(e)
	return evicted
}

// get reports whether name is known offline and no older than maxAge.
func (o *offlineCache) get(name string, now time.Time, maxAge time.Duration) bool {
	e := o.m[name]
	if e == nil {
		return false
	}
	if maxAge > 0 && now.Sub(e.at) >= maxAge {
		o.remove(name)
		return false
	}
	o.unlink(e)
	o.front(e)
	return true
}

// remove forgets name; it reports whether it was there.
func (o *offlineCache) remove(name string) bool {
	e := o.m[name]
	if e == nil {
		return false
	}
	o.unlink(e)
	delete(o.m, name)
	return true
}

// clear forgets every entry.
func (o *offlineCache) clear() {
	if len(o.m) == 0 {
		return
	}
	clear(o.m)
	o.head.prev, o.head.next = &o.head, &o.head
}

// OfflineStats describes a NodeCore's cache of offline accounts.
type OfflineStats struct {
	Entries       int    // accounts cached as offline now
	Subscribed    bool   // the logins subscription is up: answers are cached
	Hits          uint64 // messages and kicks dropped at once, without a lookup
	Cached        uint64 // lookup answers cached
	Evictions     uint64 // entries evicted because the cache was full
	Invalidations uint64 // entries removed because the account's login was announced (or its holder learned)
	Relooked      uint64 // offline answers looked up again: the account's login was announced while the lookup ran
	Flushes       uint64 // times every entry was dropped (subscription lost or renewed, records restored)
	Announcements uint64 // login announcements applied
}

// OfflineStats returns the offline cache's figures.
func (c *NodeCore) OfflineStats() OfflineStats {
	s := c.offStats
	s.Entries, s.Subscribed = c.off.len(), c.subUp
	return s
}

// flushOffline drops every cached answer and every answer still in flight.
func (c *NodeCore) flushOffline() {
	c.subGen++
	c.off.clear()
	c.offStats.Flushes++
}

// SubUp says the subscription to the logins channel is confirmed (first
// subscription or a renewal): answers of lookups issued from now on may be
// cached. Announcements published before it may have been missed, so
// nothing cached before survives.
func (c *NodeCore) SubUp(now time.Time) *Output {
	out := c.begin()
	c.subUp = true
	c.flushOffline()
	return out
}

// SubDown says the subscription is lost or doubtful (a connection error, a
// ping unanswered, the node stopping): nothing is cached until SubUp.
func (c *NodeCore) SubDown(now time.Time) *Output {
	out := c.begin()
	c.subUp = false
	c.flushOffline()
	return out
}

// FlushOffline says a gateway announced a flush: it wrote session records
// back (Redis had lost them, or they expired under a live session), or it
// failed to announce a login. Lookups may have found those players
// offline, and no login will be announced for them.
func (c *NodeCore) FlushOffline(now time.Time) *Output {
	out := c.begin()
	c.flushOffline()
	return out
}

// Announced applies a login (or a resume on another gateway) of account
// announced on the logins channel: it is no longer offline, and a lookup
// of it still running may have read Redis before the login.
func (c *NodeCore) Announced(now time.Time, name string) *Output {
	out := c.begin()
	c.offStats.Announcements++
	if c.off.remove(name) {
		c.offStats.Invalidations++
	}
	if a := c.accounts[name]; a != nil && a.hs == holderLookup {
		a.announced = true
	}
	return out
}

// knownOffline reports whether a message to name can be dropped at once.
func (c *NodeCore) knownOffline(name string, now time.Time) bool {
	if !c.subUp || c.off.len() == 0 {
		return false
	}
	if a := c.accounts[name]; a != nil && a.hs != holderUnknown {
		return false
	}
	if !c.off.get(name, now, c.cfg.OfflineMaxAge) {
		return false
	}
	c.offStats.Hits++
	return true
}
