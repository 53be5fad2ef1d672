// Package embedredis runs an in-process Redis (miniredis) so the demo
// binaries work out of the box without a redis-server.
//
// It is for demos only: miniredis keeps everything in memory, implements a
// subset of commands and runs Lua through gopher-lua. miniredis counts TTLs
// down only when told to; Server advances them from the wall clock every
// 20 ms, so expiry is approximate rather than Redis's exact semantics. Production
// deployments and tests that exercise Redis behaviour use a real server
// (package service builds a client for one from flags).
//
// Close is safe to call twice and from any goroutine.
package embedredis
