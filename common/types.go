package common

import (
	"fmt"

	uuid "github.com/satori/go.uuid"
)

// NodeID identifies a node for its whole life (a random UUID by default).
// A node restarted with the same ID replaces its former session.
type NodeID uuid.UUID

// NewNodeID returns a random (version 4) NodeID.
func NewNodeID() NodeID { return NodeID(uuid.NewV4()) }

// ParseNodeID parses the canonical textual form of a UUID.
func ParseNodeID(s string) (NodeID, error) {
	u, err := uuid.FromString(s)
	if err != nil {
		return NodeID{}, fmt.Errorf("common: node id %q: %w", s, err)
	}
	return NodeID(u), nil
}

// NodeIDFromBytes converts the 16-byte wire form.
func NodeIDFromBytes(b []byte) (NodeID, error) {
	if len(b) != 16 {
		return NodeID{}, fmt.Errorf("%w: node id of %d bytes", ErrBadInput, len(b))
	}
	var id NodeID
	copy(id[:], b)
	return id, nil
}

// String returns the canonical textual form.
func (id NodeID) String() string { return uuid.UUID(id).String() }

// Bytes returns the 16-byte wire form (a fresh slice).
func (id NodeID) Bytes() []byte { b := id; return b[:] }

// IsZero reports whether id is the zero UUID.
func (id NodeID) IsZero() bool { return id == NodeID{} }

// MarshalText makes NodeID print as a UUID in JSON and logs.
func (id NodeID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the textual form, so JSON documents round-trip.
func (id *NodeID) UnmarshalText(b []byte) error {
	v, err := ParseNodeID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// NodeType is a small integer naming what a node does. 0–3 are reserved for
// the framework; game services use FirstGameType and above.
type NodeType uint32

// Reserved node types.
const (
	Client    NodeType = 0 // a player's client (source of relayed messages)
	MgrServer NodeType = 1 // the control-plane server
	Login     NodeType = 2 // a login service
	Gateway   NodeType = 3 // a gateway relaying client and node messages
	// FirstGameType is the first type free for game services.
	FirstGameType NodeType = 4
)

// String names reserved types and prints others as numbers.
func (t NodeType) String() string {
	switch t {
	case Client:
		return "client"
	case MgrServer:
		return "mgrserver"
	case Login:
		return "login"
	case Gateway:
		return "gateway"
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// IPType selects one of a node's addresses.
type IPType int

// Address slots of a node.
const (
	IPInner IPType = 0 // intranet address, used between cluster members
	IPOuter IPType = 1 // address clients reach (gateways)
)
