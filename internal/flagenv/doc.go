// Package flagenv fills a flag.FlagSet from the command line first, then
// from environment variables, then leaves the flag's default: a flag given
// on the command line wins over its variable, and a non-empty variable wins
// over the default.
//
// The variable for a flag is EnvName(prefix, name): the prefix and the
// flag name upper-cased, joined by "_", with every character that is not a
// letter or digit turned into "_" (prefix "XSERVER", flag "lease-ttl" ->
// XSERVER_LEASE_TTL).
//
// The package has no state; the environment is read through the getenv
// function the caller passes (os.Getenv in main, a map in tests).
package flagenv
