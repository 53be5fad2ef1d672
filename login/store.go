package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
)

// MaxAccountLen is the longest account name accepted, in bytes.
const MaxAccountLen = 64

// DefaultCluster is the cluster name used when none is given.
const DefaultCluster = "xserver"

// Keys are the Redis keys of one account in one cluster.
type Keys struct {
	Token string // the login token (string)
	Bind  string // the account's bindings (hash: node type → node ID)
	// Sess is the account's live session record (hash, see
	// SessionRecord): the gateway holding it, the session id, the resume
	// secret's digest, the window and the bindings. Nodes read the holder
	// from it to reach a player they have not heard from.
	Sess string
}

// KeysFor returns the keys of account in cluster ("" = DefaultCluster). It
// does not validate its arguments; ValidateAccount and ValidateCluster do.
func KeysFor(cluster, account string) Keys {
	if cluster == "" {
		cluster = DefaultCluster
	}
	p := "xserver:" + cluster + ":{" + account + "}:"
	return Keys{Token: p + "token", Bind: p + "bind", Sess: p + "sess"}
}

// ValidateAccount reports whether account can be used as an account name:
// non-empty, at most MaxAccountLen bytes of valid UTF-8, printable
// characters only (unicode.IsPrint; the ASCII space is allowed), and no '{'
// or '}' (they would break the Redis Cluster hash tag). The error wraps
// ErrBadAccount.
func ValidateAccount(account string) error {
	switch {
	case account == "":
		return fmt.Errorf("%w: empty", ErrBadAccount)
	case len(account) > MaxAccountLen:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadAccount, len(account), MaxAccountLen)
	case !utf8.ValidString(account):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadAccount)
	}
	for _, r := range account {
		if r == '{' || r == '}' {
			return fmt.Errorf("%w: contains %q", ErrBadAccount, r)
		}
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: contains non-printable %U", ErrBadAccount, r)
		}
	}
	return nil
}

// ValidateCluster reports whether cluster can be used as a cluster name in
// keys: "" (DefaultCluster) or valid UTF-8 of printable characters other
// than space, '{' and '}' (a brace would capture the Redis Cluster hash tag).
func ValidateCluster(cluster string) error {
	if !utf8.ValidString(cluster) {
		return fmt.Errorf("login: cluster name %q: not valid UTF-8", cluster)
	}
	for _, r := range cluster {
		if r == '{' || r == '}' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("login: cluster name %q: contains %q", cluster, r)
		}
	}
	return nil
}

// checkNames validates cluster and account for the gateway-side helpers.
func checkNames(cluster, account string) error {
	if err := ValidateCluster(cluster); err != nil {
		return err
	}
	return ValidateAccount(account)
}

// unavailable wraps a Redis failure (including a context error while
// talking to Redis).
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// pxMillis converts a positive duration to a PX/PEXPIRE argument, rounding
// sub-millisecond durations up to 1 ms.
func pxMillis(d time.Duration) int64 {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return ms
}

// bindScript is Login's one atomic step.
//
//	KEYS[1] bind hash, KEYS[2] token
//	ARGV[1] affinity ms, ARGV[2] token, ARGV[3] token TTL ms, ARGV[4] n types,
//	then per type: type, chosen ID, k, k live IDs.
//
// For each type it keeps the existing binding when it names a live instance
// and otherwise binds the chosen one; then it refreshes the hash's PX and
// sets the token. It returns {type, id, type, id, …} in argument order.
var bindScript = redis.NewScript(`
local out = {}
local i = 5
for n = 1, tonumber(ARGV[4]) do
  local t, chosen, k = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2])
  local cur = redis.call('HGET', KEYS[1], t)
  local live = false
  if cur then
    for j = i+3, i+2+k do
      if ARGV[j] == cur then live = true break end
    end
  end
  if not live then
    redis.call('HSET', KEYS[1], t, chosen)
    cur = chosen
  end
  out[#out+1] = t
  out[#out+1] = cur
  i = i + 3 + k
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return out
`)

// rebindScript is a compare-and-set on one binding.
//
//	KEYS[1] bind hash; ARGV[1] type, ARGV[2] old ID ("" = none),
//	ARGV[3] replacement ID, ARGV[4] affinity ms.
//
// It sets the replacement when the field is absent or holds old, refreshes
// the hash's PX and returns the binding in force.
var rebindScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or cur == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  cur = ARGV[3]
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return cur
`)

// VerifyToken checks the token a client presented for account. It returns
// nil when it matches the stored one (compared in constant time), an error
// wrapping ErrBadToken when the token is missing, expired, mismatched or the
// account name is invalid, and an error wrapping ErrUnavailable (never
// ErrBadToken) when Redis could not answer. The token stays valid until its
// TTL: a client may reconnect with it while it lasts.
//
// It blocks for one Redis round trip and is safe for concurrent use.
func VerifyToken(ctx context.Context, rdb redis.Cmdable, cluster, account, token string) error {
	if err := ValidateCluster(cluster); err != nil {
		return err
	}
	if err := ValidateAccount(account); err != nil {
		return fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	if token == "" {
		return fmt.Errorf("%w: empty", ErrBadToken)
	}
	stored, err := rdb.Get(ctx, KeysFor(cluster, account).Token).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: none issued or expired", ErrBadToken)
	}
	if err != nil {
		return unavailable("verify token", err)
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(token)) != 1 {
		return fmt.Errorf("%w: mismatch", ErrBadToken)
	}
	return nil
}

// RevokeToken deletes account's token, so no gateway accepts it any more
// (a ban, a logout before the client connected). Sessions already admitted
// are not affected: kicking them is the gateway's business.
func RevokeToken(ctx context.Context, rdb redis.Cmdable, cluster, account string) error {
	if err := checkNames(cluster, account); err != nil {
		return err
	}
	if err := rdb.Del(ctx, KeysFor(cluster, account).Token).Err(); err != nil {
		return unavailable("revoke token", err)
	}
	return nil
}

// LoadBindings returns account's bindings (an empty map when there are
// none, e.g. the affinity window lapsed). A malformed entry, which only a
// foreign writer can produce, is an error wrapping common.ErrBadInput; the
// next Login of the account overwrites it. Redis failures wrap
// ErrUnavailable.
func LoadBindings(ctx context.Context, rdb redis.Cmdable, cluster, account string) (map[common.NodeType]common.NodeID, error) {
	if err := checkNames(cluster, account); err != nil {
		return nil, err
	}
	h, err := rdb.HGetAll(ctx, KeysFor(cluster, account).Bind).Result()
	if err != nil {
		return nil, unavailable("load bindings", err)
	}
	out := make(map[common.NodeType]common.NodeID, len(h))
	for f, v := range h {
		t, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("login: load bindings: %w: field %q", common.ErrBadInput, f)
		}
		id, err := common.ParseNodeID(v)
		if err != nil {
			return nil, fmt.Errorf("login: load bindings: type %d: %w: %w", t, common.ErrBadInput, err)
		}
		out[common.NodeType(t)] = id
	}
	return out, nil
}

// Rebind replaces account's binding for type t with replacement if the
// binding is absent or still old (pass the zero NodeID when there was none),
// refreshes the affinity window, and returns the binding now in force: the
// replacement, or whatever another gateway or login put there first. Two
// gateways racing to replace the same dead instance thus agree.
func Rebind(ctx context.Context, rdb redis.Cmdable, cluster, account string, t common.NodeType, old, replacement common.NodeID, affinity time.Duration) (common.NodeID, error) {
	if err := checkNames(cluster, account); err != nil {
		return common.NodeID{}, err
	}
	if replacement.IsZero() {
		return common.NodeID{}, fmt.Errorf("login: rebind: %w: zero replacement", common.ErrBadInput)
	}
	if affinity <= 0 {
		return common.NodeID{}, fmt.Errorf("login: rebind: %w: affinity %v", common.ErrBadInput, affinity)
	}
	oldArg := ""
	if !old.IsZero() {
		oldArg = old.String()
	}
	s, err := rebindScript.Run(ctx, rdb, []string{KeysFor(cluster, account).Bind},
		strconv.FormatUint(uint64(t), 10), oldArg, replacement.String(), pxMillis(affinity)).Text()
	if err != nil {
		return common.NodeID{}, unavailable("rebind", err)
	}
	id, err := common.ParseNodeID(s)
	if err != nil {
		return common.NodeID{}, fmt.Errorf("login: rebind: %w: %w", common.ErrBadInput, err)
	}
	return id, nil
}

// TouchBindings restarts account's affinity window (PEXPIRE). A gateway calls
// it periodically while the account's session lives and once when it ends,
// so the window counts from the end of the session. It is not an error when
// the account has no bindings.
func TouchBindings(ctx context.Context, rdb redis.Cmdable, cluster, account string, affinity time.Duration) error {
	if err := checkNames(cluster, account); err != nil {
		return err
	}
	if affinity <= 0 {
		return fmt.Errorf("login: touch bindings: %w: affinity %v", common.ErrBadInput, affinity)
	}
	if err := rdb.PExpire(ctx, KeysFor(cluster, account).Bind, time.Duration(pxMillis(affinity))*time.Millisecond).Err(); err != nil {
		return unavailable("touch bindings", err)
	}
	return nil
}
