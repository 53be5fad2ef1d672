package gateway

import (
	"sync"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// bcastRing numbers this gateway's broadcasts (stream 0 of every version 2
// session), to all clients or to a group's members, and keeps the most
// recent ones, so a client that lost its connection, or could not keep
// up, gets those it missed from here.
type bcastRing struct {
	mu      sync.Mutex // guards seq, entries, bytes
	seq     uint32     // last assigned
	entries []bentry   // oldest first
	bytes   int
	max     int
}

type bentry struct {
	seq   uint32
	group string // "" for a broadcast to every client
	frame []byte // the ClientPush on stream 0
	cmd   uint64
	data  []byte // aliases frame
}

func newBcastRing(max int) *bcastRing { return &bcastRing{max: max} }

// add numbers one broadcast (to group, or to all when group is "") and
// keeps it; it returns the entry.
func (r *bcastRing) add(group string, cmd uint64, data []byte) bentry {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	f := wire.AppendPush(make([]byte, 0, wire.PushSize(len(data))), 0, r.seq, cmd, data)
	e := bentry{seq: r.seq, group: group, frame: f, cmd: cmd, data: f[wire.PushSize(0):]}
	r.entries = append(r.entries, e)
	r.bytes += len(f)
	for r.bytes > r.max && len(r.entries) > 1 {
		r.bytes -= len(r.entries[0].frame)
		r.entries[0] = bentry{}
		r.entries = r.entries[1:]
	}
	return e
}

// last is the last broadcast's number.
func (r *bcastRing) last() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// reaches reports whether the history still holds every broadcast after
// pos, so that a client at pos can get them all by replay.
func (r *bcastRing) reaches(pos uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return pos >= r.seq || (len(r.entries) > 0 && r.entries[0].seq <= pos+1)
}

// replay queues to c, in order, every kept broadcast for s after s.bpos;
// s.mu is held. When the history no longer reaches back to s.bpos, gap is
// called first with the last number that is gone and the number of kept
// broadcasts for s that the fan-out reached already (s.bseen), and s.bpos
// moves past the hole. A full
// queue stops the replay (s.bstall) until a later tick.
func (r *bcastRing) replay(s *session, c *client, gap func(through uint32, kept int)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.bpos >= r.seq {
		s.bowed = 0
		return
	}
	if len(r.entries) == 0 || r.entries[0].seq > s.bpos+1 {
		through, kept := r.seq, 0
		if len(r.entries) > 0 {
			through = r.entries[0].seq - 1
		}
		for i := range r.entries {
			// Only those the fan-out reached already count in s.bowed.
			if e := &r.entries[i]; e.seq <= s.bseen && s.wantsLocked(e) {
				kept++
			}
		}
		gap(through, kept)
		s.bpos = through
	}
	for i := range r.entries {
		e := &r.entries[i]
		if e.seq <= s.bpos || !s.wantsLocked(e) {
			continue
		}
		if !c.out.Append(e.frame) {
			s.bstall = true
			s.markDirtyLocked()
			return
		}
		s.bpos = e.seq
		if s.bowed > 0 {
			s.bowed--
		}
	}
	s.bpos, s.bowed = r.seq, 0
}

// wantsLocked says whether broadcast e is for s: a broadcast to all, or
// to a group s was a member of when it was sent.
func (s *session) wantsLocked(e *bentry) bool {
	if e.group == "" {
		return true
	}
	joined, ok := s.groups[e.group]
	return ok && joined < e.seq
}

// broadcast sends one node broadcast to every client here.
func (g *Gateway) broadcast(cmd uint64, data []byte) {
	g.fanMu.Lock()
	defer g.fanMu.Unlock()
	e := g.bring.add("", cmd, data)
	for _, s := range g.allSessions() {
		s.deliverBroadcast(&e)
	}
}

// deliverBroadcast queues broadcast e to the session's client. Broadcasts
// are fanned out one at a time (fanMu), so a session sees them in order.
// A client that does not keep up is never disconnected for broadcasts:
// version 2 gets what it missed from the history once its queue drained,
// and a ClientShed notice for what the history no longer has; version 1
// loses broadcasts until its queue drained to half, then gets a ClientShed
// notice with their count.
func (s *session) deliverBroadcast(e *bentry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conn
	if c == nil || s.state == sessEnded || !s.bready || e.seq <= s.bpos {
		return // away: replayed from the history on resume
	}
	g := s.g
	s.bseen = e.seq
	if !s.v2 {
		s.bpos = e.seq
		if wire.DataSize(len(e.data)) > g.cfg.ClientQueueBytes {
			g.met.drops.WithLabelValues("too_large_for_client").Inc()
			return
		}
		if s.shed > 0 || !c.out.AppendWith(wire.DataSize(len(e.data)), func(b []byte) { wire.PutData(b, e.cmd, e.data) }) {
			s.shedLocked()
			return
		}
		g.met.framesOut.Inc()
		return
	}
	if s.bstall {
		s.bowed++
		return
	}
	if !c.out.Append(e.frame) {
		s.bstall = true
		s.bowed++
		g.met.drops.WithLabelValues("client_stalled").Inc()
		s.markDirtyLocked()
		return
	}
	s.bpos = e.seq
	g.met.framesOut.Inc()
}

// shedLocked drops one broadcast for a version 1 client that does not
// keep up; the tick tells it how many once its queue drained to half.
func (s *session) shedLocked() {
	if s.shed == 0 {
		s.g.slowLog.Warn(s.logger(), "client cannot keep up with broadcasts; dropping them until it drains")
	}
	s.shed++
	s.g.met.shed.Inc()
	s.markDirtyLocked()
}

// linkDownMemory is how long the gateway remembers a node whose link
// dropped, to tell its clients broadcasts may be missing when it links
// again (a frozen process, a partition; declared failed meanwhile too).
const linkDownMemory = 10 * time.Minute

// broadcastGap tells every client here that broadcasts may be missing: a
// node's link was down, and what it broadcast meanwhile never came. An
// attached client gets a ClientShed with count 0 (an unknown number)
// after what it was sent so far; a detached one learns it from
// ClientResumed's BroadcastGap. Never a silent gap.
func (g *Gateway) broadcastGap() {
	g.fanMu.Lock()
	defer g.fanMu.Unlock()
	n := 0
	for _, s := range g.allSessions() {
		s.mu.Lock()
		switch {
		case s.state == sessEnded:
		case s.conn == nil:
			s.bgap = true
		case !s.bready:
			// Logging in: its broadcasts start after this.
		case s.v2:
			s.conn.out.Force(wire.AppendShed(nil, wire.Shed{Through: s.bpos, Count: 0}))
			n++
		default:
			s.conn.out.Force(wire.AppendShed(nil, wire.Shed{Count: 0}))
			n++
		}
		s.mu.Unlock()
	}
	g.met.shedNotices.Add(float64(n))
}
