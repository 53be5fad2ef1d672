// Package mgrserver is xserver's control plane: the server every node and
// gateway registers with, and that tells each of them who else is in the
// cluster.
//
// Several mgrservers may run; the one holding a Redis lease leads (SET NX
// PX with a random token and an epoch from INCR, renewed every TTL/3,
// released on a graceful stop). Standbys poll the lease and take over when
// it lapses. A leader that loses the lease steps down at once.
//
// A leader serves (accepts registrations, sends membership changes) only
// while its lease is provably valid: less than the TTL, minus a margin,
// has passed on its own monotonic clock since it sent the last renewal
// Redis confirmed. A leader that cannot reach Redis, or that wakes from a
// pause, stops serving at that point but keeps its connections for
// Config.RedisGrace beyond the TTL, so a short Redis outage does not make
// every node reconnect; then it steps down. Redis being unreachable from
// the leader does not mean it is unreachable from the others: in a
// one-sided partition a standby takes the lease after the TTL, and for up
// to RedisGrace two mgrservers believe they lead. What keeps the cluster
// consistent is epoch fencing: every leader has a higher epoch than the
// one before; a node re-reads the leader record about every second, and
// once it has seen a newer epoch it never applies anything from an older
// leader again and registers with the newer one. The old leader, whose
// lease is no longer provably valid by then, sends nothing meanwhile.
//
// The leader authenticates each connection (HMAC over a nonce with the
// shared secret), takes the node's registration, sends it a snapshot of the
// members and every other member a join; it broadcasts updates and leaves,
// and exchanges pings both ways. Snapshots sent within the settle window
// after a leader takes over are partial (nodes add but never remove from
// them); at the end of the window every node gets a complete one.
//
// Concurrency: Server's membership and leadership state is guarded by one
// mutex. Each connection has a reader goroutine and a send queue
// (intranet.CtlQueue). Plain-TCP queues are written by the server's write
// pool (intranet.CtlPool: one worker per core, non-blocking writes,
// heartbeats and Hellos first, then newcomers' first snapshots, then event
// batches; a full socket gets a goroutine of its own until it drains);
// TLS connections keep a writer goroutine each. Either way broadcasting
// never blocks on a slow peer, and a flush to thousands of members does
// not make thousands of goroutines runnable. Start launches the accept,
// campaign, heartbeat and flush loops and the pool; Close stops them and
// waits.
package mgrserver
