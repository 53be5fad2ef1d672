// Package discovery is the pure core of server discovery: it keeps lists of
// servers, chooses among them and schedules resynchronisation, but it opens
// no sockets. Adapters elsewhere feed it membership events and do the IO
// (through the Pinger seam and the Sync and Broadcast callbacks).
//
// It has four pieces:
//
//   - Manager keeps the ordered server list a client talks to, after
//     Consul's client-side server manager. The head is the server in use
//     (FindServer); a failed head is rotated to the tail
//     (NotifyFailedServer); Run periodically shuffles the list and pings the
//     new head (RebalanceServers) so that clients spread over the servers,
//     at a delay that grows with the cluster size (RebalanceDelay). The list
//     is an immutable slice behind an atomic pointer: readers never lock,
//     writers lock, copy and publish, and a published slice is never
//     modified. Pings run with no lock held.
//
//   - Selector chooses one of a set of candidates by Mode: Random,
//     RoundRobin, LeastLoad or ConsistentHash (a ring of VirtualNodes points
//     per candidate). Update publishes an immutable snapshot (candidates
//     sorted by key, and the ring) through an atomic pointer; Get reads it
//     without locking; the round-robin position is an atomic counter that
//     survives Update; the random source sits behind a mutex.
//
//   - Broadcast runs a call for every item concurrently, returns the first
//     error and cancels the others' context on it. It waits for every call
//     and cancels its derived context before returning.
//
//   - SyncLoop runs a sync function the way mgo's syncServersLoop keeps its
//     topology fresh: sync, discard pending force requests, hold off for
//     MinGap, then wait for the next Interval or a Force; a failed or
//     partial sync is retried after the hold-off. Run is the only goroutine
//     that touches the loop's state; Force is a non-blocking send.
//
// The only goroutines this package starts are the callers' Run loops and
// the per-item goroutines of a Broadcast call. Randomness is injected
// (*rand.Rand) so tests can seed it, and the logrus logger is passed in
// through ManagerConfig, never taken from a global. Every blocking call
// takes a context.
package discovery
