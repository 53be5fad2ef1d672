// Package gateway is xserver's data plane: the process players' clients
// connect to (TCP, or WebSocket carrying the same frames) and through which
// nodes reach clients and each other.
//
// A Gateway joins the cluster as a node of type common.Gateway, publishing
// its client address (port slots: 0 TCP, 1 WebSocket, 2 intranet) and its
// client count as overload 0, so login services send players to the least
// loaded gateway. Nodes with relay enabled dial its intranet listener and
// authenticate with the shared secret.
//
// A client's first frame is a login (account, token) checked against Redis
// (package login). Each later data frame carries a cmd whose quotient by
// the offset (1000 by default) names the target node type: an account bound
// to an instance of that type (a stateful type) goes there — rebound to a
// live instance if that one is gone — and other types go to an instance
// picked by the selector. The gateway routes on the frame header and never
// decodes payloads.
//
// When a session ends — disconnect, idle timeout, kick, drain — every node
// the account is bound to gets a lose-account notice, once; not when the
// session was replaced by a new login of the same account, on this gateway
// or another (gateways tell each other through a Redis channel).
//
// Concurrency: each connection (client or node link) has one reader
// goroutine and one writer goroutine draining a bounded outbox;
// producers never block on a peer's socket, and a client that cannot keep
// up is disconnected. The session and link tables are guarded by one
// RWMutex, read on the hot path.
package gateway
