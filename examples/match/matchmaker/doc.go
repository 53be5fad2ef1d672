// Package matchmaker is the example game's matchmaking (examples/match):
// Queue, a pure FIFO matchmaker per game mode, and Service, which runs it
// on a node of type game.MatchType.
//
// Lobbies call the match with a game.Ticket per player (game.NodeEnqueue,
// answered with game.Enqueued); as soon as two players wait in one mode
// they are paired and the match gets an ID ("m-<node>-<n>"). The player
// whose ticket completed the pair learns it in the reply to its call; the
// player who waited learns it through a call to its lobby
// (game.NodeMatched, Call to Ticket.Lobby), which fails when that player
// left meanwhile (counted, logged). A ticket of an account already waiting
// is ignored, so queueing twice is a no-op. A lobby that leaves the
// cluster takes its tickets with it, and a lobby withdraws the ticket of a
// player who logs out (game.NodeDequeue, answered with game.Dequeued).
//
// # Several match instances
//
// The match is stateless for the framework (no binding), but a queue is
// state: two tickets pair only if they reach the same instance. With
// CallOne (the node's selector: random or round-robin) tickets would
// spread over the instances and two players of one mode could wait forever
// in different ones. The example lobby therefore calls
// CallByKey(game.MatchType, mode, …) — consistent hashing by mode: every
// lobby has the same member list, so all tickets of a mode meet at one
// instance, and modes spread over instances.
//
// What remains: while the membership changes (a match instance joins or
// leaves) lobbies briefly disagree and the ring moves some modes, so a
// player waiting at the old owner and one sent to the new owner do not
// meet; tickets waiting at an instance that crashes are lost until their
// players queue again. A production matchmaker hands queued tickets of the
// modes it no longer owns to their new owner on every ring change (or
// keeps the queues in Redis, or has lobbies re-send waiting tickets
// periodically), and pairs by rating and latency rather than FIFO. The
// demo runs one match instance.
//
// Concurrency: Queue is not safe for concurrent use; Service guards its
// Queue with a mutex (relay callbacks run on every gateway link's
// goroutine, membership callbacks on the node's dispatcher) and sends after
// releasing it.
package matchmaker
