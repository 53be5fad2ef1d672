// Package cli is the plumbing the xserver binaries share (cmd/mgrserver,
// cmd/gateway, examples): flag parsing with XSERVER_<FLAG> environment
// variables, the flags every cluster process takes (-cluster, -secret,
// -log-level, -log-format and the -redis flags), a logrus logger built from
// them, a go-redis client whose internal logging goes to that logger, a
// context cancelled by SIGINT / SIGTERM, and the mapping from errors to exit
// statuses (0 ok or -h, 1 runtime failure, 2 bad configuration).
//
// Only main packages should use it: NewRedisClient sets go-redis's
// process-wide logger and SignalContext installs signal handlers. The
// package itself has no state.
package cli
