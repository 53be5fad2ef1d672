// Package client is a Go player client for an xserver cluster: bots, load
// generators, tools, and games with a Go client.
//
// Dial logs in at a gateway with the account and token from the game's
// login service and returns a Client. Send queues a message to the node
// type its cmd names (cmd / 1000 by default); Messages delivers what nodes
// send back, in order; Events tells what happens to the session.
//
// By default the session is resumable (client protocol version 2): when
// the connection is lost — a network change, the app in the background, a
// gateway that died or is draining — the Client reconnects on its own,
// with jittered, capped backoff, first to the same gateway and then to the
// one Config.Gateway names, and resumes the session. Every message in both
// directions is delivered exactly once and in order across the loss; the
// nodes only see "disconnected" and "resumed". If the session cannot be
// resumed (its window passed, messages were lost) the Client stops with a
// *KickError whose Code says why, and the game logs in again.
//
//	c, err := client.Dial(ctx, client.Config{Account: t.Account, Token: t.Token, Addr: t.Gateway})
//	if err != nil { ... }
//	defer c.Close()
//	_ = c.Send(ctx, 4001, []byte(`{"name":"ann"}`))
//	for m := range c.Messages() { ... }
//
// The protocol is specified in docs/PROTOCOL.md; this package is one
// implementation of it.
package client
