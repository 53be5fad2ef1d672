package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the number of bytes before a frame's payload.
const HeaderSize = 6

// DefaultMaxFrame is the frame limit used when a config leaves it zero.
const DefaultMaxFrame = 1 << 20

// Errors returned by Reader. Any of them means the stream cannot continue.
var (
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrFrameTooShort = errors.New("wire: frame shorter than its header")
)

// Kind names what a frame's payload holds.
type Kind uint16

// Intranet control-plane kinds (node/gateway <-> mgrserver). Payloads are
// the protobuf messages of the same name in package proto.
const (
	KindHello       Kind = 1
	KindRegister    Kind = 2
	KindSnapshot    Kind = 3
	KindMemberEvent Kind = 4
	KindUpdateSelf  Kind = 6
	KindSyncRequest Kind = 7
	KindPing        Kind = 8
	KindPong        Kind = 9
	KindLeave       Kind = 10
	KindError       Kind = 11
)

// String returns the kind's name for logs.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint16(k))
}

var kindNames = map[Kind]string{
	KindHello: "hello", KindRegister: "register", KindSnapshot: "snapshot",
	KindMemberEvent: "member-event",
	KindUpdateSelf:  "update-self", KindSyncRequest: "sync-request",
	KindPing: "ping", KindPong: "pong", KindLeave: "leave", KindError: "error",
	KindAccepted: "accepted", KindNodeMsg: "node-msg", KindUndeliverable: "undeliverable",
	KindBroadcast: "broadcast", KindKick: "kick",
	KindDeliver: "deliver", KindPush: "push", KindLinkAck: "link-ack", KindDelivered: "delivered",
	KindResend: "resend", KindNotHere: "not-here", KindSessionOnline: "session-online",
	KindSessionPaused: "session-paused", KindLoseAccount: "lose-account", KindResume: "resume",
	KindResumeState: "resume-state", KindClaim: "claim", KindNodeAck: "node-ack",
	KindClientLogin: "client-login", KindClientLoginAck: "client-login-ack", KindClientData: "client-data",
	KindClientKick: "client-kick", KindClientPing: "client-ping", KindClientPong: "client-pong",
	KindClientError: "client-error", KindClientSession: "client-session", KindClientMsg: "client-msg",
	KindClientPush: "client-push", KindClientStream: "client-stream", KindClientAck: "client-ack",
	KindClientMsgAck: "client-msg-ack", KindClientResume: "client-resume", KindClientResumed: "client-resumed",
	KindClientStreamEnd: "client-stream-end", KindClientLogout: "client-logout",
	KindGroupJoin: "group-join", KindGroupLeave: "group-leave", KindGroupBroadcast: "group-broadcast",
	KindGroupQuery: "group-query", KindGroupMembers: "group-members", KindClientShed: "client-shed",
}

// Marshaler is what gogofaster-generated messages implement; encoding through
// it lets AppendMessage write straight into the destination buffer.
type Marshaler interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// AppendFrame appends one frame holding payload to dst.
func AppendFrame(dst []byte, kind Kind, payload []byte) []byte {
	dst = AppendHeader(dst, kind, len(payload))
	return append(dst, payload...)
}

// AppendHeader appends a frame header announcing a payload of n bytes; the
// caller appends exactly n payload bytes after it.
func AppendHeader(dst []byte, kind Kind, n int) []byte {
	var h [HeaderSize]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(n+2))
	binary.BigEndian.PutUint16(h[4:6], uint16(kind))
	return append(dst, h[:]...)
}

// AppendMessage appends one frame holding m's protobuf encoding to dst.
func AppendMessage(dst []byte, kind Kind, m Marshaler) ([]byte, error) {
	n := m.Size()
	dst = AppendHeader(dst, kind, n)
	start := len(dst)
	dst = grow(dst, n)
	if _, err := m.MarshalToSizedBuffer(dst[start : start+n]); err != nil {
		return dst[:start-HeaderSize], fmt.Errorf("wire: marshal %s: %w", kind, err)
	}
	return dst, nil
}

// Frame encodes m as one standalone frame.
func Frame(kind Kind, m Marshaler) ([]byte, error) {
	return AppendMessage(make([]byte, 0, HeaderSize+m.Size()), kind, m)
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// Reader reads frames from a byte stream. It is not safe for concurrent use;
// a connection has one reading goroutine.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewReader returns a Reader that rejects frames whose length field exceeds
// maxFrame (DefaultMaxFrame when maxFrame <= 0). size is the read buffer
// size (4096 when <= 0).
func NewReader(r io.Reader, maxFrame, size int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if size <= 0 {
		size = 4096
	}
	return &Reader{r: bufio.NewReaderSize(r, size), max: maxFrame}
}

// Buffered reports how many bytes are already read from the stream but not
// yet returned as frames; a reader can use it to batch work.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadFrame returns the next frame. The payload aliases an internal buffer
// that the next call overwrites. io.EOF is returned only at a clean frame
// boundary; a stream cut inside a frame gives io.ErrUnexpectedEOF.
func (r *Reader) ReadFrame() (Kind, []byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r.r, h[:4]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:4]))
	if n < 2 {
		return 0, nil, fmt.Errorf("%w: length %d", ErrFrameTooShort, n)
	}
	if n > r.max {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
	}
	if _, err := io.ReadFull(r.r, h[4:6]); err != nil {
		return 0, nil, noEOF(err)
	}
	kind := Kind(binary.BigEndian.Uint16(h[4:6]))
	n -= 2
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return 0, nil, noEOF(err)
	}
	return kind, p, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
