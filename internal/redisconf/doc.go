// Package redisconf turns command-line flags into a go-redis client.
//
// Config.RegisterFlags adds -redis, -redis-master, -redis-cluster,
// -redis-password and -redis-db to a flag.FlagSet; Config.Options checks
// the combination and builds *redis.UniversalOptions; Config.NewClient
// builds the client. Three deployments are supported:
//
//   - a single server: -redis host:port or -redis redis://user:pass@host:port/db
//     (rediss:// for TLS; URL query parameters such as dial_timeout=3s are
//     those of redis.ParseURL);
//   - Redis Cluster: -redis-cluster and a comma-separated list of seed nodes;
//   - Sentinel: -redis-master <name> and a comma-separated list of sentinel
//     addresses. As with go-redis's failover URLs, credentials in a
//     sentinel URL authenticate to the sentinels; -redis-password is the
//     master's password.
//
// Every validation error wraps ErrInvalid and starts with "redisconf:".
// Errors and Config.String never contain a password. The package has no
// state and starts no goroutines; pass the password through the
// environment (see internal/flagenv) rather than the command line.
package redisconf
