// Package demo is the orchestration behind examples/demo: which children
// to run, their prefixed output, stopping them (signal, bounded wait,
// kill), and turning the mgrservers' /nodes documents into one readable
// membership line.
//
// The planning and summary functions are pure. Output is safe for
// concurrent use (a mutex guards its writer); each Proc has one goroutine,
// owned by os/exec, copying its output, and Wait/Stop may be called from
// any goroutine.
package demo
