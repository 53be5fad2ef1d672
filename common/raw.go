package common

import "fmt"

// Raw is a proto.Message whose encoding is its own bytes. It lets a node
// forward or echo a payload it received without decoding it:
//
//	n.SendByID(id, cmd, (*common.Raw)(&data))
type Raw []byte

// Reset empties the message.
func (r *Raw) Reset() { *r = nil }

// String describes the message for logs.
func (r *Raw) String() string { return fmt.Sprintf("raw(%d bytes)", len(*r)) }

// ProtoMessage marks Raw as a protobuf message.
func (*Raw) ProtoMessage() {}

// Marshal returns the bytes themselves (no copy).
func (r *Raw) Marshal() ([]byte, error) { return *r, nil }

// Unmarshal keeps a copy of b.
func (r *Raw) Unmarshal(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}
