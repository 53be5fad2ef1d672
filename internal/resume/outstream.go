package resume

import (
	"encoding/binary"

	"github.com/xserver/xserver/common/wire"
)

// OutStream is a node's stream of messages to one account: encoded Push
// frames numbered 1, 2, … within a session (sid) and a stream epoch, kept
// until the client acknowledges them. A stream whose session is not known
// yet keeps its frames unnumbered; Rebase numbers them when it is.
type OutStream struct {
	sid   uint64
	epoch uint32
	acked uint32 // the client acknowledged every frame through this seq
	sent  uint32 // frames through this seq were handed to a gateway
	buf   []byte // frames acked+1 … acked+len(ends), from off
	off   int
	ends  []int // ends[i]: end offset in buf of frame acked+1+i
}

// Session and Epoch are the numbering in force (0 when not numbered yet).
func (s *OutStream) Session() uint64 { return s.sid }

// Epoch is the stream epoch in force.
func (s *OutStream) Epoch() uint32 { return s.epoch }

// Acked is the last sequence number the client acknowledged.
func (s *OutStream) Acked() uint32 { return s.acked }

// Next is the sequence number the next appended frame gets.
func (s *OutStream) Next() uint32 { return s.acked + uint32(len(s.ends)) + 1 }

// Len is the number of frames kept.
func (s *OutStream) Len() int { return len(s.ends) }

// Bytes is the number of bytes kept.
func (s *OutStream) Bytes() int { return len(s.buf) - s.off }

// Append encodes one Push frame for account and keeps it; it returns the
// frame's size. The caller checks limits first (see PushSize).
func (s *OutStream) Append(account string, flags uint8, cmd uint64, data []byte) int {
	n := wire.PushSizeFor(account, len(data))
	start := len(s.buf)
	if cap(s.buf)-start < n {
		s.compact(n)
		start = len(s.buf)
	}
	s.buf = s.buf[:start+n]
	wire.PutPushFrame(s.buf[start:], account, s.sid, s.epoch, s.Next(), flags, cmd, data)
	s.ends = append(s.ends, start+n)
	return n
}

// compact makes room for n more bytes, dropping acknowledged bytes.
func (s *OutStream) compact(n int) {
	live := len(s.buf) - s.off
	nb := make([]byte, live, max(2*(live+n), 512))
	copy(nb, s.buf[s.off:])
	for i := range s.ends {
		s.ends[i] -= s.off
	}
	s.buf, s.off = nb, 0
}

// Unsent returns the frames not yet handed to a gateway and marks them
// sent. It returns nil while the stream is not numbered. The slice aliases
// the stream and is valid until the next call that changes it.
func (s *OutStream) Unsent() []byte {
	if s.sid == 0 || s.sent >= s.acked+uint32(len(s.ends)) {
		return nil
	}
	return s.from(s.sent + 1)
}

// From returns every kept frame from seq on (from the first kept one when
// seq is older) and marks them sent; nil when there are none or the stream
// is not numbered.
func (s *OutStream) From(seq uint32) []byte {
	if s.sid == 0 {
		return nil
	}
	if seq <= s.acked {
		seq = s.acked + 1
	}
	if seq > s.acked+uint32(len(s.ends)) {
		return nil
	}
	return s.from(seq)
}

func (s *OutStream) from(seq uint32) []byte {
	i := int(seq - s.acked - 1)
	start := s.off
	if i > 0 {
		start = s.ends[i-1]
	}
	s.sent = s.acked + uint32(len(s.ends))
	return s.buf[start:s.ends[len(s.ends)-1]]
}

// Resent marks every kept frame unsent, so Unsent returns them all again
// (the link they went out on died, or the session moved).
func (s *OutStream) Resent() { s.sent = s.acked }

// Ack drops the frames through seq; it returns the bytes freed.
func (s *OutStream) Ack(seq uint32) int {
	if s.sid == 0 || seq <= s.acked {
		return 0
	}
	k := int(min(seq-s.acked, uint32(len(s.ends))))
	if k == 0 {
		return 0
	}
	end := s.ends[k-1]
	freed := end - s.off
	s.off = end
	s.ends = s.ends[:copy(s.ends, s.ends[k:])]
	s.acked += uint32(k)
	if s.sent < s.acked {
		s.sent = s.acked
	}
	if len(s.ends) == 0 {
		s.release()
	}
	return freed
}

// release gives the buffer back once nothing is kept.
func (s *OutStream) release() {
	s.buf, s.off, s.ends = nil, 0, nil
}

// Rebase numbers the stream in a new session and epoch: the kept frames
// become 1, 2, … and are all unsent.
func (s *OutStream) Rebase(sid uint64, epoch uint32) {
	s.sid, s.epoch, s.acked, s.sent = sid, epoch, 0, 0
	start := s.off
	for i, end := range s.ends {
		wire.RestampPush(s.buf[start:end], sid, epoch, uint32(i+1))
		start = end
	}
}

// Drop discards every kept frame, calling f with each one's cmd, and
// forgets the numbering. It returns the bytes freed.
func (s *OutStream) Drop(account string, f func(cmd uint64)) int {
	freed := s.Bytes()
	if f != nil {
		start := s.off
		cmdAt := wire.PushHeaderSize(account) - 8
		for _, end := range s.ends {
			f(binary.BigEndian.Uint64(s.buf[start+cmdAt:]))
			start = end
		}
	}
	*s = OutStream{}
	return freed
}
