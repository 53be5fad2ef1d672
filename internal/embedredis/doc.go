// Package embedredis runs an in-process Redis (miniredis) so the demo
// binaries work out of the box without a redis-server.
//
// It is for demos only: miniredis keeps everything in memory, implements a
// subset of commands, runs Lua through gopher-lua, and lets keys expire by
// the wall clock rather than with Redis's exact semantics. Production
// deployments and tests that exercise Redis behaviour use a real server
// (see internal/redistest and internal/redisconf).
//
// Close is safe to call twice and from any goroutine.
package embedredis
