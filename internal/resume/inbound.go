package resume

import "github.com/xserver/xserver/common/wire"

// Window is how many client sequence numbers below the highest one seen an
// Inbound remembers: a client never has more than wire.MaxUnacked messages
// unacknowledged, so a resent message always falls inside the window.
const Window = wire.MaxUnacked

// Inbound remembers which client messages of one session a node has
// processed. Messages reach a node in the client's order, except resends
// after a gateway died, which may repeat messages already processed here
// or processed by another node.
type Inbound struct {
	sid  uint64
	hi   uint32
	bits [Window / 64]uint64 // bit i: csq hi-i was processed
}

// Accept reports whether the message csq of session sid is new, and
// records it. csq 0 (a version 1 session) is always new. A message of
// another session starts a new record.
func (in *Inbound) Accept(sid uint64, csq uint32) bool {
	if csq == 0 {
		return true
	}
	if sid != in.sid {
		*in = Inbound{sid: sid}
	}
	if csq > in.hi {
		in.shift(csq - in.hi)
		in.hi = csq
		in.bits[0] |= 1
		return true
	}
	d := in.hi - csq
	if d >= Window {
		return false // older than any message a client may still resend
	}
	w, b := d/64, d%64
	if in.bits[w]&(1<<b) != 0 {
		return false
	}
	in.bits[w] |= 1 << b
	return true
}

// shift moves the window up by n.
func (in *Inbound) shift(n uint32) {
	if n >= Window {
		in.bits = [Window / 64]uint64{}
		return
	}
	words, bitsN := int(n/64), n%64
	for i := len(in.bits) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = in.bits[j] << bitsN
			if bitsN != 0 && j-1 >= 0 {
				v |= in.bits[j-1] >> (64 - bitsN)
			}
		}
		in.bits[i] = v
	}
}

// Session is the session the record belongs to (0 when empty).
func (in *Inbound) Session() uint64 { return in.sid }

// State returns the highest csq processed and the window as ResumeState
// carries it: bit i (byte i/8, bit i%8) set when csq hi-i was processed.
func (in *Inbound) State() (hi uint32, bitmap [wire.ResumeBitmapSize]byte) {
	for i := 0; i < Window; i++ {
		if in.bits[i/64]&(1<<(i%64)) != 0 {
			bitmap[i/8] |= 1 << (i % 8)
		}
	}
	return in.hi, bitmap
}

// Processed is the union of several nodes' ResumeStates: the set of client
// messages processed somewhere, within the window below the highest one.
type Processed struct {
	hi   uint32
	seen map[uint32]struct{}
}

// Add folds one node's state in.
func (p *Processed) Add(hi uint32, bitmap [wire.ResumeBitmapSize]byte) {
	if hi > p.hi {
		p.hi = hi
	}
	for i := 0; i < Window && uint32(i) < hi; i++ {
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			if p.seen == nil {
				p.seen = make(map[uint32]struct{})
			}
			p.seen[hi-uint32(i)] = struct{}{}
		}
	}
}

// Hi is the highest client message processed anywhere (0 if none).
func (p *Processed) Hi() uint32 { return p.hi }

// Has reports whether csq was processed by some node.
func (p *Processed) Has(csq uint32) bool {
	_, ok := p.seen[csq]
	return ok
}

// Floor is the highest csq such that every message from after done up to
// it was processed (done itself when done+1 was not).
func (p *Processed) Floor(done uint32) uint32 {
	for p.Has(done + 1) {
		done++
	}
	return done
}
