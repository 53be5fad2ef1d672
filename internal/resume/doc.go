// Package resume is the pure core of resumable sessions: the sequencing,
// acknowledgement and replay rules of client protocol version 2 for the
// three parties that take part in them.
//
//   - Inbound: a node's record of the client messages (by client sequence
//     number) it has processed, so that a message resent after a gateway
//     died is processed once.
//   - OutStream: a node's stream of messages to one account; every message
//     is kept until the client acknowledges it, so it can be sent again
//     after a lost connection or a dead gateway.
//   - NodeCore: everything a node tracks per account — the gateway holding
//     the session, the outbound stream, whether the account is bound to this
//     node (ownership) and the inbound window — as one state machine that
//     takes the relay link's events and "now" and returns the frames to send
//     and the callbacks to run.
//   - Session: the gateway's side of one session: the streams it delivers,
//     in order and exactly once, the client messages in flight, and the
//     acknowledgement it owes the client.
//   - Client: the player client's side: the messages it must keep until
//     acknowledged, the position of every stream, and when to acknowledge.
//
// Nothing here does IO, starts goroutines or reads the clock: callers pass
// time in and carry out the returned actions. None of the types is safe for
// concurrent use; the owner serialises calls.
package resume
