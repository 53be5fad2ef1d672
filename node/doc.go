// Package node is the INode a game service embeds: it finds the mgrserver
// leader through Redis, registers, keeps a live view of every cluster
// member and (with relay enabled) exchanges messages through gateways.
//
// Membership: New builds a node, Start connects in the background and
// returns, Close leaves gracefully. The node reads the leader record from
// Redis with jittered, bounded backoff, authenticates with the shared
// secret, registers and builds its view from the leader's snapshot plus
// join / leave / update events. It never follows a leader whose epoch is
// lower than one it has seen. When the leader goes away it keeps its view,
// goes back to Redis and re-registers with the next leader; a complete
// snapshot then removes the members that are gone (leave callbacks fire for
// those only), a partial one removes nothing. A periodic full resync, and a
// forced one on a sequence gap, guard against lost events.
//
// Concurrency: one goroutine owns the connection to the mgrserver (plus a
// writer and a heartbeat goroutine per connection); the member view and the
// indexes readers use are guarded by one mutex, held only for map work.
// Callbacks run on a single dispatcher goroutine, in event order, never
// under a lock; a slow callback delays later callbacks, not the node.
package node
