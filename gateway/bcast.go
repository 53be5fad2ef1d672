package gateway

import (
	"sync"

	"github.com/xserver/xserver/common/wire"
)

// bcastRing numbers this gateway's broadcasts (stream 0 of every version 2
// session) and keeps the most recent ones, so a client that lost its
// connection gets those it missed when it resumes here.
type bcastRing struct {
	mu      sync.Mutex // guards seq, entries, bytes
	seq     uint32     // last assigned
	entries []bentry   // oldest first
	bytes   int
	max     int
}

type bentry struct {
	seq   uint32
	frame []byte // the ClientPush on stream 0
	cmd   uint64
	data  []byte // aliases frame
}

func newBcastRing(max int) *bcastRing { return &bcastRing{max: max} }

// add numbers one broadcast and keeps it; it returns the entry.
func (r *bcastRing) add(cmd uint64, data []byte) bentry {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	f := wire.AppendPush(make([]byte, 0, wire.PushSize(len(data))), 0, r.seq, cmd, data)
	e := bentry{seq: r.seq, frame: f, cmd: cmd, data: f[wire.PushSize(0):]}
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

// replay queues to c every kept broadcast after s.bpos; s.mu is held. It
// returns false (queueing nothing) when some were already dropped from the
// history, or the client's queue is full.
func (r *bcastRing) replay(s *session, c *client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.bpos >= r.seq {
		return true
	}
	if len(r.entries) == 0 || r.entries[0].seq > s.bpos+1 {
		s.bpos = r.seq
		return false
	}
	for _, e := range r.entries {
		if e.seq <= s.bpos {
			continue
		}
		if !c.out.Append(e.frame) {
			s.bstall = true
			s.markDirtyLocked()
			return true
		}
		s.bpos = e.seq
	}
	return true
}

// broadcast sends one node broadcast to every client here.
func (g *Gateway) broadcast(cmd uint64, data []byte) {
	e := g.bring.add(cmd, data)
	for _, s := range g.allSessions() {
		s.deliverBroadcast(e)
	}
}

// deliverBroadcast queues broadcast e to the session's client, in order:
// one that arrives out of order, or for a client whose queue is full, is
// replayed from the history later.
func (s *session) deliverBroadcast(e bentry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conn
	if c == nil || s.state == sessEnded {
		return // away: replayed from the history on resume
	}
	g := s.g
	if !s.v2 {
		if wire.DataSize(len(e.data)) > g.cfg.ClientQueueBytes {
			g.met.drops.WithLabelValues("too_large_for_client").Inc()
			return
		}
		if !c.out.AppendWith(wire.DataSize(len(e.data)), func(b []byte) { wire.PutData(b, e.cmd, e.data) }) {
			s.stalledLocked()
			return
		}
		g.met.framesOut.Inc()
		return
	}
	if s.bstall || e.seq != s.bpos+1 {
		if e.seq > s.bpos {
			s.bstall = true
			s.markDirtyLocked()
		}
		return
	}
	if !c.out.Append(e.frame) {
		s.bstall = true
		g.met.drops.WithLabelValues("client_stalled").Inc()
		s.markDirtyLocked()
		return
	}
	s.bpos = e.seq
	g.met.framesOut.Inc()
}
