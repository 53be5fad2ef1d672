// Package login is the framework's side of logging a player in: the
// login service's half (check, pick a gateway, bind, issue a token) and
// the Redis half of the gateway's check of a client's first frame.
//
// A game's own login service builds a Service and calls Login for every
// player that presents an account and a credential. Login checks the
// credential with the game's Checker, picks the least-loaded gateway, binds
// the account to one live instance of every stateful node type, stores a
// short-lived token in Redis and returns a Ticket: gateway address, token and
// bindings. The client dials the gateway and presents account + token in its
// first frame; the gateway calls VerifyToken and LoadBindings, and later
// Rebind (when a bound instance is gone) and TouchBindings (while the
// session lives and when it ends, so the affinity window counts from the end
// of the session).
//
// # Conventions
//
// Gateways are cluster members of type common.Gateway that publish:
// GetIP(common.IPOuter), the host clients dial; GetPort(0), the client TCP
// port; GetPort(1), the WebSocket port (0 = none); GetOverload(0), the number
// of logged-in clients; GetOverload(1), the open client connections, not yet
// logged-in ones included; GetOverload(2), its state: 0 accepting, 1 full
// (at its connection or pre-login limit), 2 draining. Logins go to the
// accepting gateway with the fewest logged-in clients; a full or draining
// gateway is never handed out, and when none accepts, Login fails with
// common.ErrNoGateway. Stateful node types are configured
// (Config.StatefulTypes); their live instances are the members of that type
// the MemberSource reports.
//
// # Redis keys
//
// For cluster C and account A (see KeysFor):
//
//	xserver:C:{A}:token   string, the token; PX = Config.TokenTTL
//	xserver:C:{A}:bind    hash, field = decimal node type, value = node ID;
//	                      PX = the affinity window
//	xserver:C:{A}:sess    hash, the live session's record (see Sessions)
//
// The account is the hash tag, so a Redis Cluster spreads accounts over its
// slots while the keys of one account share a slot and one script may
// touch them together. Account names therefore must not contain '{' or '}'
// (see ValidateAccount), nor may cluster names.
//
// Every write that decides a binding is a Lua script, so logins of the same
// account racing on several login services, and gateways racing to replace
// a dead instance, all end up with the same bindings.
//
// # Failures
//
// Every Redis failure is reported wrapping ErrUnavailable (and the Redis
// error), never as ErrBadToken, so a gateway can tell "reject this client"
// from "try again later". To bound a call by its ctx deadline, build the
// client with redis.UniversalOptions.ContextTimeoutEnabled; otherwise
// go-redis applies its own read/write timeouts and retries.
//
// # Secrets
//
// Tokens are 32 bytes from crypto/rand, base64url without padding. Nothing
// in this package logs, and no error it returns contains a token or a
// credential; Checker implementations must keep credentials out of their
// errors too, since Login wraps them.
//
// # Sessions
//
// Sessions keeps the gateways' session records (see SessionRecord): which
// gateway holds an account's live session, its id, the SHA-256 of its
// resume secret, its window, its bindings and the last resume attempt. A
// gateway writes one at login, takes it over on a resume from another
// gateway (Takeover: a compare of id, secret and attempt in one script),
// refreshes or restores it while the session lives (Hold) and deletes it
// at the end (End). Nodes read the holder from it (Lookup) to reach a
// player they have not heard from.
//
// After Redis lost its data, EnsureMarker and MarkRestored let gateways
// report that they restored their sessions, and Login waits until every
// live gateway has (ErrRestoring, wrapped with ErrUnavailable), at most
// RestoreGrace.
package login
