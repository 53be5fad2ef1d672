package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/xserver/xserver/common"
)

// Relay link kinds (node <-> gateway, after the same Hello/Register
// handshake as the control plane; the gateway answers a good registration
// with KindAccepted). Payload layouts are big-endian; many start with a
// session reference, SessRef = u8 alen | account | u64 sid:
//
//	Deliver:        SessRef | u32 csq | u64 cmd | data
//	Push:           SessRef | u32 epoch | u32 seq | u8 flags | u64 cmd | data
//	LinkAck:        u64 frames
//	Delivered:      SessRef | u32 epoch | u32 seq
//	Resend:         SessRef | u32 epoch | u32 from
//	NotHere:        SessRef
//	SessionOnline:  SessRef | u32 window ms | u8 flags
//	SessionPaused:  SessRef
//	LoseAccount:    SessRef | u8 reason
//	Resume:         SessRef | u16 n | n × (u32 epoch | u32 from)
//	ResumeState:    SessRef | u32 hi | 32 bitmap | u16 n | n × (u32 epoch | u8 status)
//	Claim:          SessRef
//	Node:           u8 op | u32 src type | 16 src id | 16 dst id | u64 cmd | u64 id | u64 expire ms | data
//	Undeliverable:  16 dst id | u64 cmd | u16 code | u8 op | u64 id
//	NodeAck:        u64 frames
//	Broadcast:      u64 cmd | data
//	Kick:           u8 alen | account | u16 code | reason
const (
	KindAccepted      Kind = 12 // G→N: registration accepted (empty payload)
	KindNodeMsg       Kind = 34 // N→G→N: node to node
	KindUndeliverable Kind = 35 // G→N: a node message could not be delivered
	KindBroadcast     Kind = 36 // N→G: to every client of the gateway
	KindKick          Kind = 37 // N→G: close an account's session
	KindDeliver       Kind = 40 // G→N: a client's message, type offset stripped
	KindPush          Kind = 41 // N→G: a message for a client, in the node's stream
	KindLinkAck       Kind = 42 // N→G: Deliver frames processed on this link
	KindDelivered     Kind = 43 // G→N: the client received the stream through seq
	KindResend        Kind = 44 // G→N: a gap in the stream: send again from seq
	KindNotHere       Kind = 45 // G→N: no such session of the account here
	KindSessionOnline Kind = 46 // G→N: the account is bound to you and online here
	KindSessionPaused Kind = 47 // G→N: the client is disconnected and may resume
	KindLoseAccount   Kind = 48 // G→N: the account is no longer yours
	KindResume        Kind = 49 // G→N: the session is now held here: report and resend
	KindResumeState   Kind = 50 // N→G: answer to Resume
	KindClaim         Kind = 51 // N→G: is this account still bound to me here?
	KindNodeAck       Kind = 52 // G→N: node messages from this link handled (forwarded or refused)
	nodeMsgHeader          = 1 + 4 + 16 + 16 + 8 + 8 + 8
)

// Node message ops.
const (
	OpMessage uint8 = 0 // one-way message
	OpCall    uint8 = 1 // a call expecting a reply with the same id
	OpReply   uint8 = 2 // a call's reply: the data is the answer
	OpFailed  uint8 = 3 // a call's reply: the data is u16 code | UTF-8 text
	OpCancel  uint8 = 4 // the caller gave up call id
	maxNodeOp       = OpCancel
)

// Push flags.
const (
	// PushOwner marks a push sent by the instance the account is bound to,
	// as its owner: the gateway refuses it (LoseAccount, moved) when the
	// binding has moved on.
	PushOwner = 1
)

// SessionOnline flags.
const (
	// OnlineResumed: the client came back after SessionPaused.
	OnlineResumed = 1
)

// LoseAccount reasons.
const (
	LoseEnded = 0 // the session ended (logout, kick, window expired, drain)
	LoseMoved = 1 // the account is bound to another instance now
)

// ResumeState stream status.
const (
	StreamOK        = 0 // the stream goes on; frames from the requested seq follow
	StreamForgotten = 1 // the node closed that stream after the client acknowledged all of it
	StreamLost      = 2 // the node does not know the stream: frames may be lost
)

// ResumeBitmapSize is the size of ResumeState's processed-message bitmap:
// bit i (byte i/8, bit i%8, least significant first) says csq hi-i was
// processed.
const ResumeBitmapSize = MaxUnacked / 8

// SessRef identifies a session in relay frames; Account aliases the
// payload when decoded.
type SessRef struct {
	Account []byte
	Sid     uint64
}

func sessRefSize(account string) int { return 1 + len(account) + 8 }

func appendSessRef(dst []byte, account string, sid uint64) []byte {
	dst = append(dst, byte(len(account)))
	dst = append(dst, account...)
	return binary.BigEndian.AppendUint64(dst, sid)
}

func cutSessRef(p []byte) (SessRef, []byte, error) {
	a, rest, err := cutAccount(p)
	if err != nil {
		return SessRef{}, nil, err
	}
	if len(rest) < 8 {
		return SessRef{}, nil, fmt.Errorf("%w: session reference without id", common.ErrBadInput)
	}
	return SessRef{Account: a, Sid: binary.BigEndian.Uint64(rest)}, rest[8:], nil
}

// DecodeSessRef parses the session reference that starts p and returns
// the rest.
func DecodeSessRef(p []byte) (SessRef, []byte, error) { return cutSessRef(p) }

// AppendRef appends a frame of kind holding only a session reference
// (NotHere, SessionPaused, Claim).
func AppendRef(dst []byte, kind Kind, account string, sid uint64) []byte {
	dst = AppendHeader(dst, kind, sessRefSize(account))
	return appendSessRef(dst, account, sid)
}

// DecodeRef parses a payload holding only a session reference.
func DecodeRef(p []byte) (SessRef, error) {
	r, rest, err := cutSessRef(p)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: trailing bytes after session reference", common.ErrBadInput)
	}
	return r, err
}

// DeliverSize is the frame size of a Deliver.
func DeliverSize(account string, data int) int {
	return HeaderSize + sessRefSize(account) + 4 + 8 + data
}

// PutDeliver writes a Deliver frame into b, which must be DeliverSize bytes.
func PutDeliver(b []byte, account string, sid uint64, csq uint32, cmd uint64, data []byte) {
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	binary.BigEndian.PutUint16(b[4:], uint16(KindDeliver))
	b[6] = byte(len(account))
	n := 7 + copy(b[7:], account)
	binary.BigEndian.PutUint64(b[n:], sid)
	binary.BigEndian.PutUint32(b[n+8:], csq)
	binary.BigEndian.PutUint64(b[n+12:], cmd)
	copy(b[n+20:], data)
}

// AppendDeliver appends a Deliver frame.
func AppendDeliver(dst []byte, account string, sid uint64, csq uint32, cmd uint64, data []byte) []byte {
	n := DeliverSize(account, len(data))
	start := len(dst)
	dst = grow(dst, n)
	PutDeliver(dst[start:], account, sid, csq, cmd, data)
	return dst
}

// Deliver is a decoded Deliver frame; Account and Data alias the payload.
type Deliver struct {
	SessRef
	Csq  uint32 // client sequence number; 0 for a version 1 session
	Cmd  uint64
	Data []byte
}

// DecodeDeliver parses a Deliver payload.
func DecodeDeliver(p []byte) (Deliver, error) {
	r, rest, err := cutSessRef(p)
	if err != nil {
		return Deliver{}, err
	}
	if len(rest) < 12 {
		return Deliver{}, fmt.Errorf("%w: deliver without cmd", common.ErrBadInput)
	}
	return Deliver{SessRef: r, Csq: binary.BigEndian.Uint32(rest), Cmd: binary.BigEndian.Uint64(rest[4:]), Data: rest[12:]}, nil
}

// PushSizeFor is the frame size of a Push for account.
func PushSizeFor(account string, data int) int {
	return HeaderSize + sessRefSize(account) + 4 + 4 + 1 + 8 + data
}

// PushHeaderSize is the size of a Push frame before its data.
func PushHeaderSize(account string) int { return PushSizeFor(account, 0) }

// PutPushFrame writes a Push frame into b, which must be PushSizeFor bytes.
func PutPushFrame(b []byte, account string, sid uint64, epoch, seq uint32, flags uint8, cmd uint64, data []byte) {
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	binary.BigEndian.PutUint16(b[4:], uint16(KindPush))
	b[6] = byte(len(account))
	n := 7 + copy(b[7:], account)
	binary.BigEndian.PutUint64(b[n:], sid)
	binary.BigEndian.PutUint32(b[n+8:], epoch)
	binary.BigEndian.PutUint32(b[n+12:], seq)
	b[n+16] = flags
	binary.BigEndian.PutUint64(b[n+17:], cmd)
	copy(b[n+25:], data)
}

// RestampPush rewrites the session, epoch and sequence number of an
// encoded Push frame in place (a stream moving to a new session).
func RestampPush(frame []byte, sid uint64, epoch, seq uint32) {
	n := 7 + int(frame[6])
	binary.BigEndian.PutUint64(frame[n:], sid)
	binary.BigEndian.PutUint32(frame[n+8:], epoch)
	binary.BigEndian.PutUint32(frame[n+12:], seq)
}

// PushFrame is a decoded Push; Account and Data alias the payload.
type PushFrame struct {
	SessRef
	Epoch uint32
	Seq   uint32
	Flags uint8
	Cmd   uint64
	Data  []byte
}

// DecodePushFrame parses a Push payload.
func DecodePushFrame(p []byte) (PushFrame, error) {
	r, rest, err := cutSessRef(p)
	if err != nil {
		return PushFrame{}, err
	}
	if len(rest) < 17 {
		return PushFrame{}, fmt.Errorf("%w: push of %d bytes", common.ErrBadInput, len(p))
	}
	f := PushFrame{SessRef: r, Epoch: binary.BigEndian.Uint32(rest), Seq: binary.BigEndian.Uint32(rest[4:]),
		Flags: rest[8], Cmd: binary.BigEndian.Uint64(rest[9:]), Data: rest[17:]}
	if f.Epoch == 0 || f.Seq == 0 {
		return PushFrame{}, fmt.Errorf("%w: push with epoch %d seq %d", common.ErrBadInput, f.Epoch, f.Seq)
	}
	return f, nil
}

// AppendLinkAck appends a LinkAck frame.
func AppendLinkAck(dst []byte, frames uint64) []byte {
	dst = AppendHeader(dst, KindLinkAck, 8)
	return binary.BigEndian.AppendUint64(dst, frames)
}

// DecodeLinkAck parses a LinkAck payload.
func DecodeLinkAck(p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("%w: link ack of %d bytes", common.ErrBadInput, len(p))
	}
	return binary.BigEndian.Uint64(p), nil
}

// AppendStreamSeq appends a Delivered or Resend frame.
func AppendStreamSeq(dst []byte, kind Kind, account string, sid uint64, epoch, seq uint32) []byte {
	dst = AppendHeader(dst, kind, sessRefSize(account)+8)
	dst = appendSessRef(dst, account, sid)
	dst = binary.BigEndian.AppendUint32(dst, epoch)
	return binary.BigEndian.AppendUint32(dst, seq)
}

// DecodeStreamSeq parses a Delivered or Resend payload.
func DecodeStreamSeq(p []byte) (r SessRef, epoch, seq uint32, err error) {
	r, rest, err := cutSessRef(p)
	if err != nil {
		return r, 0, 0, err
	}
	if len(rest) != 8 {
		return r, 0, 0, fmt.Errorf("%w: stream position of %d bytes", common.ErrBadInput, len(rest))
	}
	return r, binary.BigEndian.Uint32(rest), binary.BigEndian.Uint32(rest[4:]), nil
}

// AppendSessionOnline appends a SessionOnline frame.
func AppendSessionOnline(dst []byte, account string, sid uint64, windowMs uint32, flags uint8) []byte {
	dst = AppendHeader(dst, KindSessionOnline, sessRefSize(account)+5)
	dst = appendSessRef(dst, account, sid)
	dst = binary.BigEndian.AppendUint32(dst, windowMs)
	return append(dst, flags)
}

// DecodeSessionOnline parses a SessionOnline payload.
func DecodeSessionOnline(p []byte) (r SessRef, windowMs uint32, flags uint8, err error) {
	r, rest, err := cutSessRef(p)
	if err != nil {
		return r, 0, 0, err
	}
	if len(rest) != 5 {
		return r, 0, 0, fmt.Errorf("%w: session online of %d bytes", common.ErrBadInput, len(p))
	}
	return r, binary.BigEndian.Uint32(rest), rest[4], nil
}

// AppendLose appends a LoseAccount frame.
func AppendLose(dst []byte, account string, sid uint64, reason uint8) []byte {
	dst = AppendHeader(dst, KindLoseAccount, sessRefSize(account)+1)
	dst = appendSessRef(dst, account, sid)
	return append(dst, reason)
}

// DecodeLose parses a LoseAccount payload.
func DecodeLose(p []byte) (SessRef, uint8, error) {
	r, rest, err := cutSessRef(p)
	if err != nil {
		return r, 0, err
	}
	if len(rest) != 1 {
		return r, 0, fmt.Errorf("%w: lose-account of %d bytes", common.ErrBadInput, len(p))
	}
	return r, rest[0], nil
}

// EpochFrom is one stream of a Resume: resend epoch's frames from From.
type EpochFrom struct {
	Epoch uint32
	From  uint32
}

// AppendResumeReq appends a Resume frame.
func AppendResumeReq(dst []byte, account string, sid uint64, streams []EpochFrom) []byte {
	dst = AppendHeader(dst, KindResume, sessRefSize(account)+2+8*len(streams))
	dst = appendSessRef(dst, account, sid)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(streams)))
	for _, s := range streams {
		dst = binary.BigEndian.AppendUint32(dst, s.Epoch)
		dst = binary.BigEndian.AppendUint32(dst, s.From)
	}
	return dst
}

// DecodeResumeReq parses a Resume payload, appending the streams to dst.
func DecodeResumeReq(dst []EpochFrom, p []byte) (SessRef, []EpochFrom, error) {
	r, rest, err := cutSessRef(p)
	if err != nil {
		return r, dst, err
	}
	if len(rest) < 2 {
		return r, dst, fmt.Errorf("%w: resume of %d bytes", common.ErrBadInput, len(p))
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if n > MaxResumeStreams || len(rest) != 8*n {
		return r, dst, fmt.Errorf("%w: resume of %d streams in %d bytes", common.ErrBadInput, n, len(rest))
	}
	for ; len(rest) > 0; rest = rest[8:] {
		dst = append(dst, EpochFrom{Epoch: binary.BigEndian.Uint32(rest), From: binary.BigEndian.Uint32(rest[4:])})
	}
	return r, dst, nil
}

// EpochStatus is one stream's answer in a ResumeState.
type EpochStatus struct {
	Epoch  uint32
	Status uint8
}

// ResumeState is a decoded ResumeState; Account aliases the payload.
type ResumeState struct {
	SessRef
	Hi      uint32 // highest client sequence number processed
	Bitmap  [ResumeBitmapSize]byte
	Streams []EpochStatus
}

// AppendResumeState appends a ResumeState frame.
func AppendResumeState(dst []byte, account string, s *ResumeState) []byte {
	dst = AppendHeader(dst, KindResumeState, sessRefSize(account)+4+ResumeBitmapSize+2+5*len(s.Streams))
	dst = appendSessRef(dst, account, s.Sid)
	dst = binary.BigEndian.AppendUint32(dst, s.Hi)
	dst = append(dst, s.Bitmap[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s.Streams)))
	for _, e := range s.Streams {
		dst = binary.BigEndian.AppendUint32(dst, e.Epoch)
		dst = append(dst, e.Status)
	}
	return dst
}

// DecodeResumeState parses a ResumeState payload.
func DecodeResumeState(p []byte) (ResumeState, error) {
	var s ResumeState
	r, rest, err := cutSessRef(p)
	if err != nil {
		return s, err
	}
	s.SessRef = r
	if len(rest) < 4+ResumeBitmapSize+2 {
		return s, fmt.Errorf("%w: resume state of %d bytes", common.ErrBadInput, len(p))
	}
	s.Hi = binary.BigEndian.Uint32(rest)
	copy(s.Bitmap[:], rest[4:])
	n := int(binary.BigEndian.Uint16(rest[4+ResumeBitmapSize:]))
	rest = rest[6+ResumeBitmapSize:]
	if n > MaxResumeStreams || len(rest) != 5*n {
		return s, fmt.Errorf("%w: resume state of %d streams in %d bytes", common.ErrBadInput, n, len(rest))
	}
	for ; len(rest) > 0; rest = rest[5:] {
		st := rest[4]
		if st > StreamLost {
			return s, fmt.Errorf("%w: stream status %d", common.ErrBadInput, st)
		}
		s.Streams = append(s.Streams, EpochStatus{Epoch: binary.BigEndian.Uint32(rest), Status: st})
	}
	return s, nil
}

func cutAccount(p []byte) ([]byte, []byte, error) {
	if len(p) < 1 {
		return nil, nil, fmt.Errorf("%w: missing account", common.ErrBadInput)
	}
	n := int(p[0])
	if n == 0 || n > MaxAccount || len(p) < 1+n {
		return nil, nil, fmt.Errorf("%w: account length %d", common.ErrBadInput, n)
	}
	return p[1 : 1+n], p[1+n:], nil
}

// NodeMsg is a decoded node-to-node frame; Data aliases the payload.
type NodeMsg struct {
	Op      uint8
	SrcType common.NodeType
	Src     common.NodeID
	Dst     common.NodeID
	Cmd     uint64
	ID      uint64 // call id (0 for a one-way message)
	Expire  int64  // unix milliseconds after which it must not be delivered (0: never)
	Data    []byte
}

// NodeMsgSize is the frame size of a node message.
func NodeMsgSize(data int) int { return HeaderSize + nodeMsgHeader + data }

// AppendNodeMsg appends a node message frame.
func AppendNodeMsg(dst []byte, m *NodeMsg) []byte {
	dst = AppendHeader(dst, KindNodeMsg, nodeMsgHeader+len(m.Data))
	dst = append(dst, m.Op)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.SrcType))
	dst = append(dst, m.Src[:]...)
	dst = append(dst, m.Dst[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.Cmd)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Expire))
	return append(dst, m.Data...)
}

// DecodeNodeMsg parses a node message payload.
func DecodeNodeMsg(p []byte) (NodeMsg, error) {
	if len(p) < nodeMsgHeader {
		return NodeMsg{}, fmt.Errorf("%w: node message of %d bytes", common.ErrBadInput, len(p))
	}
	var m NodeMsg
	m.Op = p[0]
	if m.Op > maxNodeOp {
		return NodeMsg{}, fmt.Errorf("%w: node message op %d", common.ErrBadInput, m.Op)
	}
	m.SrcType = common.NodeType(binary.BigEndian.Uint32(p[1:]))
	copy(m.Src[:], p[5:21])
	copy(m.Dst[:], p[21:37])
	m.Cmd = binary.BigEndian.Uint64(p[37:])
	m.ID = binary.BigEndian.Uint64(p[45:])
	m.Expire = int64(binary.BigEndian.Uint64(p[53:]))
	m.Data = p[nodeMsgHeader:]
	return m, nil
}

// NodeMsgRoute reads only what a gateway routes on: the op, the
// destination, the cmd, the call id and the expiry.
func NodeMsgRoute(p []byte) (op uint8, dst common.NodeID, cmd, id uint64, expire int64, ok bool) {
	if len(p) < nodeMsgHeader || p[0] > maxNodeOp {
		return 0, dst, 0, 0, 0, false
	}
	copy(dst[:], p[21:37])
	return p[0], dst, binary.BigEndian.Uint64(p[37:]), binary.BigEndian.Uint64(p[45:]), int64(binary.BigEndian.Uint64(p[53:])), true
}

// Undeliverable is a decoded Undeliverable notice.
type Undeliverable struct {
	To   common.NodeID
	Cmd  uint64
	Code uint16 // CodeNoNode: not linked here; CodeSlow: its queue is full; CodeExpired: too late
	Op   uint8
	ID   uint64
}

// AppendUndeliverable appends an undeliverable notice.
func AppendUndeliverable(dst []byte, u *Undeliverable) []byte {
	dst = AppendHeader(dst, KindUndeliverable, 16+8+2+1+8)
	dst = append(dst, u.To[:]...)
	dst = binary.BigEndian.AppendUint64(dst, u.Cmd)
	dst = binary.BigEndian.AppendUint16(dst, u.Code)
	dst = append(dst, u.Op)
	return binary.BigEndian.AppendUint64(dst, u.ID)
}

// DecodeUndeliverable parses an undeliverable notice.
func DecodeUndeliverable(p []byte) (Undeliverable, error) {
	var u Undeliverable
	if len(p) != 35 {
		return u, fmt.Errorf("%w: undeliverable of %d bytes", common.ErrBadInput, len(p))
	}
	copy(u.To[:], p)
	u.Cmd = binary.BigEndian.Uint64(p[16:])
	u.Code = binary.BigEndian.Uint16(p[24:])
	u.Op = p[26]
	u.ID = binary.BigEndian.Uint64(p[27:])
	return u, nil
}

// AppendNodeAck appends a NodeAck frame.
func AppendNodeAck(dst []byte, frames uint64) []byte {
	dst = AppendHeader(dst, KindNodeAck, 8)
	return binary.BigEndian.AppendUint64(dst, frames)
}

// AppendBroadcast appends a broadcast frame.
func AppendBroadcast(dst []byte, cmd uint64, data []byte) []byte {
	dst = AppendHeader(dst, KindBroadcast, 8+len(data))
	dst = binary.BigEndian.AppendUint64(dst, cmd)
	return append(dst, data...)
}

// DecodeBroadcast parses a broadcast payload.
func DecodeBroadcast(p []byte) (uint64, []byte, error) {
	if len(p) < 8 {
		return 0, nil, fmt.Errorf("%w: broadcast of %d bytes", common.ErrBadInput, len(p))
	}
	return binary.BigEndian.Uint64(p), p[8:], nil
}

// AppendKick appends a kick request.
func AppendKick(dst []byte, account string, code uint16, reason string) []byte {
	if len(reason) > MaxReason {
		reason = reason[:MaxReason]
	}
	dst = AppendHeader(dst, KindKick, 1+len(account)+2+len(reason))
	dst = append(dst, byte(len(account)))
	dst = append(dst, account...)
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// DecodeKick parses a kick request.
func DecodeKick(p []byte) (account []byte, code uint16, reason string, err error) {
	account, rest, err := cutAccount(p)
	if err != nil {
		return nil, 0, "", err
	}
	if len(rest) < 2 || len(rest) > 2+MaxReason {
		return nil, 0, "", fmt.Errorf("%w: kick of %d bytes", common.ErrBadInput, len(p))
	}
	return account, binary.BigEndian.Uint16(rest), string(rest[2:]), nil
}
