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
// Players: with relay enabled the node links to every gateway. A message
// to a player (SendClientMsgByRelay) only queues: the node keeps it until
// the player's client acknowledges it and sends it again after a lost
// link, a dead gateway or a resume, so a player with a resumable session
// gets every message exactly once, in order. The gateway holding the
// player's session is learned from the player's traffic, or looked up in
// Redis by background workers: no send ever waits on Redis. A message that
// turns out undeliverable (the player is offline, or its session ended
// first) is reported to RegisterFuncOnUndeliverable. A player found
// offline is remembered (Config.OfflineCache) while the node is subscribed
// to the gateways' login announcements, so further messages to it cost no
// Redis lookup; its login, or any doubt about the subscription, forgets it
// (see OfflineCache and Metrics). A client message resent after a gateway
// died is recognised and handed over once.
//
// Nodes: SendOne, SendByType, SendByID and SendAll send one-way messages
// through a gateway. Each carries a time to live (Config.MessageTTL): the
// gateway never delivers it later, and a message a gateway did not forward
// in time (a frozen gateway) or that it refused is reported to
// RegisterFuncOnUndeliverable and counted (Undeliverable). Call, CallOne,
// CallByKey and BroadcastCall are request/response: the caller's deadline
// and cancellation travel with the call to the callee's handler
// (RegisterFuncOnCall), and the errors are typed.
//
// Groups: JoinGroup and LeaveGroup put an account's session in or out of a
// named group (a room, a channel, a guild), and BroadcastGroup sends one
// message to every member's client, cluster-wide, crossing each gateway
// once. A membership lasts as long as the session: it is kept while the
// client is away, follows it to another gateway, carries over to a new
// login of the account and ends with the session. GroupMembers lists a
// group. A group broadcast is delivered like BroadcastClientMsg: replayed
// after a lost connection on the same gateway; after a resume elsewhere,
// broadcasts sent meanwhile may be missing, and the client is told so; a
// client too slow to read loses some and is told how many.
//
// Ownership: an account bound to this node (a stateful type) is owned here
// from its login or rebind until lose-account, which fires exactly once per
// ownership — when the session ends, when the account is rebound to another
// instance (a push sent as owner is then refused), or when the gateway
// holding it went away and no resume came within the session's window.
// While the client is away and may resume, RegisterFuncOnDisconnect's
// callback fires, and RegisterFuncOnResume's when it is back.
//
// Callbacks and their goroutines:
//
//   - join / leave / update: the node's dispatcher goroutine, one at a
//     time, in event order, never under a lock.
//   - relayed messages (RegisterFuncOnRelayMsg), lose-account, disconnect,
//     resume and undeliverable: one of the relay's lanes. A player's
//     messages and session callbacks run on the lane of their account, in
//     order (lose-account after the last message of the session); a node's
//     messages on the lane of the node that sent them, in its order.
//     Different lanes run concurrently (16 lanes). A player's message that
//     is the last one read from its gateway link, with its lane idle, runs
//     on the link's reader goroutine instead, in the same order: handing
//     it to another goroutine would cost a thread wake-up per message at
//     light load. If such a handler runs longer than about a millisecond,
//     or makes a Call or GroupMembers, the link's reading moves to a new
//     goroutine at once, so the link keeps reading pings, acknowledgements
//     and the Call's reply; a handler may block as it could on a lane.
//   - calls (RegisterFuncOnCall): a goroutine of their own per call.
//
// Keep callbacks quick or hand work off: a slow handler delays the later
// callbacks of its lane. When 8,192 callbacks wait, the gateway links stop
// reading until they have run, so the backpressure reaches the gateways and
// the players rather than the node's memory; a Call made from a handler
// then waits for its reply as long as that takes, at most its deadline.
//
// Concurrency: one goroutine owns the connection to the mgrserver (plus a
// writer and a heartbeat goroutine per connection); the member view and the
// indexes readers use are guarded by one mutex, held only for map work.
// The players' state (resume.NodeCore) is guarded by the relay's mutex,
// which is also held while frames are queued to the links, so one
// player's messages keep their order.
package node
