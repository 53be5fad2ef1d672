// Package demo is the orchestration behind examples/demo: which children
// to run (Plan, Bots), starting and stopping them (signal, bounded wait,
// kill), what the demo prints (Trace: every child line to the log, a few
// curated into one-line events; Tracker: membership changes from the
// mgrservers' /nodes documents; Summary: one membership line), and
// scripted players of the example game (Player, RoundTrip) that log in
// over HTTP, enter their lobbies through a gateway and chat.
//
// Plan, Summary, Reached, Curate and ParseLine are pure; a Tracker is pure
// and owned by one goroutine. Output and Trace are safe for concurrent use
// (a mutex guards their writers and what Trace learns); each Proc has one
// goroutine, owned by os/exec, copying its output, and Wait/Stop may be
// called from any goroutine. A Player is used by one goroutine at a time;
// its calls block on the network, bounded by their ctx.
package demo
