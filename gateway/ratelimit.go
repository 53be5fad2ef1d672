package gateway

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xserver/xserver/common"
)

// RateLimit is one limit on what a client session may send: a token
// bucket of messages per second and one of bytes per second, each with a
// burst. It counts the messages in its scope — every message, the messages
// to a range of node types, or a range of client cmds. A message must fit
// every limit whose scope holds it; one that does not is not delivered and
// takes no token from any bucket.
type RateLimit struct {
	// Scope. With neither range set the limit counts every message.
	MinType, MaxType common.NodeType // node types, inclusive (MaxType 0: none)
	MinCmd, MaxCmd   uint64          // client cmds, inclusive (MaxCmd 0: none)

	Frames     float64 // messages per second (0: not limited)
	FrameBurst int     // messages that may come at once (default: Frames, at least 1)
	Bytes      float64 // bytes per second, counting whole frames as sent (0: not limited)
	ByteBurst  int     // bytes that may come at once (default: Bytes, at least the largest frame)

	// Kick ends the session with a kick (code RateLimited) when a message
	// is over the limit; otherwise the message is dropped and the client
	// gets a ClientError with that code.
	Kick bool
}

// ErrRateLimit is wrapped by ParseRateLimits and by Config validation for
// a limit that cannot work.
var ErrRateLimit = errors.New("gateway: invalid rate limit")

// maxRateLimits bounds the limits a gateway checks per message.
const maxRateLimits = 16

// Scope names the messages the limit counts, as the flag syntax writes it:
// "all", "type=5", "type=5-7", "cmd=4000-4099". It is the metric label.
func (r *RateLimit) Scope() string {
	switch {
	case r.MaxType != 0 && r.MinType == r.MaxType:
		return "type=" + strconv.Itoa(int(r.MinType))
	case r.MaxType != 0:
		return fmt.Sprintf("type=%d-%d", r.MinType, r.MaxType)
	case r.MaxCmd != 0 && r.MinCmd == r.MaxCmd:
		return "cmd=" + strconv.FormatUint(r.MinCmd, 10)
	case r.MaxCmd != 0:
		return fmt.Sprintf("cmd=%d-%d", r.MinCmd, r.MaxCmd)
	}
	return "all"
}

// String is the limit in the flag syntax.
func (r *RateLimit) String() string {
	var parts []string
	if s := r.Scope(); s != "all" {
		parts = append(parts, s)
	}
	if r.Frames > 0 {
		parts = append(parts, "frames="+strconv.FormatFloat(r.Frames, 'g', -1, 64), "burst="+strconv.Itoa(r.FrameBurst))
	}
	if r.Bytes > 0 {
		parts = append(parts, "bytes="+strconv.FormatFloat(r.Bytes, 'f', -1, 64), "byte-burst="+strconv.Itoa(r.ByteBurst))
	}
	if r.Kick {
		parts = append(parts, "action=kick")
	}
	return strings.Join(parts, ",")
}

func (r *RateLimit) covers(t common.NodeType, cmd uint64) bool {
	switch {
	case r.MaxType != 0:
		return t >= r.MinType && t <= r.MaxType
	case r.MaxCmd != 0:
		return cmd >= r.MinCmd && cmd <= r.MaxCmd
	}
	return true
}

// validate fills the bursts' defaults (maxFrame is the gateway's largest
// client frame) and rejects a limit that could never let a message pass.
func (r *RateLimit) validate(maxFrame int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrRateLimit, r.Scope(), fmt.Sprintf(format, a...))
	}
	if r.MaxType != 0 && r.MaxCmd != 0 {
		return bad("a limit has a type range or a cmd range, not both")
	}
	if r.MaxType != 0 && (r.MinType > r.MaxType || r.MinType < common.FirstGameType) {
		return bad("type range must be ascending, of game types (%d and up)", common.FirstGameType)
	}
	if r.MaxCmd != 0 && r.MinCmd > r.MaxCmd {
		return bad("cmd range must be ascending")
	}
	if math.IsNaN(r.Frames) || math.IsNaN(r.Bytes) || r.Frames < 0 || r.Bytes < 0 || math.IsInf(r.Frames, 0) || math.IsInf(r.Bytes, 0) {
		return bad("rates must be finite and positive")
	}
	if r.Frames == 0 && r.Bytes == 0 {
		return bad("set frames, bytes or both")
	}
	if r.Frames > 1e9 || r.Bytes > 1<<40 {
		return bad("rates above 10⁹ frames or 1 TiB per second are no limit")
	}
	if r.FrameBurst < 0 || r.ByteBurst < 0 {
		return bad("bursts must be positive")
	}
	if r.Frames > 0 && r.FrameBurst == 0 {
		r.FrameBurst = max(1, int(math.Ceil(r.Frames)))
	}
	if r.Bytes > 0 && r.ByteBurst == 0 {
		r.ByteBurst = max(maxFrame+frameOverhead, int(math.Ceil(r.Bytes)))
	}
	if r.Bytes > 0 && r.ByteBurst < maxFrame+frameOverhead {
		return bad("byte-burst %d is below the largest client frame (%d bytes): such frames could never pass", r.ByteBurst, maxFrame+frameOverhead)
	}
	return nil
}

// frameOverhead is the most a message frame adds to its data: length,
// kind, sequence number and cmd.
const frameOverhead = 4 + 2 + 4 + 8

// ParseRateLimits parses the gateway's -rate-limit flag: limits separated
// by ";", each a list of key=value separated by ",":
//
//	type=N or type=N-M   node types the limit counts (inclusive)
//	cmd=N or cmd=N-M     client cmds the limit counts (inclusive)
//	frames=R             messages per second
//	burst=N              messages at once (default R)
//	bytes=R              bytes per second; suffix k, KiB, m or MiB for 1024 and 1024²
//	byte-burst=N         bytes at once (default R, at least a largest frame); same suffixes
//	action=error|kick    over the limit: drop with a ClientError (default) or kick
//
// Without type or cmd a limit counts every message. Example:
//
//	frames=50,bytes=64KiB; type=7,frames=2,burst=5,action=kick
//
// An empty string is no limit. Bursts are filled in and checked when the
// gateway starts (they depend on its largest frame).
func ParseRateLimits(s string) ([]RateLimit, error) {
	var out []RateLimit
	for _, rule := range strings.Split(s, ";") {
		rule = strings.TrimSpace(rule)
		if rule == "" {
			continue
		}
		var r RateLimit
		for _, kv := range strings.Split(rule, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || v == "" {
				return nil, fmt.Errorf("%w: %q: want key=value", ErrRateLimit, kv)
			}
			var err error
			switch k {
			case "type":
				var lo, hi uint64
				if lo, hi, err = parseRange(v, 0xffff); err == nil {
					r.MinType, r.MaxType = common.NodeType(lo), common.NodeType(hi)
				}
			case "cmd":
				r.MinCmd, r.MaxCmd, err = parseRange(v, math.MaxUint64)
				if err == nil && r.MaxCmd == 0 {
					err = errors.New("cmd 0 names no node")
				}
			case "frames":
				r.Frames, err = strconv.ParseFloat(v, 64)
			case "burst":
				r.FrameBurst, err = strconv.Atoi(v)
			case "bytes":
				var n uint64
				n, err = parseBytes(v)
				r.Bytes = float64(n)
			case "byte-burst":
				var n uint64
				if n, err = parseBytes(v); err == nil && n > math.MaxInt32 {
					err = errors.New("too large")
				}
				r.ByteBurst = int(n)
			case "action":
				switch v {
				case "error":
					r.Kick = false
				case "kick":
					r.Kick = true
				default:
					err = errors.New("want error or kick")
				}
			default:
				err = errors.New("unknown key (want type, cmd, frames, burst, bytes, byte-burst or action)")
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s=%s: %v", ErrRateLimit, k, v, err)
			}
		}
		if r.Frames == 0 && r.Bytes == 0 {
			return nil, fmt.Errorf("%w: %q: set frames, bytes or both", ErrRateLimit, rule)
		}
		out = append(out, r)
	}
	if len(out) > maxRateLimits {
		return nil, fmt.Errorf("%w: %d limits, at most %d", ErrRateLimit, len(out), maxRateLimits)
	}
	return out, nil
}

// CheckRateLimits reports the first of limits that a gateway whose largest
// client frame is maxFrame bytes would refuse (Config validation does the
// same check), for flag parsers to reject it before starting.
func CheckRateLimits(limits []RateLimit, maxFrame int) error {
	if len(limits) > maxRateLimits {
		return fmt.Errorf("%w: %d limits, at most %d", ErrRateLimit, len(limits), maxRateLimits)
	}
	for _, r := range limits {
		if err := r.validate(maxFrame); err != nil {
			return err
		}
	}
	return nil
}

func parseRange(v string, limit uint64) (lo, hi uint64, err error) {
	a, b, isRange := strings.Cut(v, "-")
	if lo, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = strconv.ParseUint(b, 10, 64); err != nil {
			return 0, 0, err
		}
	}
	if lo > hi || hi > limit {
		return 0, 0, fmt.Errorf("want N or N-M with N ≤ M ≤ %d", limit)
	}
	return lo, hi, nil
}

func parseBytes(v string) (uint64, error) {
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"k", 1 << 10}, {"K", 1 << 10}, {"m", 1 << 20}, {"M", 1 << 20}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxUint64/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// rateLimit is a configured limit with its counters, resolved once.
type rateLimit struct {
	RateLimit
	errors, kicks prometheus.Counter
}

// clock is the gateway's monotonic time in nanoseconds, for the buckets.
func (g *Gateway) clock() int64 { return int64(g.now().Sub(g.t0)) }

// buckets is one session's state for the gateway's limits, one entry per
// limit, allocated at the session's first message: an idle session that
// never sent one costs a nil pointer. Guarded by the session's mutex.
type buckets []bucket

// bucket is a pair of token buckets: tokens held at time last (nanoseconds
// on the gateway's clock).
type bucket struct {
	frames, bytes float64
	last          int64
}

// newBuckets returns full buckets as of now.
func newBuckets(limits []RateLimit, now int64) buckets {
	b := make(buckets, len(limits))
	for i := range limits {
		b[i] = bucket{frames: float64(limits[i].FrameBurst), bytes: float64(limits[i].ByteBurst), last: now}
	}
	return b
}

// take decides one message of size bytes to node type t with client cmd
// at time now (nanoseconds, never decreasing much: a clock step back is
// treated as no time passing). When every limit in scope has room it takes
// the tokens and returns -1; otherwise it takes nothing and returns the
// index of the first limit that refused. It is pure apart from b.
func (b buckets) take(limits []RateLimit, now int64, t common.NodeType, cmd uint64, size int) int {
	for i := range limits {
		r := &limits[i]
		if !r.covers(t, cmd) {
			continue
		}
		k := &b[i]
		if dt := now - k.last; dt > 0 {
			sec := float64(dt) / 1e9
			k.frames = min(float64(r.FrameBurst), k.frames+sec*r.Frames)
			k.bytes = min(float64(r.ByteBurst), k.bytes+sec*r.Bytes)
			k.last = now
		}
		if (r.Frames > 0 && k.frames < 1) || (r.Bytes > 0 && k.bytes < float64(size)) {
			return i
		}
	}
	for i := range limits {
		if limits[i].covers(t, cmd) {
			b[i].frames--
			b[i].bytes -= float64(size)
		}
	}
	return -1
}
