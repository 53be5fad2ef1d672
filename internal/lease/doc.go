// Package lease holds the Redis side of mgrserver leadership: key names,
// the published leader record and the Lua scripts that acquire, renew and
// release the lease. The mgrserver campaigns with it; nodes and gateways
// read the record to find the leader.
//
// Keys carry the cluster name in a hash tag, so on Redis Cluster both keys
// of one cluster live in one slot and scripts may touch them together:
//
//	xserver:{<cluster>}:leader   "<epoch> <addr> <token>", PX = lease TTL
//	xserver:{<cluster>}:epoch    counter, INCR on every acquisition
package lease
