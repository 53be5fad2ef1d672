package mgrserver

import (
	"encoding/binary"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	pb "github.com/xserver/xserver/proto"
)

// fanout is the leader's member list and the decisions about who is sent
// what, without sockets or locks: the server feeds it joins, leaves,
// updates and resync requests, and at each flush it hands out what to
// write. P identifies a peer's connection.
//
// Membership changes are not sent one by one. Each change gets its
// sequence number and is encoded once into the pending batch; a flush
// hands the whole batch, one shared immutable buffer of MemberEvent
// frames, to every member, and one shared snapshot to every peer owed one
// (newcomers and those that asked). So N joins arriving together cost one
// batch per flush instead of N broadcasts, and nothing is copied per peer.
//
// A newcomer skips the batch: its first snapshot is built at the flush,
// after every pending change, and carries the last sequence number, so the
// batch would only repeat it. A member that asked for a resync gets the
// batch and then the snapshot, in order: during the settle window
// snapshots are partial and cannot say who left, so the events must not be
// skipped.
//
// Buffers it returns are never modified afterwards and may be written to
// sockets concurrently. Not safe for concurrent use.
type fanout[P comparable] struct {
	members  map[common.NodeID]*fmember[P]
	epoch    uint64
	seq      uint64 // last event sequence number of this epoch
	complete bool   // snapshots are complete (the settle window is over)

	pending []byte // encoded events since the last flush
	fresh   set[P] // newcomers owed their first snapshot
	owed    set[P] // members owed a resync snapshot
	snap    []byte // cached snapshot frame; nil when the list changed
	to      []P    // reused for a flush's event recipients
}

type fmember[P comparable] struct {
	peer P
	info *pb.NodeInfo
	enc  []byte // info as an encoded Snapshot.nodes entry
}

// flushPlan is what one flush sends. The peer slices are valid until the
// next flush; the byte buffers forever.
type flushPlan[P comparable] struct {
	// Snapshot is a Snapshot frame as of the end of Events.
	Snapshot []byte
	// FirstTo get Snapshot as their first frame after registering, and
	// not Events.
	FirstTo []P
	// Events are MemberEvent frames in sequence order, for EventsTo.
	Events   []byte
	EventsTo []P
	// ResyncTo get Snapshot after Events.
	ResyncTo []P
}

// set is a set of peers that remembers the order of insertion.
type set[P comparable] struct {
	list []P
	in   map[P]struct{}
}

func (s *set[P]) add(p P) {
	if _, ok := s.in[p]; ok {
		return
	}
	if s.in == nil {
		s.in = make(map[P]struct{})
	}
	s.in[p] = struct{}{}
	s.list = append(s.list, p)
}

func (s *set[P]) has(p P) bool {
	_, ok := s.in[p]
	return ok
}

func (s *set[P]) remove(p P) {
	if _, ok := s.in[p]; !ok {
		return
	}
	delete(s.in, p)
	for i, q := range s.list {
		if q == p {
			s.list = append(s.list[:i], s.list[i+1:]...)
			return
		}
	}
}

// take empties the set and returns its members in order.
func (s *set[P]) take() []P {
	l := s.list
	s.list = nil
	clear(s.in)
	return l
}

func newFanout[P comparable]() *fanout[P] {
	return &fanout[P]{members: make(map[common.NodeID]*fmember[P])}
}

// reset starts a new leadership of epoch with an empty list; snapshots are
// partial until setComplete.
func (f *fanout[P]) reset(epoch uint64) {
	*f = fanout[P]{members: make(map[common.NodeID]*fmember[P]), epoch: epoch}
}

// len is the number of members.
func (f *fanout[P]) len() int { return len(f.members) }

// each calls fn for every member.
func (f *fanout[P]) each(fn func(id common.NodeID, peer P, info *pb.NodeInfo)) {
	for id, m := range f.members {
		fn(id, m.peer, m.info)
	}
}

// get returns the member with id.
func (f *fanout[P]) get(id common.NodeID) (P, *pb.NodeInfo, bool) {
	m, ok := f.members[id]
	if !ok {
		var zero P
		return zero, nil, false
	}
	return m.peer, m.info, true
}

// join adds peer as member id. The others get a JOIN, or an UPDATE when id
// was already a member: old is that member's peer, which is replaced and
// gets nothing more. peer is owed its first snapshot.
func (f *fanout[P]) join(id common.NodeID, peer P, info *pb.NodeInfo) (old P, replaced bool) {
	kind := pb.MemberEvent_JOIN
	if m, ok := f.members[id]; ok {
		kind, old, replaced = pb.MemberEvent_UPDATE, m.peer, true
		f.fresh.remove(m.peer)
		f.owed.remove(m.peer)
	}
	f.members[id] = &fmember[P]{peer: peer, info: info, enc: snapshotEntry(info)}
	f.event(kind, info, false)
	f.fresh.add(peer)
	return old, replaced
}

// leave removes member id if peer still holds it; the others get a LEAVE.
func (f *fanout[P]) leave(id common.NodeID, peer P, failed bool) (*pb.NodeInfo, bool) {
	m, ok := f.members[id]
	if !ok || m.peer != peer {
		return nil, false
	}
	delete(f.members, id)
	f.fresh.remove(peer)
	f.owed.remove(peer)
	f.event(pb.MemberEvent_LEAVE, m.info, failed)
	return m.info, true
}

// update applies an UpdateSelf from peer, the holder of id; every member
// gets an UPDATE.
func (f *fanout[P]) update(id common.NodeID, peer P, u *pb.UpdateSelf) bool {
	m, ok := f.members[id]
	if !ok || m.peer != peer {
		return false
	}
	in := *m.info
	if u.SetOverload {
		in.Overload = u.Overload
	}
	if u.SetVersion {
		in.Version = u.Version
	}
	m.info, m.enc = &in, snapshotEntry(&in)
	f.event(pb.MemberEvent_UPDATE, &in, false)
	return true
}

// want owes peer, a member, a snapshot after the next batch (a resync).
// A newcomer's first snapshot already covers it.
func (f *fanout[P]) want(peer P) {
	if !f.fresh.has(peer) {
		f.owed.add(peer)
	}
}

// setComplete ends the settle window: snapshots become complete and every
// member is owed one, which removes from their views the members that did
// not come back.
func (f *fanout[P]) setComplete() {
	f.complete, f.snap = true, nil
	for _, m := range f.members {
		f.want(m.peer)
	}
}

// event numbers and encodes one change into the pending batch.
func (f *fanout[P]) event(kind pb.MemberEvent_Kind, info *pb.NodeInfo, failed bool) {
	f.seq++
	f.snap = nil
	f.pending, _ = wire.AppendMessage(f.pending, wire.KindMemberEvent, &pb.MemberEvent{Seq: f.seq, Kind: kind, Info: info, Failed: failed})
}

// flush hands out the pending batch and the snapshots owed.
func (f *fanout[P]) flush() flushPlan[P] {
	var p flushPlan[P]
	if len(f.pending) > 0 {
		f.to = f.to[:0]
		for _, m := range f.members {
			if !f.fresh.has(m.peer) {
				f.to = append(f.to, m.peer)
			}
		}
		p.Events, p.EventsTo = f.pending, f.to
		f.pending = nil // handed out: never appended to again
	}
	p.FirstTo, p.ResyncTo = f.fresh.take(), f.owed.take()
	if len(p.FirstTo) > 0 || len(p.ResyncTo) > 0 {
		p.Snapshot = f.snapshot()
	}
	return p
}

// snapshot returns the member list as one Snapshot frame, built from each
// member's pre-encoded entry and cached until the list changes.
func (f *fanout[P]) snapshot() []byte {
	if f.snap != nil {
		return f.snap
	}
	size := 0
	for _, m := range f.members {
		size += len(m.enc)
	}
	b := make([]byte, wire.HeaderSize, wire.HeaderSize+3*(1+binary.MaxVarintLen64)+size)
	// Snapshot fields: 1 epoch, 2 seq (varints), 3 complete (bool), 4 nodes.
	if f.epoch != 0 {
		b = binary.AppendUvarint(append(b, 1<<3), f.epoch)
	}
	if f.seq != 0 {
		b = binary.AppendUvarint(append(b, 2<<3), f.seq)
	}
	if f.complete {
		b = append(b, 3<<3, 1)
	}
	for _, m := range f.members {
		b = append(b, m.enc...)
	}
	wire.AppendHeader(b[:0], wire.KindSnapshot, len(b)-wire.HeaderSize)
	f.snap = b
	return b
}

// perMemberDelay is how much a flush's gathering time grows per member.
// A flush costs about one write (and one wake-up of the reader at the
// other end) per member; gathering longer when there are many members
// keeps that cost a small share of the time, while a small cluster still
// hears of a change within the configured delay.
const perMemberDelay = 20 * time.Microsecond

// maxBatchDelay bounds the gathering time, far below the heartbeat.
const maxBatchDelay = 100 * time.Millisecond

// batchDelay is how long a flush gathers changes with members members:
// at least min, growing with the member count, at most maxBatchDelay
// (or min if that is larger).
func batchDelay(members int, min time.Duration) time.Duration {
	return max(min, time.Duration(min64(int64(members)*int64(perMemberDelay), int64(maxBatchDelay))))
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// snapshotEntry encodes info as one Snapshot.nodes field (number 4,
// length-delimited).
func snapshotEntry(info *pb.NodeInfo) []byte {
	n := info.Size()
	b := binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen64+n), 4<<3|2), uint64(n))
	start := len(b)
	b = b[:start+n]
	_, _ = info.MarshalToSizedBuffer(b[start:])
	return b
}
