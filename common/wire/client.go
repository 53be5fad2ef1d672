package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/xserver/xserver/common"
)

// Client protocol kinds (player client <-> gateway). See docs/PROTOCOL.md.
const (
	KindClientLogin    Kind = 100 // C→G: account, token (first frame)
	KindClientLoginAck Kind = 101 // G→C: code, message
	KindClientData     Kind = 102 // both: cmd, payload
	KindClientKick     Kind = 103 // G→C: code, reason; the gateway then closes
	KindClientPing     Kind = 104 // C→G: 8 opaque bytes
	KindClientPong     Kind = 105 // G→C: the ping's 8 bytes
	KindClientError    Kind = 106 // G→C: code, cmd; a message was not delivered (not fatal)
)

// Client result and close codes.
const (
	CodeOK           uint16 = 0
	CodeBadToken     uint16 = 1  // login refused: token missing, expired or wrong
	CodeBadFrame     uint16 = 2  // a frame that does not decode, or an unexpected kind
	CodeTooLarge     uint16 = 3  // a frame over the gateway's limit
	CodeLoginTimeout uint16 = 4  // no login frame within the handshake deadline
	CodeBadCmd       uint16 = 5  // a cmd naming no routable node type
	CodeNoNode       uint16 = 6  // no live node of the cmd's type (Error frame)
	CodeDuplicate    uint16 = 7  // the account logged in again elsewhere
	CodeKicked       uint16 = 8  // a game node kicked the account
	CodeIdle         uint16 = 9  // idle for longer than the gateway allows
	CodeSlow         uint16 = 10 // the client did not read fast enough
	CodeShutdown     uint16 = 11 // the gateway is shutting down
	CodeFull         uint16 = 12 // the gateway is at its connection limit
	CodeUnavailable  uint16 = 13 // the gateway cannot check logins right now
	CodeRateLimited  uint16 = 19 // the client sent more than the gateway's rate limits allow
)

// CodeText names a client code.
func CodeText(c uint16) string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeBadToken:
		return "bad token"
	case CodeBadFrame:
		return "bad frame"
	case CodeTooLarge:
		return "frame too large"
	case CodeLoginTimeout:
		return "login timeout"
	case CodeBadCmd:
		return "cmd names no node type"
	case CodeNoNode:
		return "no node available"
	case CodeDuplicate:
		return "logged in elsewhere"
	case CodeKicked:
		return "kicked"
	case CodeIdle:
		return "idle timeout"
	case CodeSlow:
		return "too slow to read"
	case CodeShutdown:
		return "gateway shutting down"
	case CodeFull:
		return "gateway full"
	case CodeUnavailable:
		return "login service unavailable"
	case CodeTakenOver:
		return "session resumed on another connection"
	case CodeExpired:
		return "session expired"
	case CodeLost:
		return "session lost messages"
	case CodeBadResume:
		return "resume refused"
	case CodeLinkLost:
		return "gateway link lost"
	case CodeRateLimited:
		return "rate limited"
	}
	return fmt.Sprintf("code %d", c)
}

// Limits of the client protocol.
const (
	MaxAccount = 64  // bytes of an account name
	MaxToken   = 256 // bytes of a token
	MaxReason  = 256 // bytes of a kick or ack message
)

// Login is a decoded login frame.
type Login struct {
	Account string
	Token   string
	// Version is 0 for a version 1 login (nothing after the token) and
	// ProtocolV2 when the client asks for a resumable session.
	Version uint8
}

// AppendLogin appends a version 1 login frame.
func AppendLogin(dst []byte, account, token string) []byte {
	return AppendLoginVersion(dst, account, token, 0)
}

// AppendLoginVersion appends a login frame; version 0 writes the version 1
// layout, any other value is appended after the token.
func AppendLoginVersion(dst []byte, account, token string, version uint8) []byte {
	n := 1 + len(account) + 2 + len(token)
	if version != 0 {
		n++
	}
	dst = AppendHeader(dst, KindClientLogin, n)
	dst = append(dst, byte(len(account)))
	dst = append(dst, account...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(token)))
	dst = append(dst, token...)
	if version != 0 {
		dst = append(dst, version)
	}
	return dst
}

// DecodeLogin parses a login payload: u8 account length, account (UTF-8),
// u16 token length, token, and optionally one version byte (ProtocolV2).
func DecodeLogin(p []byte) (Login, error) {
	if len(p) < 1 {
		return Login{}, fmt.Errorf("%w: empty login", common.ErrBadInput)
	}
	n := int(p[0])
	p = p[1:]
	if n == 0 || n > MaxAccount || len(p) < n+2 {
		return Login{}, fmt.Errorf("%w: login account length %d", common.ErrBadInput, n)
	}
	acct := p[:n]
	p = p[n:]
	t := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	var version uint8
	if t > 0 && len(p) == t+1 {
		version = p[t]
		p = p[:t]
		if version != ProtocolV2 {
			return Login{}, fmt.Errorf("%w: login protocol version %d", common.ErrBadInput, version)
		}
	}
	if t == 0 || t > MaxToken || len(p) != t {
		return Login{}, fmt.Errorf("%w: login token length %d", common.ErrBadInput, t)
	}
	if !utf8.Valid(acct) || !utf8.Valid(p) {
		return Login{}, fmt.Errorf("%w: login is not UTF-8", common.ErrBadInput)
	}
	return Login{Account: string(acct), Token: string(p), Version: version}, nil
}

// AppendCoded appends a frame of kind holding u16 code and a text (an ack,
// a kick). The text is cut to MaxReason bytes.
func AppendCoded(dst []byte, kind Kind, code uint16, text string) []byte {
	if len(text) > MaxReason {
		text = text[:MaxReason]
	}
	dst = AppendHeader(dst, kind, 2+len(text))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, text...)
}

// DecodeCoded parses a code-and-text payload.
func DecodeCoded(p []byte) (uint16, string, error) {
	if len(p) < 2 || len(p) > 2+MaxReason {
		return 0, "", fmt.Errorf("%w: coded frame of %d bytes", common.ErrBadInput, len(p))
	}
	return binary.BigEndian.Uint16(p), string(p[2:]), nil
}

// AppendData appends a data frame.
func AppendData(dst []byte, cmd uint64, payload []byte) []byte {
	dst = AppendHeader(dst, KindClientData, 8+len(payload))
	dst = binary.BigEndian.AppendUint64(dst, cmd)
	return append(dst, payload...)
}

// DataSize is the encoded size of a data frame.
func DataSize(payload int) int { return HeaderSize + 8 + payload }

// PutData writes a data frame into b, which must be DataSize(len(payload))
// bytes.
func PutData(b []byte, cmd uint64, payload []byte) {
	binary.BigEndian.PutUint32(b, uint32(2+8+len(payload)))
	binary.BigEndian.PutUint16(b[4:], uint16(KindClientData))
	binary.BigEndian.PutUint64(b[6:], cmd)
	copy(b[14:], payload)
}

// DecodeData splits a data payload into cmd and message bytes (aliasing p).
func DecodeData(p []byte) (uint64, []byte, error) {
	if len(p) < 8 {
		return 0, nil, fmt.Errorf("%w: data frame of %d bytes", common.ErrBadInput, len(p))
	}
	return binary.BigEndian.Uint64(p), p[8:], nil
}

// AppendClientError appends a non-fatal error notice about cmd.
func AppendClientError(dst []byte, code uint16, cmd uint64) []byte {
	dst = AppendHeader(dst, KindClientError, 10)
	dst = binary.BigEndian.AppendUint16(dst, code)
	return binary.BigEndian.AppendUint64(dst, cmd)
}

func validUTF8(b []byte) bool { return utf8.Valid(b) }
