package discovery

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/xserver/xserver/common"
)

// Rollout is a gray release of one node type: a share of the accounts, and
// listed accounts, go to the instances that publish Version; the others go
// to the instances that do not. Which side an account is on depends only
// on the account (a hash), so it is the same on every gateway and login
// service and does not change while the rollout stands. When one side has
// no instance, its accounts use the other side's.
type Rollout struct {
	Type     common.NodeType
	Version  string
	Share    float64             // fraction of the accounts, 0 to 1
	Accounts map[string]struct{} // always on the new version
}

// ShareBuckets is how finely Share divides the accounts: an account falls
// in one of 10 000 buckets by its hash.
const ShareBuckets = 10000

// ErrRollout is wrapped by ParseRollouts for input it cannot use.
var ErrRollout = errors.New("discovery: invalid rollout")

// Bucket is the account's bucket, 0 to ShareBuckets−1, from the same hash
// as the consistent-hash ring.
func Bucket(account string) int { return int(ringHash("gray:"+account) % ShareBuckets) }

// In reports whether account goes to the new version.
func (r *Rollout) In(account string) bool {
	if _, ok := r.Accounts[account]; ok {
		return true
	}
	return float64(Bucket(account)) < r.Share*ShareBuckets
}

// Rollouts are the gray releases in force, at most one per node type.
type Rollouts []Rollout

// For returns the rollout of type t, nil when there is none.
func (rs Rollouts) For(t common.NodeType) *Rollout {
	for i := range rs {
		if rs[i].Type == t {
			return &rs[i]
		}
	}
	return nil
}

// Narrow returns the candidates for a new session of one side of the
// rollout (in: the new version): those whose version is (or, for !in, is
// not) r.Version, or all of items when that leaves none. It allocates only
// when it drops some.
func Narrow[T any](r *Rollout, in bool, items []T, version func(T) string) []T {
	keep := 0
	for _, it := range items {
		if (version(it) == r.Version) == in {
			keep++
		}
	}
	if keep == 0 || keep == len(items) {
		return items
	}
	out := make([]T, 0, keep)
	for _, it := range items {
		if (version(it) == r.Version) == in {
			out = append(out, it)
		}
	}
	return out
}

// Rendezvous returns the item key maps to among items by highest random
// weight (the same key gets the same item while the set is stable, and
// few keys move when it changes), or the zero T for none. It hashes every
// item: for the few candidates a rollout leaves.
func Rendezvous[T Candidate](key string, items []T) T {
	var best T
	var bestH uint64
	for i, it := range items {
		if h := ringHash(key + "|" + it.Key()); i == 0 || h > bestH {
			best, bestH = it, h
		}
	}
	return best
}

// String writes the rollout in the syntax ParseRollouts reads.
func (r *Rollout) String() string {
	parts := []string{"type=" + strconv.Itoa(int(r.Type)), "version=" + r.Version,
		"share=" + strconv.FormatFloat(r.Share*100, 'f', -1, 64) + "%"}
	if len(r.Accounts) > 0 {
		accts := make([]string, 0, len(r.Accounts))
		for a := range r.Accounts {
			accts = append(accts, a)
		}
		slices.Sort(accts)
		parts = append(parts, "accounts="+strings.Join(accts, "|"))
	}
	return strings.Join(parts, ",")
}

// ParseRollouts reads gray releases separated by ";", each a list of
// key=value separated by ",":
//
//	type=N          the node type (a game type, 4 and up)
//	version=V       the version its new instances publish (required)
//	share=P%        the share of accounts sent to them, 0% to 100% (or a fraction 0 to 1)
//	accounts=a|b    accounts always sent to them
//
// Example: "type=4,version=1.3.0,share=10%,accounts=qa-1|qa-2". An empty
// string is no rollout.
func ParseRollouts(s string) (Rollouts, error) {
	var out Rollouts
	for _, rule := range strings.Split(s, ";") {
		rule = strings.TrimSpace(rule)
		if rule == "" {
			continue
		}
		var r Rollout
		for _, kv := range strings.Split(rule, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || v == "" {
				return nil, fmt.Errorf("%w: %q: want key=value", ErrRollout, kv)
			}
			var err error
			switch k {
			case "type":
				var t uint64
				if t, err = strconv.ParseUint(v, 10, 16); err == nil && t < uint64(common.FirstGameType) {
					err = fmt.Errorf("not a game type (%d and up)", common.FirstGameType)
				}
				r.Type = common.NodeType(t)
			case "version":
				r.Version = v
			case "share":
				pct := strings.HasSuffix(v, "%")
				r.Share, err = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
				if pct {
					r.Share /= 100
				}
				if err == nil && (math.IsNaN(r.Share) || r.Share < 0 || r.Share > 1) {
					err = errors.New("want 0% to 100%")
				}
			case "accounts":
				r.Accounts = make(map[string]struct{})
				for _, a := range strings.Split(v, "|") {
					if a = strings.TrimSpace(a); a != "" {
						r.Accounts[a] = struct{}{}
					}
				}
			default:
				err = errors.New("unknown key (want type, version, share or accounts)")
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s=%s: %v", ErrRollout, k, v, err)
			}
		}
		switch {
		case r.Type == 0:
			return nil, fmt.Errorf("%w: %q: type is required", ErrRollout, rule)
		case r.Version == "":
			return nil, fmt.Errorf("%w: %q: version is required", ErrRollout, rule)
		case out.For(r.Type) != nil:
			return nil, fmt.Errorf("%w: two rollouts of type %d", ErrRollout, r.Type)
		}
		out = append(out, r)
	}
	return out, nil
}
