// Package mgrserver is xserver's control plane: the server every node and
// gateway registers with, and that tells each of them who else is in the
// cluster.
//
// Several mgrservers may run; the one holding a Redis lease leads (SET NX
// PX with a random token and an epoch from INCR, renewed every TTL/3,
// released on a graceful stop). Standbys poll the lease and take over when
// it lapses. A leader that loses the lease steps down
// at once; one that cannot reach Redis keeps serving for Config.RedisGrace
// beyond the TTL (no other mgrserver can take the lease while Redis is
// unreachable), then steps down.
//
// The leader authenticates each connection (HMAC over a nonce with the
// shared secret), takes the node's registration, sends it a snapshot of the
// members and every other member a join; it broadcasts updates and leaves,
// and exchanges pings both ways. Snapshots sent within the settle window
// after a leader takes over are partial (nodes add but never remove from
// them); at the end of the window every node gets a complete one.
//
// Concurrency: Server's membership and leadership state is guarded by one
// mutex; each connection has a reader goroutine and a writer goroutine
// draining its outbox, so broadcasting never blocks on a slow
// peer. Start launches the accept, campaign and heartbeat loops; Close stops
// them and waits.
package mgrserver
