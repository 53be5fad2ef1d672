// Package scenarios holds the tests that run xserver's binaries as
// separate processes — redis-server, mgrserver, gateways, the example
// login service, lobby and bots — and check what an operator and a player
// would see: resumes under connection cuts and a gateway's death, with the
// bots counting every lost or duplicated message end to end.
package scenarios
