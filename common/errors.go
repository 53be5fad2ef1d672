package common

import "errors"

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
