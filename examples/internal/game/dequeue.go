package game

// NodeDequeue is an addition to the node-to-node commands (lobby → match,
// a call: Ticket → Dequeued): the player left before being matched, so the match drops
// its ticket. The match removes it only when it is still the ticket of
// that account from that lobby (Ticket.Lobby), so a late dequeue from a
// lobby the player has moved away from does not cancel a newer ticket.
// Without it a player who disconnects while waiting is matched as a ghost.
const NodeDequeue uint64 = 12
