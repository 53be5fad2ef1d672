package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors.
var (
	// ErrNoLeader: no lease is held right now.
	ErrNoLeader = errors.New("lease: no leader published")
	// ErrBadRecord: the leader key holds something that is not a record.
	ErrBadRecord = errors.New("lease: malformed leader record")
	// ErrHeld: someone else holds the lease.
	ErrHeld = errors.New("lease: held by another mgrserver")
	// ErrSuperseded: the held epoch is older than one the cluster has
	// seen; the lease was released.
	ErrSuperseded = errors.New("lease: epoch superseded; lease released")
)

// Keys are the Redis keys of one cluster.
type Keys struct {
	Leader string
	Epoch  string
}

// KeysFor returns the keys of cluster.
func KeysFor(cluster string) Keys {
	p := "xserver:{" + cluster + "}:"
	return Keys{Leader: p + "leader", Epoch: p + "epoch"}
}

// Record is what the leader publishes.
type Record struct {
	Epoch uint64
	Addr  string // intranet host:port nodes dial
	Token string // random per acquisition; fences renew and release
}

// String is the stored form.
func (r Record) String() string {
	return strconv.FormatUint(r.Epoch, 10) + " " + r.Addr + " " + r.Token
}

// Parse reads the stored form.
func Parse(s string) (Record, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Record{}, fmt.Errorf("%w: %d fields", ErrBadRecord, len(f))
	}
	e, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || e == 0 {
		return Record{}, fmt.Errorf("%w: epoch %q", ErrBadRecord, f[0])
	}
	return Record{Epoch: e, Addr: f[1], Token: f[2]}, nil
}

// Read returns the published leader record, or ErrNoLeader.
func Read(ctx context.Context, rdb redis.Cmdable, cluster string) (Record, error) {
	s, err := rdb.Get(ctx, KeysFor(cluster).Leader).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrNoLeader
	}
	if err != nil {
		return Record{}, fmt.Errorf("lease: read leader: %w", err)
	}
	return Parse(s)
}

// acquire: SET NX PX the record, with an epoch from INCR that is raised
// above floor (the highest epoch the caller has seen) if the counter was
// lost, so epochs never go backwards even across a Redis restart.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
if e <= floor then
  e = floor + 1
  redis.call('SET', KEYS[2], e)
end
local v = e .. ' ' .. ARGV[2] .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], v, 'NX', 'PX', ARGV[3])
return v
`)

// renew: compare-and-pexpire; if the key is gone (it lapsed, or Redis lost
// it in a restart) and nobody else took it, re-take it with the same record
// and restore the epoch counter. If the counter was raised above the held
// epoch (a node has seen a newer leader than this one), give the lease up
// so the next acquisition gets an epoch every node accepts. Returns 1
// renewed, 2 re-taken, 3 superseded (released), 0 lost.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  local e = tonumber(redis.call('GET', KEYS[2]) or '0')
  if e > tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1])
    return 3
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local e = tonumber(redis.call('GET', KEYS[2]) or '0')
  if e < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
  return 2
end
return 0
`)

// release: compare-and-delete.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Acquire tries to take the lease for addr. It returns ErrHeld when another
// holder has it.
func Acquire(ctx context.Context, rdb redis.Scripter, cluster, addr, token string, ttl time.Duration, floor uint64) (Record, error) {
	k := KeysFor(cluster)
	s, err := acquireScript.Run(ctx, rdb, []string{k.Leader, k.Epoch}, token, addr, ttl.Milliseconds(), floor).Text()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrHeld
	}
	if err != nil {
		return Record{}, fmt.Errorf("lease: acquire: %w", err)
	}
	return Parse(s)
}

// Renew extends the lease held as rec. It returns ErrHeld when the lease
// now belongs to someone else; any other error means Redis did not answer.
func Renew(ctx context.Context, rdb redis.Scripter, cluster string, rec Record, ttl time.Duration) error {
	k := KeysFor(cluster)
	n, err := renewScript.Run(ctx, rdb, []string{k.Leader, k.Epoch}, rec.String(), ttl.Milliseconds(), rec.Epoch).Int()
	if err != nil {
		return fmt.Errorf("lease: renew: %w", err)
	}
	switch n {
	case 0:
		return ErrHeld
	case 3:
		return ErrSuperseded
	}
	return nil
}

// raiseScript lifts the epoch counter to at least ARGV[1].
var raiseScript = redis.NewScript(`
local e = tonumber(redis.call('GET', KEYS[1]) or '0')
if e < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// RaiseEpoch lifts the cluster's epoch counter to at least seen. A node
// that finds a leader published under an epoch older than one it has seen
// (Redis lost its data and a fresh mgrserver started counting again) calls
// it; that leader then finds itself superseded at its next renewal, gives
// the lease up, and the next acquisition is numbered above seen.
func RaiseEpoch(ctx context.Context, rdb redis.Scripter, cluster string, seen uint64) error {
	if err := raiseScript.Run(ctx, rdb, []string{KeysFor(cluster).Epoch}, seen).Err(); err != nil {
		return fmt.Errorf("lease: raise epoch: %w", err)
	}
	return nil
}

// Release deletes the lease if it is still rec's.
func Release(ctx context.Context, rdb redis.Scripter, cluster string, rec Record) error {
	k := KeysFor(cluster)
	if err := releaseScript.Run(ctx, rdb, []string{k.Leader}, rec.String()).Err(); err != nil {
		return fmt.Errorf("lease: release: %w", err)
	}
	return nil
}

// Where describes the Redis deployment rdb talks to, for warnings an
// operator reads ("cannot reach Redis at ...").
func Where(rdb redis.UniversalClient) string {
	switch c := rdb.(type) {
	case *redis.Client:
		if a := c.Options().Addr; a != "FailoverClient" {
			return a
		}
		return "the master named by Sentinel"
	case *redis.ClusterClient:
		return "cluster " + strings.Join(c.Options().Addrs, ",")
	case *redis.Ring:
		return "a ring of shards"
	}
	return fmt.Sprintf("%T", rdb)
}
