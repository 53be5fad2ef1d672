// Package demo is the orchestration behind examples/demo: which children
// to run, their prefixed output, stopping them (signal, bounded wait,
// kill), turning the mgrservers' /nodes documents into one readable
// membership line, and a scripted Player that logs in over HTTP and makes
// one round trip through a gateway.
//
// The planning and summary functions are pure. Output is safe for
// concurrent use (a mutex guards its writer); each Proc has one goroutine,
// owned by os/exec, copying its output, and Wait/Stop may be called from
// any goroutine. A Player is read-only while it plays; RoundTrip blocks on
// the network, bounded by its ctx.
package demo
