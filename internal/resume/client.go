package resume

import (
	"errors"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// ErrWindowFull is returned by Client.Send when wire.MaxUnacked messages
// wait for the gateway's acknowledgement; send again after the next
// ClientMsgAck.
var ErrWindowFull = errors.New("resume: too many unacknowledged messages")

// ClientConfig sets when a Client acknowledges what it received.
type ClientConfig struct {
	AckEvery int           // acknowledge after this many frames (default 32)
	AckDelay time.Duration // …or this long after the first unacknowledged one (default 100ms)
}

type cstream struct {
	node  common.NodeID
	epoch uint32
	last  uint32 // last frame received
	acked uint32 // last acknowledgement sent
}

// Client is a player client's side of a version 2 session: the messages it
// sent and must keep until the gateway acknowledges them, and the position
// of every stream it receives.
type Client struct {
	cfg ClientConfig

	Account string
	Session wire.Session

	next    uint32   // the next message's sequence number
	floor   uint32   // the gateway acknowledged every message through this one
	pending [][]byte // encoded messages floor+1 … next-1

	attempt  uint32 // resumes presented so far
	streams  map[uint16]*cstream
	unacked  int
	firstUna time.Time
	acks     []wire.Ack
}

// NewClient returns the state of the session a gateway announced in its
// ClientSession frame.
func NewClient(cfg ClientConfig, account string, s wire.Session) *Client {
	if cfg.AckEvery <= 0 {
		cfg.AckEvery = 32
	}
	if cfg.AckDelay <= 0 {
		cfg.AckDelay = 100 * time.Millisecond
	}
	return &Client{cfg: cfg, Account: account, Session: s, next: 1, streams: make(map[uint16]*cstream)}
}

// Send numbers and encodes a message and keeps it until acknowledged. The
// returned frame is the Client's own: write it before the next Send.
func (c *Client) Send(cmd uint64, data []byte) ([]byte, error) {
	max := uint32(wire.MaxUnacked)
	if m := c.Session.MaxUnacked; m > 0 && uint32(m) < max {
		max = uint32(m)
	}
	if c.next-c.floor > max {
		return nil, ErrWindowFull
	}
	f := wire.AppendMsg(nil, c.next, cmd, data)
	c.pending = append(c.pending, f)
	c.next++
	return f, nil
}

// Unacked is the number of messages sent and not yet acknowledged.
func (c *Client) Unacked() int { return len(c.pending) }

// Floor is the last message the gateway acknowledged.
func (c *Client) Floor() uint32 { return c.floor }

// OnMsgAck drops the messages the gateway acknowledged.
func (c *Client) OnMsgAck(seq uint32) {
	if seq >= c.next {
		seq = c.next - 1
	}
	if seq <= c.floor {
		return
	}
	k := int(seq - c.floor)
	c.pending = c.pending[:copy(c.pending, c.pending[k:])]
	c.floor = seq
}

// OnStream records a stream announcement (a new stream 0 replaces the
// previous gateway's broadcast stream). A stream is its (node, epoch): one
// announced again, under its number or another, keeps what was received
// of it, so what comes again is dropped (PROTOCOL.md §3.10.2).
func (c *Client) OnStream(s wire.StreamPos) {
	for id, st := range c.streams {
		if st.node == s.Node && st.epoch == s.Epoch {
			delete(c.streams, id)
			c.streams[s.Stream] = st
			return
		}
	}
	c.streams[s.Stream] = &cstream{node: s.Node, epoch: s.Epoch}
}

// OnStreamEnd forgets a stream.
func (c *Client) OnStreamEnd(id uint16) { delete(c.streams, id) }

// OnPush reports whether a pushed frame is new (false: a duplicate to
// drop). A frame of an unknown stream is a protocol error.
func (c *Client) OnPush(now time.Time, stream uint16, seq uint32) (bool, error) {
	s := c.streams[stream]
	if s == nil {
		return false, errors.New("resume: push on a stream never announced")
	}
	if seq <= s.last {
		return false, nil
	}
	s.last = seq
	if stream != 0 {
		if c.unacked == 0 {
			c.firstUna = now
		}
		c.unacked++
	}
	return true, nil
}

// AckDue returns a ClientAck frame when one is due (AckEvery frames or
// AckDelay since the first unacknowledged one), else nil.
func (c *Client) AckDue(now time.Time) []byte {
	if c.unacked == 0 || (c.unacked < c.cfg.AckEvery && now.Sub(c.firstUna) < c.cfg.AckDelay) {
		return nil
	}
	return c.AckNow()
}

// AckNow returns a ClientAck for every stream received beyond its last
// acknowledgement, or nil.
func (c *Client) AckNow() []byte {
	c.acks = c.acks[:0]
	for id, s := range c.streams {
		if id != 0 && s.last > s.acked {
			s.acked = s.last
			c.acks = append(c.acks, wire.Ack{Stream: id, Seq: s.last})
		}
	}
	c.unacked = 0
	if len(c.acks) == 0 {
		return nil
	}
	return wire.AppendAck(nil, c.acks)
}

// NextAck is when AckDue will next return a frame (zero: nothing to
// acknowledge).
func (c *Client) NextAck() time.Time {
	if c.unacked == 0 {
		return time.Time{}
	}
	return c.firstUna.Add(c.cfg.AckDelay)
}

// ResumeFrames returns what to write first on a new connection: the
// ClientResume, then every unacknowledged message again, in order. New
// messages may follow at once.
func (c *Client) ResumeFrames() []byte {
	c.attempt++
	r := wire.Resume{Account: c.Account, ID: c.Session.ID, Secret: c.Session.Secret, MsgAck: c.floor, Attempt: c.attempt}
	for id, s := range c.streams {
		r.Streams = append(r.Streams, wire.StreamPos{Stream: id, Node: s.node, Epoch: s.epoch, Last: s.last})
	}
	b := wire.AppendResume(nil, &r)
	for _, m := range c.pending {
		b = append(b, m...)
	}
	// Everything received is acknowledged by the resume itself.
	for _, s := range c.streams {
		s.acked = s.last
	}
	c.unacked = 0
	return b
}

// OnResumed takes the gateway's answer to a resume (Code 0).
func (c *Client) OnResumed(r wire.Resumed) { c.OnMsgAck(r.MsgAck) }
