// Package service is what the main package of a cluster process needs
// around the framework: the game's own services (a lobby, a match maker, a
// login service) as much as the shipped mgrserver and gateway binaries,
// which are built on it too. Everything here is optional plumbing; package
// node alone is enough to join a cluster.
//
//   - Flags and environment: Parse fills a flag.FlagSet from the command
//     line, then from XSERVER_<FLAG> variables (EnvName), then leaves the
//     default, and -h lists every flag with its variable.
//   - The flags every process of a cluster shares: Common registers
//     -cluster, -secret, -log-level, -log-format, the -redis flags and the
//     intranet TLS flags; Common.Check validates them, Common.Logger builds
//     the logrus logger, Common.RedisClient the Redis client and
//     Common.NodeConfig a node.Config carrying all of it.
//   - Redis: RedisConfig reaches one server (-redis host:port, or
//     redis://user:pass@host:port/db, rediss:// for TLS), Redis Cluster
//     (-redis-cluster and a comma list of seed nodes) or Sentinel
//     (-redis-master <name> and a comma list of sentinels; credentials in a
//     sentinel URL authenticate to the sentinels, -redis-password is the
//     master's). Errors and RedisConfig.String never contain a password.
//     A Cluster client reloads the slot map every second while in use and
//     at once after a network failure or CLUSTERDOWN, so it follows a
//     master failover about a second after the promotion (go-redis alone
//     can take a minute).
//   - TLS: Common.DialTLS for the intranet connections a process dials,
//     TLSPair for a listener's certificate and key.
//   - Life cycle: SignalContext is cancelled by SIGINT or SIGTERM; Run
//     parses, builds the logger, serves until the context ends and turns
//     the outcome into an exit status (Exit: 0 ok or -h, 1 runtime failure,
//     2 bad configuration, reported as a UsageError).
//
// The admin HTTP server (/healthz, /metrics) is package admin.
//
// Only main packages should call NewRedisClient (it sets go-redis's
// process-wide logger) and SignalContext (it installs signal handlers).
// The package itself has no state and starts no goroutines.
package service
