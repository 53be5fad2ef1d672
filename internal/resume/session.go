package resume

import (
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// Stream is a gateway session's view of one node's stream to the client.
type Stream struct {
	ID        uint16 // the client's stream number (0 until announced)
	Node      common.NodeID
	Epoch     uint32
	Expected  uint32 // the next sequence number to deliver
	Acked     uint32 // the client acknowledged every frame through this one
	Announced bool   // the client was told of the stream (ClientStream)
	gap       bool   // a Resend was asked and nothing was delivered since
	stalled   bool   // a frame could not be queued to the client
}

// Session is the gateway's sequencing state of one client session: which
// client messages are forwarded and processed, and which node streams are
// delivered how far. Version 1 sessions use only the stream ordering.
type Session struct {
	Sid uint64
	V2  bool

	fwd      uint32     // highest client message forwarded or skipped
	inflight []uint32   // forwarded and not yet processed, ascending
	ackSent  uint32     // the last ClientMsgAck sent
	skip     *Processed // after a resume from another gateway: processed elsewhere

	streams []*Stream
	nextID  uint16
}

// NewSession returns the state of a new session.
func NewSession(sid uint64, v2 bool) *Session { return &Session{Sid: sid, V2: v2, nextID: 1} }

// MsgVerdict says what to do with a client message.
type MsgVerdict uint8

// Client message verdicts.
const (
	MsgForward   MsgVerdict = iota // route it to its node
	MsgDuplicate                   // already forwarded or processed: drop it
	MsgSkip                        // processed before a gateway died: drop it, it counts as done
	MsgBad                         // out of sequence: a client bug, close the connection
)

// OnMsg classifies client message csq. Messages must come in sequence;
// resent ones (up to the last forwarded) are duplicates.
func (s *Session) OnMsg(csq uint32) MsgVerdict {
	switch {
	case csq <= s.fwd:
		return MsgDuplicate
	case csq != s.fwd+1:
		return MsgBad
	}
	s.fwd = csq
	if s.skip != nil {
		if s.skip.Has(csq) {
			if csq >= s.skip.Hi() {
				s.skip = nil
			}
			return MsgSkip
		}
		if csq >= s.skip.Hi() {
			s.skip = nil
		}
	}
	s.inflight = append(s.inflight, csq)
	return MsgForward
}

// Done records that client message csq was processed by its node (or
// answered with ClientError).
func (s *Session) Done(csq uint32) {
	for i, v := range s.inflight {
		if v == csq {
			s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
			if len(s.inflight) == 0 {
				s.inflight = nil
			}
			return
		}
		if v > csq {
			return
		}
	}
}

// Floor is the highest csq such that it and every message before it are
// processed.
func (s *Session) Floor() uint32 {
	if len(s.inflight) == 0 {
		return s.fwd
	}
	return s.inflight[0] - 1
}

// InFlight is the number of client messages forwarded and not processed.
func (s *Session) InFlight() int { return len(s.inflight) }

// AckDue returns the ClientMsgAck to send, if any: when the floor moved by
// at least every messages since the last one, or by any amount when force.
func (s *Session) AckDue(every uint32, force bool) (uint32, bool) {
	f := s.Floor()
	if f <= s.ackSent || (!force && f-s.ackSent < every) {
		return 0, false
	}
	s.ackSent = f
	return f, true
}

// PeekAck returns the ClientMsgAck AckDue(1, true) would return, without
// recording it as sent.
func (s *Session) PeekAck() (uint32, bool) {
	f := s.Floor()
	return f, f > s.ackSent
}

// PushVerdict says what to do with a node's push.
type PushVerdict uint8

// Push verdicts.
const (
	PushDeliver   PushVerdict = iota // queue it to the client
	PushAnnounce                     // announce the stream (ClientStream), then queue it
	PushDuplicate                    // already delivered, or a gap already reported: drop it
	PushGap                          // frames are missing before it: drop it and ask for a resend
	PushRefuse                       // its sender is no longer the account's owner: drop it, tell the sender
	PushHold                         // the client is away: drop it, the node keeps it
)

func (s *Session) stream(node common.NodeID, epoch uint32) *Stream {
	for _, st := range s.streams {
		if st.Node == node && st.Epoch == epoch {
			return st
		}
	}
	return nil
}

// Streams returns the session's streams (the slice is the session's own).
func (s *Session) Streams() []*Stream { return s.streams }

// OnPush classifies frame seq of node's stream epoch. ownerOK is false for
// a frame sent as owner by a node the account is no longer bound to;
// attached says whether a client connection is there to deliver to. For
// PushGap, the resend starts at st.Expected.
func (s *Session) OnPush(node common.NodeID, epoch, seq uint32, ownerOK, attached bool) (PushVerdict, *Stream) {
	st := s.stream(node, epoch)
	if st == nil {
		st = &Stream{Node: node, Epoch: epoch, Expected: 1}
		s.streams = append(s.streams, st)
	}
	switch {
	case seq < st.Expected:
		return PushDuplicate, st
	case seq > st.Expected:
		if !attached || st.gap || st.stalled {
			return PushDuplicate, st
		}
		st.gap = true
		return PushGap, st
	case !ownerOK:
		st.Expected++
		return PushRefuse, st
	case !attached:
		return PushHold, st
	}
	st.Expected++
	st.gap = false
	if !st.Announced {
		st.Announced = true
		st.ID = s.nextID
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		return PushAnnounce, st
	}
	return PushDeliver, st
}

// Unqueued undoes the last PushDeliver or PushAnnounce of st: the
// client's queue was full.
// The stream waits for Stalled to ask for a resend.
func (s *Session) Unqueued(st *Stream) {
	st.Expected--
	st.stalled = true
}

// Stalled returns the streams whose frames could not be queued, and marks
// them as asked for a resend from st.Expected; call it when the client's
// queue has room again.
func (s *Session) Stalled(dst []*Stream) []*Stream {
	for _, st := range s.streams {
		if st.stalled {
			st.stalled, st.gap = false, true
			dst = append(dst, st)
		}
	}
	return dst
}

// OnClientAck records the client's acknowledgement of stream id through
// seq; it returns the stream when the node should be told (Delivered).
func (s *Session) OnClientAck(id uint16, seq uint32) *Stream {
	for _, st := range s.streams {
		if st.Announced && st.ID == id {
			if seq > st.Acked && seq < st.Expected {
				st.Acked = seq
				return st
			}
			return nil
		}
	}
	return nil
}

// Remove forgets stream st (its node closed it, or left the cluster).
func (s *Session) Remove(st *Stream) {
	for i, v := range s.streams {
		if v == st {
			s.streams = append(s.streams[:i], s.streams[i+1:]...)
			return
		}
	}
}

// Detach marks every stream undelivered beyond what the client
// acknowledged is unknown: on Resume the client says what it has.
// Nothing to do at detach time; kept for symmetry of the state machine.

// ResumeHere takes a client's resume on the gateway that holds the
// session: every stream restarts after the client's last received frame
// (streams the client does not list start again from 1), and the client's
// acknowledgement floor is taken. It returns, per node, the positions to
// resend from, and the streams whose client position moved the
// acknowledgement forward (to send Delivered).
func (s *Session) ResumeHere(pos []wire.StreamPos, clientFloor uint32, acked []*Stream) (map[common.NodeID][]wire.EpochFrom, []*Stream) {
	req := make(map[common.NodeID][]wire.EpochFrom)
	for _, st := range s.streams {
		last, listed := uint32(0), false
		for _, p := range pos {
			if st.Announced && p.Stream == st.ID && p.Node == st.Node && p.Epoch == st.Epoch {
				last, listed = p.Last, true
				break
			}
		}
		if !listed {
			st.Announced, st.ID = false, 0
		}
		if last >= st.Expected {
			last = st.Expected - 1 // cannot have more than was delivered
		}
		st.Expected, st.gap, st.stalled = last+1, false, false
		if last > st.Acked {
			st.Acked = last
			acked = append(acked, st)
		}
		req[st.Node] = append(req[st.Node], wire.EpochFrom{Epoch: st.Epoch, From: last + 1})
	}
	if clientFloor > s.ackSent && clientFloor <= s.Floor() {
		s.ackSent = clientFloor
	}
	return req, acked
}

// AdoptResume builds the session of a client resuming on a gateway that
// did not hold it (the holder died or the client moved): the client's
// streams are taken as they are, and client messages after clientFloor
// wait for the nodes' states (SetProcessed). Streams of skipNode (the
// previous gateway's broadcast stream) are left out.
func AdoptResume(sid uint64, pos []wire.StreamPos, clientFloor uint32, skipNode common.NodeID) (*Session, map[common.NodeID][]wire.EpochFrom) {
	s := &Session{Sid: sid, V2: true, nextID: 1, fwd: clientFloor, ackSent: clientFloor}
	req := make(map[common.NodeID][]wire.EpochFrom)
	for _, p := range pos {
		if p.Stream == 0 || p.Node == skipNode {
			continue
		}
		s.streams = append(s.streams, &Stream{ID: p.Stream, Node: p.Node, Epoch: p.Epoch, Expected: p.Last + 1, Acked: p.Last, Announced: true})
		if p.Stream >= s.nextID {
			s.nextID = p.Stream + 1
			if s.nextID == 0 {
				s.nextID = 1
			}
		}
		req[p.Node] = append(req[p.Node], wire.EpochFrom{Epoch: p.Epoch, From: p.Last + 1})
	}
	return s, req
}

// SetProcessed folds in the nodes' ResumeStates after AdoptResume: client
// messages processed before the old gateway died count as done, and resent
// ones among them are dropped.
func (s *Session) SetProcessed(p *Processed) {
	s.fwd = p.Floor(s.fwd)
	if p.Hi() > s.fwd {
		s.skip = p
	}
}
