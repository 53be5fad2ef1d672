package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/xserver/xserver/common"
)

// Client protocol version 2: resumable sessions. A client asks for one by
// appending a version byte (2) to its ClientLogin; the gateway then answers
// the login with ClientSession and both directions are sequenced and
// acknowledged (docs/PROTOCOL.md §3.9).
const (
	KindClientSession   Kind = 107 // G→C: u64 sid | 32 secret | u32 window ms | u16 max unacked
	KindClientMsg       Kind = 108 // C→G: u32 seq | u64 cmd | data
	KindClientPush      Kind = 109 // G→C: u16 stream | u32 seq | u64 cmd | data
	KindClientStream    Kind = 110 // G→C: u16 stream | 16 node | u32 epoch
	KindClientAck       Kind = 111 // C→G: u16 n | n × (u16 stream | u32 seq)
	KindClientMsgAck    Kind = 112 // G→C: u32 seq
	KindClientResume    Kind = 113 // C→G first frame: u8 alen | account | u64 sid | 32 secret | u32 msg ack | u32 attempt | u16 n | n × StreamPos
	KindClientResumed   Kind = 114 // G→C: u16 code | u32 msg ack | u8 flags | text
	KindClientStreamEnd Kind = 115 // G→C: u16 stream; the stream is closed, forget it
	KindClientLogout    Kind = 116 // C→G: empty; end the session now (no resume)
)

// Codes of version 2 (see CodeText).
const (
	CodeTakenOver uint16 = 14 // Kick: the session was resumed on another connection
	CodeExpired   uint16 = 15 // Resumed/Kick: no such session, or its resume window passed: log in again
	CodeLost      uint16 = 16 // Kick/Resumed: messages could not be kept (a buffer overflowed, a node restarted): log in again
	CodeBadResume uint16 = 17 // Resumed: the secret or the account does not match the session: log in again
	// CodeLinkLost is never sent on the wire: a node reports with it a
	// node message whose gateway link was lost before the gateway
	// acknowledged it (it may or may not have been delivered).
	CodeLinkLost uint16 = 18
)

// Version 2 constants.
const (
	// ProtocolV2 is the version byte a client appends to ClientLogin to
	// ask for a resumable, sequenced session.
	ProtocolV2 = 2
	// SecretSize is the length of a resume secret.
	SecretSize = 32
	// MaxUnacked is the most client messages a client may have sent but
	// not yet seen acknowledged (ClientMsgAck); nodes remember this many
	// sequence numbers to drop a message resent after a gateway died.
	MaxUnacked = 256
	// MaxResumeStreams bounds the streams a ClientResume may list.
	MaxResumeStreams = 1024
	// ResumedBroadcastGap is the ClientResumed flag saying broadcasts sent
	// while the client was away may have been missed (a resume on another
	// gateway, or the gateway's broadcast history was too short).
	ResumedBroadcastGap = 1
)

// Session is a decoded ClientSession.
type Session struct {
	ID         uint64
	Secret     [SecretSize]byte
	WindowMs   uint32
	MaxUnacked uint16
}

// AppendSession appends a ClientSession frame.
func AppendSession(dst []byte, s *Session) []byte {
	dst = AppendHeader(dst, KindClientSession, 8+SecretSize+4+2)
	dst = binary.BigEndian.AppendUint64(dst, s.ID)
	dst = append(dst, s.Secret[:]...)
	dst = binary.BigEndian.AppendUint32(dst, s.WindowMs)
	return binary.BigEndian.AppendUint16(dst, s.MaxUnacked)
}

// DecodeSession parses a ClientSession payload.
func DecodeSession(p []byte) (Session, error) {
	var s Session
	if len(p) != 8+SecretSize+4+2 {
		return s, fmt.Errorf("%w: session frame of %d bytes", common.ErrBadInput, len(p))
	}
	s.ID = binary.BigEndian.Uint64(p)
	copy(s.Secret[:], p[8:])
	s.WindowMs = binary.BigEndian.Uint32(p[8+SecretSize:])
	s.MaxUnacked = binary.BigEndian.Uint16(p[12+SecretSize:])
	return s, nil
}

// MsgSize is the frame size of a ClientMsg.
func MsgSize(data int) int { return HeaderSize + 4 + 8 + data }

// AppendMsg appends a ClientMsg frame.
func AppendMsg(dst []byte, seq uint32, cmd uint64, data []byte) []byte {
	dst = AppendHeader(dst, KindClientMsg, 12+len(data))
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, cmd)
	return append(dst, data...)
}

// DecodeMsg parses a ClientMsg payload; data aliases p.
func DecodeMsg(p []byte) (seq uint32, cmd uint64, data []byte, err error) {
	if len(p) < 12 {
		return 0, 0, nil, fmt.Errorf("%w: message frame of %d bytes", common.ErrBadInput, len(p))
	}
	seq = binary.BigEndian.Uint32(p)
	if seq == 0 {
		return 0, 0, nil, fmt.Errorf("%w: message sequence number 0", common.ErrBadInput)
	}
	return seq, binary.BigEndian.Uint64(p[4:]), p[12:], nil
}

// PushSize is the frame size of a ClientPush.
func PushSize(data int) int { return HeaderSize + 2 + 4 + 8 + data }

// PutPush writes a ClientPush frame into b, which must be PushSize bytes.
func PutPush(b []byte, stream uint16, seq uint32, cmd uint64, data []byte) {
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	binary.BigEndian.PutUint16(b[4:], uint16(KindClientPush))
	binary.BigEndian.PutUint16(b[6:], stream)
	binary.BigEndian.PutUint32(b[8:], seq)
	binary.BigEndian.PutUint64(b[12:], cmd)
	copy(b[20:], data)
}

// AppendPush appends a ClientPush frame.
func AppendPush(dst []byte, stream uint16, seq uint32, cmd uint64, data []byte) []byte {
	n := PushSize(len(data))
	start := len(dst)
	dst = grow(dst, n)
	PutPush(dst[start:], stream, seq, cmd, data)
	return dst
}

// Push is a decoded ClientPush; Data aliases the payload.
type Push struct {
	Stream uint16
	Seq    uint32
	Cmd    uint64
	Data   []byte
}

// DecodePush parses a ClientPush payload.
func DecodePush(p []byte) (Push, error) {
	if len(p) < 14 {
		return Push{}, fmt.Errorf("%w: push frame of %d bytes", common.ErrBadInput, len(p))
	}
	return Push{Stream: binary.BigEndian.Uint16(p), Seq: binary.BigEndian.Uint32(p[2:]),
		Cmd: binary.BigEndian.Uint64(p[6:]), Data: p[14:]}, nil
}

// StreamPos is one stream of a session as a client knows it: the gateway's
// stream number, the sending node and its stream epoch, and the last
// sequence number received in order.
type StreamPos struct {
	Stream uint16
	Node   common.NodeID
	Epoch  uint32
	Last   uint32
}

// AppendStreamOpen appends a ClientStream frame announcing stream of node
// at epoch.
func AppendStreamOpen(dst []byte, stream uint16, node common.NodeID, epoch uint32) []byte {
	dst = AppendHeader(dst, KindClientStream, 2+16+4)
	dst = binary.BigEndian.AppendUint16(dst, stream)
	dst = append(dst, node[:]...)
	return binary.BigEndian.AppendUint32(dst, epoch)
}

// DecodeStreamOpen parses a ClientStream payload (Last is 0).
func DecodeStreamOpen(p []byte) (StreamPos, error) {
	if len(p) != 22 {
		return StreamPos{}, fmt.Errorf("%w: stream frame of %d bytes", common.ErrBadInput, len(p))
	}
	var s StreamPos
	s.Stream = binary.BigEndian.Uint16(p)
	copy(s.Node[:], p[2:18])
	s.Epoch = binary.BigEndian.Uint32(p[18:])
	return s, nil
}

// AppendStreamEnd appends a ClientStreamEnd frame.
func AppendStreamEnd(dst []byte, stream uint16) []byte {
	dst = AppendHeader(dst, KindClientStreamEnd, 2)
	return binary.BigEndian.AppendUint16(dst, stream)
}

// DecodeStreamEnd parses a ClientStreamEnd payload.
func DecodeStreamEnd(p []byte) (uint16, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("%w: stream end of %d bytes", common.ErrBadInput, len(p))
	}
	return binary.BigEndian.Uint16(p), nil
}

// Ack is one stream's acknowledgement in a ClientAck.
type Ack struct {
	Stream uint16
	Seq    uint32
}

// AppendAck appends a ClientAck frame.
func AppendAck(dst []byte, acks []Ack) []byte {
	dst = AppendHeader(dst, KindClientAck, 2+6*len(acks))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(acks)))
	for _, a := range acks {
		dst = binary.BigEndian.AppendUint16(dst, a.Stream)
		dst = binary.BigEndian.AppendUint32(dst, a.Seq)
	}
	return dst
}

// DecodeAck parses a ClientAck payload, appending to dst (which may be nil).
func DecodeAck(dst []Ack, p []byte) ([]Ack, error) {
	if len(p) < 2 {
		return dst, fmt.Errorf("%w: ack frame of %d bytes", common.ErrBadInput, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || len(p) != 2+6*n {
		return dst, fmt.Errorf("%w: ack frame of %d bytes for %d streams", common.ErrBadInput, len(p), n)
	}
	for p = p[2:]; len(p) > 0; p = p[6:] {
		dst = append(dst, Ack{Stream: binary.BigEndian.Uint16(p), Seq: binary.BigEndian.Uint32(p[2:])})
	}
	return dst, nil
}

// AppendMsgAck appends a ClientMsgAck frame.
func AppendMsgAck(dst []byte, seq uint32) []byte {
	dst = AppendHeader(dst, KindClientMsgAck, 4)
	return binary.BigEndian.AppendUint32(dst, seq)
}

// DecodeMsgAck parses a ClientMsgAck payload.
func DecodeMsgAck(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: message ack of %d bytes", common.ErrBadInput, len(p))
	}
	return binary.BigEndian.Uint32(p), nil
}

// Resume is a decoded ClientResume.
type Resume struct {
	Account string
	ID      uint64
	Secret  [SecretSize]byte
	MsgAck  uint32 // the last ClientMsgAck (or ClientResumed) the client received
	// Attempt numbers the client's resumes of the session: 1, 2, 3 … A
	// resume whose attempt is not above the last one accepted is stale
	// (sent on a connection the client abandoned) and refused.
	Attempt uint32
	Streams []StreamPos
}

const streamPosSize = 2 + 16 + 4 + 4

// AppendResume appends a ClientResume frame.
func AppendResume(dst []byte, r *Resume) []byte {
	dst = AppendHeader(dst, KindClientResume, 1+len(r.Account)+8+SecretSize+4+4+2+streamPosSize*len(r.Streams))
	dst = append(dst, byte(len(r.Account)))
	dst = append(dst, r.Account...)
	dst = binary.BigEndian.AppendUint64(dst, r.ID)
	dst = append(dst, r.Secret[:]...)
	dst = binary.BigEndian.AppendUint32(dst, r.MsgAck)
	dst = binary.BigEndian.AppendUint32(dst, r.Attempt)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Streams)))
	for _, s := range r.Streams {
		dst = binary.BigEndian.AppendUint16(dst, s.Stream)
		dst = append(dst, s.Node[:]...)
		dst = binary.BigEndian.AppendUint32(dst, s.Epoch)
		dst = binary.BigEndian.AppendUint32(dst, s.Last)
	}
	return dst
}

// DecodeResume parses a ClientResume payload.
func DecodeResume(p []byte) (Resume, error) {
	var r Resume
	acct, rest, err := cutAccount(p)
	if err != nil {
		return r, err
	}
	if !validUTF8(acct) {
		return r, fmt.Errorf("%w: resume account is not UTF-8", common.ErrBadInput)
	}
	if len(rest) < 8+SecretSize+4+4+2 {
		return r, fmt.Errorf("%w: resume frame of %d bytes", common.ErrBadInput, len(p))
	}
	r.Account = string(acct)
	r.ID = binary.BigEndian.Uint64(rest)
	copy(r.Secret[:], rest[8:])
	r.MsgAck = binary.BigEndian.Uint32(rest[8+SecretSize:])
	r.Attempt = binary.BigEndian.Uint32(rest[12+SecretSize:])
	n := int(binary.BigEndian.Uint16(rest[16+SecretSize:]))
	rest = rest[18+SecretSize:]
	if n > MaxResumeStreams || len(rest) != n*streamPosSize {
		return r, fmt.Errorf("%w: resume lists %d streams in %d bytes", common.ErrBadInput, n, len(rest))
	}
	if n > 0 {
		r.Streams = make([]StreamPos, n)
	}
	for i := range r.Streams {
		s := &r.Streams[i]
		s.Stream = binary.BigEndian.Uint16(rest)
		copy(s.Node[:], rest[2:18])
		s.Epoch = binary.BigEndian.Uint32(rest[18:])
		s.Last = binary.BigEndian.Uint32(rest[22:])
		rest = rest[streamPosSize:]
	}
	return r, nil
}

// Resumed is a decoded ClientResumed.
type Resumed struct {
	Code   uint16
	MsgAck uint32 // every client message up to this one was processed
	Flags  uint8  // ResumedBroadcastGap
	Text   string
}

// AppendResumed appends a ClientResumed frame; the text is cut to
// MaxReason bytes.
func AppendResumed(dst []byte, r *Resumed) []byte {
	text := r.Text
	if len(text) > MaxReason {
		text = text[:MaxReason]
	}
	dst = AppendHeader(dst, KindClientResumed, 2+4+1+len(text))
	dst = binary.BigEndian.AppendUint16(dst, r.Code)
	dst = binary.BigEndian.AppendUint32(dst, r.MsgAck)
	dst = append(dst, r.Flags)
	return append(dst, text...)
}

// DecodeResumed parses a ClientResumed payload.
func DecodeResumed(p []byte) (Resumed, error) {
	if len(p) < 7 || len(p) > 7+MaxReason {
		return Resumed{}, fmt.Errorf("%w: resumed frame of %d bytes", common.ErrBadInput, len(p))
	}
	return Resumed{Code: binary.BigEndian.Uint16(p), MsgAck: binary.BigEndian.Uint32(p[2:]), Flags: p[6], Text: string(p[7:])}, nil
}
