package common

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors shared by xserver packages. Callers test with errors.Is;
// packages wrap them with detail.
var (
	// ErrBadInput: a peer sent something malformed or out of bounds.
	ErrBadInput = errors.New("xserver: bad input")
	// ErrClosed: the object was closed.
	ErrClosed = errors.New("xserver: closed")
	// ErrNoNode: no member matches the request.
	ErrNoNode = errors.New("xserver: no such node")
	// ErrNoGateway: no gateway is reachable to relay a message.
	ErrNoGateway = errors.New("xserver: no gateway available")
	// ErrRelayDisabled: message relay was not enabled on this node.
	ErrRelayDisabled = errors.New("xserver: message relay not enabled")
	// ErrNotConnected: the peer's connection is down.
	ErrNotConnected = errors.New("xserver: not connected")
	// ErrQueueFull: a bounded buffer has no room for the message.
	ErrQueueFull = errors.New("xserver: queue full")
)

// Errors of calls and node messages (INode's Call, CallOne, CallByKey,
// BroadcastCall and SendNodeMsg).
var (
	// ErrUndeliverable: the message or call did not reach its node (not
	// linked to the gateway, its queue full, or too late). The wrapped text
	// says which.
	ErrUndeliverable = errors.New("node: undeliverable")
	// ErrTimeout: the call's deadline passed without a reply. It also
	// matches context.DeadlineExceeded (errors.Is).
	ErrTimeout = fmt.Errorf("node: call timed out: %w", context.DeadlineExceeded)
	// ErrNoHandler: the called node registered no call handler.
	ErrNoHandler = errors.New("node: no call handler")
)

// Remote error codes a called node answers with (RemoteError.Code).
const (
	CodeApp       uint16 = 1 // the handler returned an error
	CodeNoHandler uint16 = 2 // no handler registered
	CodeBusy      uint16 = 3 // too many calls running on the callee
	CodeLate      uint16 = 4 // the deadline passed at the callee, before or while the handler ran: the caller gets ErrTimeout
)

// RemoteError is the error a called node answered with. A call handler
// returns one to choose the code its caller sees; any other error arrives
// as CodeApp with the error's text.
type RemoteError struct {
	Code    uint16
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("node: the called node answered with an error (code %d): %s", e.Code, e.Message)
}

// Is makes a RemoteError with CodeNoHandler match ErrNoHandler.
func (e *RemoteError) Is(target error) bool {
	return target == ErrNoHandler && e.Code == CodeNoHandler
}
