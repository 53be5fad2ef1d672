package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/xserver/xserver/common"
)

// Relay link kinds (node <-> gateway, after the same Hello/Register
// handshake as the control plane; the gateway answers a good registration
// with KindAccepted). Payload layouts are big-endian:
//
//	FromClient / ToClient:  u8 alen | account | u64 cmd | data
//	Node:                   u32 src type | 16 src id | 16 dst id | u64 cmd | data
//	Undeliverable:          16 dst id | u64 cmd | u16 code
//	Broadcast:              u64 cmd | data
//	Kick:                   u8 alen | account | u16 code | reason
//	LoseAccount / Online:   u8 alen | account
const (
	KindAccepted      Kind = 12 // G→N: registration accepted (empty payload)
	KindFromClient    Kind = 32 // G→N: a client's message, type offset stripped
	KindToClient      Kind = 33 // N→G: a message for a client
	KindNodeMsg       Kind = 34 // N→G→N: node to node
	KindUndeliverable Kind = 35 // G→N: a node message could not be delivered
	KindBroadcast     Kind = 36 // N→G: to every client of the gateway
	KindKick          Kind = 37 // N→G: close an account's session
	KindLoseAccount   Kind = 38 // G→N: an account's session ended
	KindAccountOnline Kind = 39 // G→N: an account bound to the node logged in here
	nodeMsgHeader          = 4 + 16 + 16 + 8
	accountMsgFixed        = 1 + 8
)

// AccountMsgSize is the frame size of a FromClient/ToClient message.
func AccountMsgSize(account string, data int) int {
	return HeaderSize + accountMsgFixed + len(account) + data
}

// PutAccountMsg writes a FromClient or ToClient frame into b, which must be
// AccountMsgSize bytes.
func PutAccountMsg(b []byte, kind Kind, account string, cmd uint64, data []byte) {
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	binary.BigEndian.PutUint16(b[4:], uint16(kind))
	b[6] = byte(len(account))
	n := 7 + copy(b[7:], account)
	binary.BigEndian.PutUint64(b[n:], cmd)
	copy(b[n+8:], data)
}

// AppendAccountMsg appends a FromClient or ToClient frame.
func AppendAccountMsg(dst []byte, kind Kind, account string, cmd uint64, data []byte) []byte {
	n := AccountMsgSize(account, len(data))
	start := len(dst)
	dst = grow(dst, n)
	PutAccountMsg(dst[start:], kind, account, cmd, data)
	return dst
}

// DecodeAccountMsg parses a FromClient/ToClient payload. account aliases p.
func DecodeAccountMsg(p []byte) (account []byte, cmd uint64, data []byte, err error) {
	account, rest, err := cutAccount(p)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(rest) < 8 {
		return nil, 0, nil, fmt.Errorf("%w: account message without cmd", common.ErrBadInput)
	}
	return account, binary.BigEndian.Uint64(rest), rest[8:], nil
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

// NodeMsg is a decoded node-to-node message; Data aliases the payload.
type NodeMsg struct {
	SrcType common.NodeType
	Src     common.NodeID
	Dst     common.NodeID
	Cmd     uint64
	Data    []byte
}

// NodeMsgSize is the frame size of a node message.
func NodeMsgSize(data int) int { return HeaderSize + nodeMsgHeader + data }

// AppendNodeMsg appends a node message frame.
func AppendNodeMsg(dst []byte, m *NodeMsg) []byte {
	dst = AppendHeader(dst, KindNodeMsg, nodeMsgHeader+len(m.Data))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.SrcType))
	dst = append(dst, m.Src[:]...)
	dst = append(dst, m.Dst[:]...)
	dst = binary.BigEndian.AppendUint64(dst, m.Cmd)
	return append(dst, m.Data...)
}

// DecodeNodeMsg parses a node message payload.
func DecodeNodeMsg(p []byte) (NodeMsg, error) {
	if len(p) < nodeMsgHeader {
		return NodeMsg{}, fmt.Errorf("%w: node message of %d bytes", common.ErrBadInput, len(p))
	}
	var m NodeMsg
	m.SrcType = common.NodeType(binary.BigEndian.Uint32(p))
	copy(m.Src[:], p[4:20])
	copy(m.Dst[:], p[20:36])
	m.Cmd = binary.BigEndian.Uint64(p[36:])
	m.Data = p[nodeMsgHeader:]
	return m, nil
}

// NodeMsgDst reads only the destination of a node message payload.
func NodeMsgDst(p []byte) (common.NodeID, bool) {
	var id common.NodeID
	if len(p) < nodeMsgHeader {
		return id, false
	}
	copy(id[:], p[20:36])
	return id, true
}

// AppendUndeliverable appends an undeliverable notice.
func AppendUndeliverable(dst []byte, to common.NodeID, cmd uint64, code uint16) []byte {
	dst = AppendHeader(dst, KindUndeliverable, 16+8+2)
	dst = append(dst, to[:]...)
	dst = binary.BigEndian.AppendUint64(dst, cmd)
	return binary.BigEndian.AppendUint16(dst, code)
}

// DecodeUndeliverable parses an undeliverable notice.
func DecodeUndeliverable(p []byte) (common.NodeID, uint64, uint16, error) {
	var id common.NodeID
	if len(p) != 26 {
		return id, 0, 0, fmt.Errorf("%w: undeliverable of %d bytes", common.ErrBadInput, len(p))
	}
	copy(id[:], p)
	return id, binary.BigEndian.Uint64(p[16:]), binary.BigEndian.Uint16(p[24:]), nil
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

// AppendAccount appends a frame of kind carrying only an account
// (LoseAccount, AccountOnline).
func AppendAccount(dst []byte, kind Kind, account string) []byte {
	dst = AppendHeader(dst, kind, 1+len(account))
	dst = append(dst, byte(len(account)))
	return append(dst, account...)
}

// DecodeAccount parses an account-only payload.
func DecodeAccount(p []byte) ([]byte, error) {
	a, rest, err := cutAccount(p)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after account", common.ErrBadInput)
	}
	return a, nil
}
