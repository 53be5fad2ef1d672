// Package admin is the small HTTP server every xserver binary runs for
// operators: GET /healthz answers 200 "ok" or 503 with the health error,
// GET /metrics serves a Prometheus registry, and binaries may add their
// own handlers (pprof, debug pages) with Handle. It serves at most
// MaxConns (64) connections at once (more wait until one closes), closes a
// keep-alive connection idle for 30 s, and bounds a request's headers to
// 10 s, a whole request to 10 s and a response to 30 s.
//
// Server uses a mutex for its lifecycle state and one goroutine for
// http.Server.Serve, started by Start and awaited by Close. Handle, Start
// and Close are safe for concurrent use; Close is safe to call twice.
package admin
