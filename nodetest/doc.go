// Package nodetest is an in-memory xserver cluster for unit tests of a
// game service: several nodes, a gateway and fake players, with no Redis,
// no sockets and no goroutines of its own. Everything happens on the
// test's goroutine, in an order fixed by the test, and time moves only
// when the test moves it.
//
// Write the service against common.INode (the interface package node's
// Node implements) and give it a node of the test cluster instead:
//
//	c, err := nodetest.New(nodetest.Config{Stateful: []common.NodeType{lobbyType}})
//	n := c.AddNode(lobbyType)       // a *nodetest.Node: a common.INode
//	lobby := mygame.NewLobby(n)     // your service registers its callbacks
//	err = n.Start(ctx)
//	alice := c.NewPlayer("alice")
//	err = alice.Login()             // bound to n, as the login service would
//	err = alice.Send(4001, []byte(`{"name":"Alice"}`))
//	c.Run()                         // your handler runs, its replies reach alice
//	m, ok := alice.Next()
//	if err := c.Err(); err != nil { // a message loop that never ended, for one
//		t.Fatal(err)
//	}
//
// # What runs when
//
// Every message — a player's to a node, a node's to a player or to
// another node, a membership change, a session change — goes into one
// queue, in the order it was sent. Nothing is delivered until the test
// calls Run (until the queue is empty), Step (one event) or Advance
// (move the clock; timers fire). Every callback of every node (relay,
// join/leave/update, lose-account, disconnect, resume, undeliverable,
// call) runs on the goroutine calling Run, Step or Advance, never under a
// lock of the cluster, so a callback may call any method of any node.
// Node and player methods are safe to call from any goroutine; sends
// only queue.
//
// A real node runs its callbacks on several goroutines: the relay,
// session and undeliverable callbacks on its gateway link's, one at a
// time; the membership callbacks on its dispatcher's; each call handler
// on its own. Keep the locks your service needs for that: the tests here
// cannot show a missing one. The cluster keeps what matters for order:
// while a callback waits (in a Call), the other callbacks of its
// goroutine wait too.
//
// Calls (Call, CallOne, CallByKey, BroadcastCall) wait by running the
// queue themselves until their answers are in, so the callee's handler
// runs meanwhile, on the same goroutine, and everything queued before the
// call is handled first. They time out only by their ctx (on the wall
// clock). A call may be made from any callback: a relay handler that
// asks another node before it answers its player works here as on a
// real node, which reads replies while its callbacks run.
//
// Time: the cluster has its own clock (Now, starting at Config.Start)
// and timers (AfterFunc). Resume windows and binding affinity run on it,
// and a service that takes a clock (Now and AfterFunc) runs its timers on
// it too. Advance moves it; Run never does. Seeded randomness (node IDs,
// random selection, the login's choice among equally loaded instances)
// makes a test give the same result every run.
//
// # What it reproduces
//
// Membership: Start registers a node; its member list is filled at once
// and its join callbacks run for every member already there (the gateway
// included), while the others learn of it as the queue runs. SetOverload
// and SetVersion reach the others as updates. Close (a leave) and
// KillNode (a crash) both make the others' leave callbacks run, and the
// node's own callbacks never run again. GetNodeOne, GetNodeByKey and the
// member lists behave as package node's (the same consistent-hash ring).
//
// Players: Player.Login binds the account to the least-loaded instance
// of every stateful type (Config.Stateful), keeping live bindings within
// the affinity window, and kicks an older login of the account. A
// player's cmd goes to type cmd / Config.Offset, which receives
// cmd − type × Offset: a stateful type to the bound instance (rebound to
// the least-loaded linked one when that instance is gone), a stateless
// type to its instances in turn; no instance gives the player an error
// message, a reserved type a kick. Player.Disconnect leaves the session
// waiting for Player.Resume: the bound nodes' disconnect callbacks run,
// messages to the player wait and arrive, in order, on resume, and the
// resume callbacks run; after Config.ResumeWindow (moved past with
// Advance) the session ends instead. A session ends on Logout, a node's
// Kick, a second login or the window passing; the nodes it was bound to
// then get their lose-account callback, exactly once per time the account
// was bound to them, and never for a session that resumed.
//
// Messages: node-to-node sends reach the destination's relay handler with
// the sender as a member of the destination's list (so replying with
// from.SendMsg works); one to a node gone or unlinked by then is
// reported to the sender's undeliverable handler, and so is one to a
// player without a session, or whose session ends before it got it.
// Messages from one sender keep their order. BroadcastClientMsg reaches
// every player with a session. Groups: JoinGroup and LeaveGroup change
// the membership of the account's session (kept while away, carried to a
// new login of the account, gone when the session ends), BroadcastGroup
// reaches the members (KindGroup), GroupMembers and Cluster.Members list
// them.
//
// Not modelled: the control plane and Redis (their failures are the
// framework's to test, not a game's), several gateways, idle timeouts,
// buffer limits, protocol versions and wire encoding. A node whose relay
// is turned off stops sending and receiving; turned on again, it hears
// which of its accounts it lost meanwhile.
package nodetest
