package login

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
)

// Errors of the session records.
var (
	// ErrNoSession: the account has no session record (it ended, its
	// resume window passed, or Redis lost it).
	ErrNoSession = errors.New("login: no such session")
	// ErrReplaced: the account's record names another session (a newer
	// login). errors.Is(err, ErrNoSession) is true for it too.
	ErrReplaced = fmt.Errorf("%w: the account has a newer session", ErrNoSession)
	// ErrBadSecret: the session exists but the resume secret does not
	// match.
	ErrBadSecret = errors.New("login: resume secret does not match")
	// ErrStaleResume: a later resume of the session was accepted already
	// (this one was sent on a connection the client abandoned).
	ErrStaleResume = errors.New("login: stale resume")
)

// SessionRecord is what Redis keeps of a live session: which gateway holds
// it, under which id, how a client proves it may resume it, and its
// bindings. Gateways write it; nodes read the holder from it.
type SessionRecord struct {
	Gateway    common.NodeID
	ID         uint64
	SecretHash [32]byte // SHA-256 of the resume secret; zero for a session without resume
	Window     time.Duration
	Bindings   map[common.NodeType]common.NodeID
	Attempt    uint32 // the last resume attempt accepted (0: none)
	// Groups are the groups the account's session is a member of, kept
	// so that they follow the session to another gateway (field grp:
	// the names, newline-separated). Written by the holder at every
	// join and leave, never per message.
	Groups []string
}

// HashSecret is the digest a SessionRecord keeps of a resume secret.
func HashSecret(secret []byte) [32]byte { return sha256.Sum256(secret) }

// SecretMatches compares a presented secret with a record's digest in
// constant time.
func (r *SessionRecord) SecretMatches(secret []byte) bool {
	h := HashSecret(secret)
	var zero [32]byte
	return r.SecretHash != zero && subtle.ConstantTimeCompare(h[:], r.SecretHash[:]) == 1
}

// EncodeBindings is the text form of bindings kept in a session record:
// "type=id" pairs, comma-separated, by type.
func EncodeBindings(b map[common.NodeType]common.NodeID) string {
	ts := make([]int, 0, len(b))
	for t := range b {
		ts = append(ts, int(t))
	}
	sort.Ints(ts)
	var sb strings.Builder
	for i, t := range ts {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(t))
		sb.WriteByte('=')
		sb.WriteString(b[common.NodeType(t)].String())
	}
	return sb.String()
}

// DecodeBindings parses EncodeBindings' form.
func DecodeBindings(s string) (map[common.NodeType]common.NodeID, error) {
	out := make(map[common.NodeType]common.NodeID)
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		t, err := strconv.ParseUint(k, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("login: %w: binding %q", common.ErrBadInput, kv)
		}
		id, err := common.ParseNodeID(v)
		if err != nil {
			return nil, fmt.Errorf("login: binding %q: %w: %w", kv, common.ErrBadInput, err)
		}
		out[common.NodeType(t)] = id
	}
	return out, nil
}

func (r *SessionRecord) args() []any {
	sec := ""
	var zero [32]byte
	if r.SecretHash != zero {
		sec = hex.EncodeToString(r.SecretHash[:])
	}
	return []any{r.Gateway.String(), strconv.FormatUint(r.ID, 16), sec, r.Window.Milliseconds(), EncodeBindings(r.Bindings), r.Attempt}
}

func parseRecord(m map[string]string) (*SessionRecord, error) {
	if len(m) == 0 || m["gw"] == "" {
		return nil, ErrNoSession
	}
	var r SessionRecord
	var err error
	if r.Gateway, err = common.ParseNodeID(m["gw"]); err != nil {
		return nil, fmt.Errorf("login: session record: %w: %w", common.ErrBadInput, err)
	}
	if r.ID, err = strconv.ParseUint(m["sid"], 16, 64); err != nil {
		return nil, fmt.Errorf("login: session record: %w: sid %q", common.ErrBadInput, m["sid"])
	}
	if s := m["sec"]; s != "" {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("login: session record: %w: secret digest", common.ErrBadInput)
		}
		copy(r.SecretHash[:], b)
	}
	if w, err := strconv.ParseInt(m["win"], 10, 64); err == nil {
		r.Window = time.Duration(w) * time.Millisecond
	}
	if r.Bindings, err = DecodeBindings(m["b"]); err != nil {
		return nil, err
	}
	if a, err := strconv.ParseUint(m["att"], 10, 32); err == nil {
		r.Attempt = uint32(a)
	}
	if g := m["grp"]; g != "" {
		r.Groups = strings.Split(g, "\n")
	}
	return &r, nil
}

func pairs(vals []any) map[string]string {
	m := make(map[string]string, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		k, _ := vals[i].(string)
		v, _ := vals[i+1].(string)
		m[k] = v
	}
	return m
}

// createScript replaces the account's session record and returns the
// previous one (as HGETALL pairs).
//
//	KEYS[1] sess; ARGV gw, sid, sec, win, b, att, ttl ms
var createScript = redis.NewScript(`
local old = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gw', ARGV[1], 'sid', ARGV[2], 'sec', ARGV[3], 'win', ARGV[4], 'b', ARGV[5], 'att', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return old
`)

// takeoverScript moves a session to another gateway when the id and the
// secret digest match and the attempt is newer than the last one
// accepted. It returns the record as it was before (HGETALL pairs: the
// previous holder and attempt) on success, 0 when there is no record, -3
// when the record is another session's, -1 when the secret does not
// match, -2 when the attempt is stale.
//
//	KEYS[1] sess; ARGV sid, sec, new gw, ttl ms, attempt
var takeoverScript = redis.NewScript(`
local sid = redis.call('HGET', KEYS[1], 'sid')
if not sid then return 0 end
if sid ~= ARGV[1] then return -3 end
local sec = redis.call('HGET', KEYS[1], 'sec')
if (not sec) or sec == '' or sec ~= ARGV[2] then return -1 end
if tonumber(ARGV[5]) <= tonumber(redis.call('HGET', KEYS[1], 'att') or '0') then return -2 end
local old = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], 'gw', ARGV[3], 'att', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return old
`)

// attemptScript records a resume accepted by the gateway already holding
// the session, so a stale attempt elsewhere cannot take it.
//
//	KEYS[1] sess; ARGV gw, sid, attempt
var attemptScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'gw') == ARGV[1] and redis.call('HGET', KEYS[1], 'sid') == ARGV[2]
   and tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[1], 'att') or '0') then
  redis.call('HSET', KEYS[1], 'att', ARGV[3])
  return 1
end
return 0
`)

// holdScript keeps a live session's record: 1 when it names this gateway
// and session (TTL refreshed), 2 when it was missing and is restored
// (Redis lost it), 0 when another gateway holds this session (it was
// resumed there), -1 when another session holds the account (a newer
// login). The bindings are refreshed or restored with it.
//
//	KEYS[1] sess, KEYS[2] bind; ARGV gw, sid, sec, win, b, att, ttl ms, affinity ms, then type/id pairs
var holdScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'gw', 'sid')
local gw = cur[1]
local res = 1
if gw then
  if cur[2] ~= ARGV[2] then return -1 end
  if gw ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
else
  redis.call('HSET', KEYS[1], 'gw', ARGV[1], 'sid', ARGV[2], 'sec', ARGV[3], 'win', ARGV[4], 'b', ARGV[5], 'att', ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  res = 2
end
for i = 9, #ARGV, 2 do
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i+1])
end
if #ARGV >= 9 then redis.call('PEXPIRE', KEYS[2], ARGV[8]) end
return res
`)

// endScript deletes the record if this gateway and session still hold it:
// 1 deleted, 0 missing, -1 held by another gateway or session.
//
//	KEYS[1] sess; ARGV gw, sid
var endScript = redis.NewScript(`
local gw = redis.call('HGET', KEYS[1], 'gw')
if not gw then return 0 end
if gw ~= ARGV[1] or redis.call('HGET', KEYS[1], 'sid') ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
return 1
`)

// updateScript rewrites the bindings of the record if this gateway and
// session still hold it.
//
//	KEYS[1] sess; ARGV gw, sid, b
var updateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'gw') == ARGV[1] and redis.call('HGET', KEYS[1], 'sid') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'b', ARGV[3])
  return 1
end
return 0
`)

// groupsScript rewrites the groups of the record if this gateway and
// session still hold it.
//
//	KEYS[1] sess; ARGV gw, sid, grp
var groupsScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'gw') == ARGV[1] and redis.call('HGET', KEYS[1], 'sid') == ARGV[2] then
  if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'grp') else redis.call('HSET', KEYS[1], 'grp', ARGV[3]) end
  return 1
end
return 0
`)

// Sessions keeps session records in Redis. Its methods are safe for
// concurrent use and block for one Redis round trip (Hold: one pipeline).
type Sessions struct {
	Redis   redis.UniversalClient
	Cluster string
}

func ttlMs(d time.Duration) int64 { return pxMillis(d) }

// Create writes a new session record for account, replacing any previous
// one, which it returns (nil when there was none).
func (s *Sessions) Create(ctx context.Context, account string, r *SessionRecord, ttl time.Duration) (*SessionRecord, error) {
	if err := checkNames(s.Cluster, account); err != nil {
		return nil, err
	}
	args := append(r.args(), ttlMs(ttl))
	v, err := createScript.Run(ctx, s.Redis, []string{KeysFor(s.Cluster, account).Sess}, args...).Slice()
	if err != nil {
		return nil, unavailable("create session", err)
	}
	old, err := parseRecord(pairs(v))
	if errors.Is(err, ErrNoSession) {
		return nil, nil
	}
	return old, err
}

// Takeover moves account's session id to gateway gw if secret proves it
// may and attempt is newer than the last resume accepted. It returns the
// record as it was before (Gateway: the previous holder, which may be gw
// itself), or ErrNoSession (ErrReplaced when a newer login holds the
// account), ErrBadSecret or ErrStaleResume. The record is the authority
// on who holds a session, so a gateway takes it over this way even from
// itself: a takeover elsewhere that it has not heard of yet shows.
func (s *Sessions) Takeover(ctx context.Context, account string, id uint64, secret []byte, attempt uint32, gw common.NodeID, ttl time.Duration) (*SessionRecord, error) {
	if err := checkNames(s.Cluster, account); err != nil {
		return nil, err
	}
	h := HashSecret(secret)
	v, err := takeoverScript.Run(ctx, s.Redis, []string{KeysFor(s.Cluster, account).Sess},
		strconv.FormatUint(id, 16), hex.EncodeToString(h[:]), gw.String(), ttlMs(ttl), attempt).Result()
	if err != nil {
		return nil, unavailable("take over session", err)
	}
	switch x := v.(type) {
	case int64:
		switch x {
		case -1:
			return nil, ErrBadSecret
		case -2:
			return nil, ErrStaleResume
		case -3:
			return nil, ErrReplaced
		}
		return nil, ErrNoSession
	case []any:
		return parseRecord(pairs(x))
	}
	return nil, fmt.Errorf("login: take over session: %w: reply %T", common.ErrBadInput, v)
}

// HoldResult is Hold's verdict on one session.
type HoldResult int

// Hold verdicts.
const (
	HoldLost     HoldResult = -1 // a newer session (another login) holds the account
	HoldMoved    HoldResult = 0  // the session was resumed on another gateway
	HoldKept     HoldResult = 1  // refreshed
	HoldRestored HoldResult = 2  // the record was missing (Redis lost it) and is restored
)

// HoldItem is one live session for Hold.
type HoldItem struct {
	Account string
	Record  *SessionRecord
}

// Hold refreshes the records of live sessions held by this gateway in one
// pipeline: each is kept, restored when Redis lost it (with its bindings),
// or reported lost when another gateway or session holds the account.
// Results are in items' order; an item whose script failed is HoldKept.
func (s *Sessions) Hold(ctx context.Context, items []HoldItem, ttl, affinity time.Duration) ([]HoldResult, error) {
	pipe := s.Redis.Pipeline()
	cmds := make([]*redis.Cmd, len(items))
	for i, it := range items {
		k := KeysFor(s.Cluster, it.Account)
		args := append(it.Record.args(), ttlMs(ttl), ttlMs(affinity))
		for t, id := range it.Record.Bindings {
			args = append(args, strconv.FormatUint(uint64(t), 10), id.String())
		}
		cmds[i] = holdScript.Eval(ctx, pipe, []string{k.Sess, k.Bind}, args...) // EVAL: a pipeline cannot fall back from EVALSHA
	}
	_, err := pipe.Exec(ctx)
	out := make([]HoldResult, len(items))
	for i, c := range cmds {
		n, cerr := c.Int()
		if cerr != nil {
			out[i] = HoldKept
			continue
		}
		out[i] = HoldResult(n)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return out, unavailable("hold sessions", err)
	}
	return out, nil
}

// RecordAttempt notes a resume attempt accepted by gw, which holds the
// session already.
func (s *Sessions) RecordAttempt(ctx context.Context, account string, id uint64, gw common.NodeID, attempt uint32) error {
	if err := checkNames(s.Cluster, account); err != nil {
		return err
	}
	if err := attemptScript.Run(ctx, s.Redis, []string{KeysFor(s.Cluster, account).Sess}, gw.String(), strconv.FormatUint(id, 16), attempt).Err(); err != nil {
		return unavailable("record resume attempt", err)
	}
	return nil
}

// End deletes account's record if gateway gw and session id still hold it.
// It reports whether the session was still this one's (deleted, or
// already gone) — false means another gateway took it over.
func (s *Sessions) End(ctx context.Context, account string, id uint64, gw common.NodeID) (bool, error) {
	if err := checkNames(s.Cluster, account); err != nil {
		return false, err
	}
	n, err := endScript.Run(ctx, s.Redis, []string{KeysFor(s.Cluster, account).Sess}, gw.String(), strconv.FormatUint(id, 16)).Int()
	if err != nil {
		return false, unavailable("end session", err)
	}
	return n >= 0, nil
}

// UpdateBindings rewrites the bindings kept with the session, if gw and id
// still hold it.
func (s *Sessions) UpdateBindings(ctx context.Context, account string, id uint64, gw common.NodeID, b map[common.NodeType]common.NodeID) error {
	if err := checkNames(s.Cluster, account); err != nil {
		return err
	}
	if err := updateScript.Run(ctx, s.Redis, []string{KeysFor(s.Cluster, account).Sess}, gw.String(), strconv.FormatUint(id, 16), EncodeBindings(b)).Err(); err != nil {
		return unavailable("update session bindings", err)
	}
	return nil
}

// UpdateGroups rewrites the groups kept with the session (names without
// a newline), if gw and id still hold it.
func (s *Sessions) UpdateGroups(ctx context.Context, account string, id uint64, gw common.NodeID, groups []string) error {
	if err := checkNames(s.Cluster, account); err != nil {
		return err
	}
	if err := groupsScript.Run(ctx, s.Redis, []string{KeysFor(s.Cluster, account).Sess}, gw.String(), strconv.FormatUint(id, 16), strings.Join(groups, "\n")).Err(); err != nil {
		return unavailable("update session groups", err)
	}
	return nil
}

// Lookup returns the gateway holding account's session and the session's
// id, or ErrNoSession.
func (s *Sessions) Lookup(ctx context.Context, account string) (common.NodeID, uint64, error) {
	if err := checkNames(s.Cluster, account); err != nil {
		return common.NodeID{}, 0, err
	}
	v, err := s.Redis.HMGet(ctx, KeysFor(s.Cluster, account).Sess, "gw", "sid").Result()
	if err != nil {
		return common.NodeID{}, 0, unavailable("look up session", err)
	}
	gw, _ := v[0].(string)
	sid, _ := v[1].(string)
	if gw == "" {
		return common.NodeID{}, 0, ErrNoSession
	}
	id, err := common.ParseNodeID(gw)
	if err != nil {
		return common.NodeID{}, 0, fmt.Errorf("login: session record: %w: %w", common.ErrBadInput, err)
	}
	n, err := strconv.ParseUint(sid, 16, 64)
	if err != nil {
		return common.NodeID{}, 0, fmt.Errorf("login: session record: %w: sid %q", common.ErrBadInput, sid)
	}
	return id, n, nil
}
