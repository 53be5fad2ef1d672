// Package bot is the engine behind examples/bot: a swarm of scripted
// players for smoke and load tests of the example game.
//
// Each bot logs in over HTTP at the login service, connects to the gateway
// its ticket names over TCP, presents the login frame, enters the lobby
// (game.CmdEnter), then world-chats every Config.ChatEvery and, once,
// queues for a match, while reading the lobby's pushes. Everything it sees
// goes into a Stats.
//
// The pure parts are Histogram (bounded-memory latency quantiles),
// Summary and its formatting, and Decode, which turns one gateway frame
// into an Event. Stats is a mutex-guarded set of counters, safe for
// concurrent use. Run owns the sockets: one goroutine per bot owns that
// bot's state and does its writes; a second goroutine per bot reads its
// frames and hands them over on a channel. Run blocks until every bot has
// stopped and its goroutines have returned.
package bot
