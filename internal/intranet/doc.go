// Package intranet holds what both ends of an intranet connection share:
// peer authentication by HMAC over a nonce, the error codes sent before a
// connection is closed, validation of a node's self-description, and
// Outbox, the bounded, coalescing send queue every connection writes
// through.
package intranet
