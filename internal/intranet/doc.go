// Package intranet holds what both ends of an intranet connection share:
// peer authentication by HMAC over a nonce, the error codes sent before a
// connection is closed, validation of a node's self-description,
// Outbox, the bounded, coalescing send queue of data links, and CtlQueue,
// the control plane's two-lane queue (heartbeats ahead of events), written
// by a goroutine of its own or by a CtlPool shared by many connections.
package intranet
