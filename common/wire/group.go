package wire

import (
	"encoding/binary"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/xserver/xserver/common"
)

// Group kinds on the relay link (node → gateway, and the members answer
// back). A group is a named set of accounts; each gateway keeps the
// memberships of the sessions it holds, so a group broadcast crosses each
// gateway once and the gateway fans it out. Layouts (big-endian):
//
//	GroupJoin:      u8 glen | group | u8 alen | account
//	GroupLeave:     u8 glen | group | u8 alen | account
//	GroupBroadcast: u8 glen | group | u64 cmd | data
//	GroupQuery:     u64 id | u8 glen | group
//	GroupMembers:   u64 id | u8 flags | u16 n | n × (u8 alen | account)
const (
	KindGroupJoin      Kind = 60 // N→G: add an account's session here to a group
	KindGroupLeave     Kind = 61 // N→G: remove it
	KindGroupBroadcast Kind = 62 // N→G: to every member held by this gateway
	KindGroupQuery     Kind = 63 // N→G: which of the group's members does this gateway hold?
	KindGroupMembers   Kind = 64 // G→N: one part of the answer to a GroupQuery
)

// KindClientShed (G→C, exactly 10 bytes: u16 stream | u32 through | u32
// count) tells a client that count broadcast or group messages meant for
// it were dropped because it did not read fast enough; on stream 0 of a
// version 2 session every broadcast through seq `through` is settled.
const KindClientShed Kind = 117

// MaxGroup is the longest group name, in bytes.
const MaxGroup = 64

// GroupMembersLast marks the last part of a GroupMembers answer.
const GroupMembersLast = 1

// MaxMembersPart is the most accounts one GroupMembers frame lists.
const MaxMembersPart = 4096

// ValidGroup checks a group name: 1–MaxGroup bytes of printable UTF-8.
func ValidGroup(g string) error {
	if len(g) == 0 || len(g) > MaxGroup || !utf8.ValidString(g) {
		return fmt.Errorf("%w: group name of %d bytes", common.ErrBadInput, len(g))
	}
	for _, r := range g {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: group name %q has a non-printable character", common.ErrBadInput, g)
		}
	}
	return nil
}

func cutGroup(p []byte) ([]byte, []byte, error) {
	if len(p) < 1 {
		return nil, nil, fmt.Errorf("%w: missing group", common.ErrBadInput)
	}
	n := int(p[0])
	if n == 0 || n > MaxGroup || len(p) < 1+n {
		return nil, nil, fmt.Errorf("%w: group length %d", common.ErrBadInput, n)
	}
	if err := ValidGroup(string(p[1 : 1+n])); err != nil {
		return nil, nil, err
	}
	return p[1 : 1+n], p[1+n:], nil
}

// AppendGroupMember appends a GroupJoin or GroupLeave frame.
func AppendGroupMember(dst []byte, kind Kind, group, account string) []byte {
	dst = AppendHeader(dst, kind, 1+len(group)+1+len(account))
	dst = append(dst, byte(len(group)))
	dst = append(dst, group...)
	dst = append(dst, byte(len(account)))
	return append(dst, account...)
}

// DecodeGroupMember parses a GroupJoin or GroupLeave payload; the slices
// alias p.
func DecodeGroupMember(p []byte) (group, account []byte, err error) {
	group, rest, err := cutGroup(p)
	if err != nil {
		return nil, nil, err
	}
	account, rest, err = cutAccount(rest)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: trailing bytes after group member", common.ErrBadInput)
	}
	return group, account, nil
}

// AppendGroupBroadcast appends a GroupBroadcast frame.
func AppendGroupBroadcast(dst []byte, group string, cmd uint64, data []byte) []byte {
	dst = AppendHeader(dst, KindGroupBroadcast, 1+len(group)+8+len(data))
	dst = append(dst, byte(len(group)))
	dst = append(dst, group...)
	dst = binary.BigEndian.AppendUint64(dst, cmd)
	return append(dst, data...)
}

// DecodeGroupBroadcast parses a GroupBroadcast payload; group and data
// alias p.
func DecodeGroupBroadcast(p []byte) (group []byte, cmd uint64, data []byte, err error) {
	group, rest, err := cutGroup(p)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(rest) < 8 {
		return nil, 0, nil, fmt.Errorf("%w: group broadcast without cmd", common.ErrBadInput)
	}
	return group, binary.BigEndian.Uint64(rest), rest[8:], nil
}

// AppendGroupQuery appends a GroupQuery frame.
func AppendGroupQuery(dst []byte, id uint64, group string) []byte {
	dst = AppendHeader(dst, KindGroupQuery, 8+1+len(group))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, byte(len(group)))
	return append(dst, group...)
}

// DecodeGroupQuery parses a GroupQuery payload; group aliases p.
func DecodeGroupQuery(p []byte) (id uint64, group []byte, err error) {
	if len(p) < 8 {
		return 0, nil, fmt.Errorf("%w: group query of %d bytes", common.ErrBadInput, len(p))
	}
	group, rest, err := cutGroup(p[8:])
	if err != nil {
		return 0, nil, err
	}
	if len(rest) != 0 {
		return 0, nil, fmt.Errorf("%w: trailing bytes after group query", common.ErrBadInput)
	}
	return binary.BigEndian.Uint64(p), group, nil
}

// AppendGroupMembers appends one GroupMembers frame listing accounts (at
// most MaxMembersPart).
func AppendGroupMembers(dst []byte, id uint64, last bool, accounts []string) []byte {
	n := 8 + 1 + 2
	for _, a := range accounts {
		n += 1 + len(a)
	}
	dst = AppendHeader(dst, KindGroupMembers, n)
	dst = binary.BigEndian.AppendUint64(dst, id)
	var flags byte
	if last {
		flags = GroupMembersLast
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(accounts)))
	for _, a := range accounts {
		dst = append(dst, byte(len(a)))
		dst = append(dst, a...)
	}
	return dst
}

// DecodeGroupMembers parses a GroupMembers payload, appending the accounts
// (copied) to dst.
func DecodeGroupMembers(dst []string, p []byte) (id uint64, last bool, accounts []string, err error) {
	if len(p) < 11 {
		return 0, false, dst, fmt.Errorf("%w: group members of %d bytes", common.ErrBadInput, len(p))
	}
	id, flags := binary.BigEndian.Uint64(p), p[8]
	if flags&^GroupMembersLast != 0 {
		return 0, false, dst, fmt.Errorf("%w: group members flags %#x", common.ErrBadInput, flags)
	}
	n := int(binary.BigEndian.Uint16(p[9:]))
	if n > MaxMembersPart {
		return 0, false, dst, fmt.Errorf("%w: %d members in one part", common.ErrBadInput, n)
	}
	rest := p[11:]
	for i := 0; i < n; i++ {
		var a []byte
		if a, rest, err = cutAccount(rest); err != nil {
			return 0, false, dst, err
		}
		dst = append(dst, string(a))
	}
	if len(rest) != 0 {
		return 0, false, dst, fmt.Errorf("%w: trailing bytes after group members", common.ErrBadInput)
	}
	return id, flags&GroupMembersLast != 0, dst, nil
}

// Shed is a decoded ClientShed notice.
type Shed struct {
	Stream  uint16
	Through uint32 // stream 0 of a version 2 session: the broadcasts through this seq are settled (0: version 1)
	Count   uint32 // messages dropped since the previous notice
}

// AppendShed appends a ClientShed frame.
func AppendShed(dst []byte, s Shed) []byte {
	dst = AppendHeader(dst, KindClientShed, 10)
	dst = binary.BigEndian.AppendUint16(dst, s.Stream)
	dst = binary.BigEndian.AppendUint32(dst, s.Through)
	return binary.BigEndian.AppendUint32(dst, s.Count)
}

// DecodeShed parses a ClientShed payload.
func DecodeShed(p []byte) (Shed, error) {
	if len(p) != 10 {
		return Shed{}, fmt.Errorf("%w: shed notice of %d bytes", common.ErrBadInput, len(p))
	}
	return Shed{Stream: binary.BigEndian.Uint16(p), Through: binary.BigEndian.Uint32(p[2:]), Count: binary.BigEndian.Uint32(p[6:])}, nil
}
