package bot

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Histogram counts durations in logarithmic buckets, so it holds a long
// run in bounded memory and answers quantiles within histGrowth (2 %) of
// the true value. The zero value is empty and ready. It is not safe for
// concurrent use (Stats adds the lock).
type Histogram struct {
	counts   []uint64 // counts[i]: samples in bucket i (see bucketOf)
	n        uint64
	min, max time.Duration
}

const (
	histBase   = time.Microsecond // bucket 0 holds everything up to histBase
	histGrowth = 1.02             // each bucket is 2 % wider than the previous
)

var logGrowth = math.Log(histGrowth)

// bucketOf is the bucket of d: 0 up to histBase, then i such that
// histBase·g^(i-1) < d ≤ histBase·g^i.
func bucketOf(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	return int(math.Ceil(math.Log(float64(d)/float64(histBase))/logGrowth - 1e-9))
}

// upperBound is the largest duration bucket i holds.
func upperBound(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
}

// Add records one sample; negative durations count as zero.
func (h *Histogram) Add(d time.Duration) {
	d = max(d, 0)
	i := bucketOf(d)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]uint64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 ≤ q ≤ 1) by the nearest-rank method:
// the upper bound of the bucket holding the ⌈q·n⌉-th smallest sample,
// kept within the smallest and largest sample seen. q ≤ 0 is the exact
// minimum, q ≥ 1 the exact maximum, and an empty histogram gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	switch {
	case h.n == 0:
		return 0
	case q <= 0:
		return h.min
	case q >= 1:
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(upperBound(i), h.min), h.max)
		}
	}
	return h.max
}

// Clone returns an independent copy.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

// Latency kinds: the round trips a bot measures.
const (
	LatencyEnter = "enter" // CmdEnter → EnterReply
	LatencyChat  = "chat"  // CmdWorld → its Ack
	LatencyAway  = "away"  // a lost connection → the session resumed
)

// Error kinds a bot records (Stats.Error takes any string; these are the
// ones Run uses).
const (
	ErrLogin        = "login"         // POST /login failed (HTTP error or refusal)
	ErrDial         = "dial"          // could not connect to the gateway
	ErrLoginAck     = "login-ack"     // the gateway refused the token or did not answer
	ErrEnter        = "enter"         // the lobby refused CmdEnter or did not answer in time
	ErrKicked       = "kicked"        // ClientKick
	ErrNotDelivered = "not-delivered" // ClientError: the gateway dropped a message
	ErrRefused      = "refused"       // an Ack with ok=false
	ErrNoReply      = "no-reply"      // a chat or queue ack missing after Config.Timeout
	ErrConn         = "conn"          // the connection broke (read or write)
	ErrProtocol     = "protocol"      // a frame or body that does not decode
	ErrDuplicate    = "duplicate"     // a message seen twice (which, for the first)
)

// Stats gathers what every bot of a run observed. All methods are safe for
// concurrent use.
type Stats struct {
	mu sync.Mutex // guards s
	s  Summary
}

// NewStats returns empty Stats for a run of bots bots that started at start.
func NewStats(bots int, start time.Time) *Stats {
	return &Stats{s: Summary{Bots: bots, Start: start, Errors: map[string]uint64{}, FirstError: map[string]string{}, Latency: map[string]*Histogram{}}}
}

// Counter names a Summary counter for Stats.Inc.
type Counter int

// Counters.
const (
	LoginOK Counter = iota
	LoginFailed
	EnterOK
	EnterFailed
	Sent
	Received
	ChatSeen
	Matches
	Drops      // connections cut on purpose (-drop-every)
	Resumed    // sessions resumed after a lost connection
	Lost       // messages that never arrived, by the bots' own sequence numbers
	Duplicated // messages that arrived twice
	Relogins   // sessions that ended under a bot, which then logged in again
	// Gapped: world lines (group broadcasts) missing in a session whose
	// client was told broadcasts may be missing (a resume on another
	// gateway, a shed notice): the documented guarantee for broadcasts,
	// so not counted as lost.
	Gapped
)

// Inc adds n to counter c.
func (st *Stats) Inc(c Counter, n uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if p := st.s.counter(c); p != nil {
		*p += n
	}
}

// Online moves the number of bots currently in the lobby by delta.
func (st *Stats) Online(delta int) {
	st.mu.Lock()
	st.s.Online += delta
	st.mu.Unlock()
}

// Error counts one error of the given kind; the first error of each kind
// is kept as an example (err may be nil).
func (st *Stats) Error(kind string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Errors[kind]++
	if _, ok := st.s.FirstError[kind]; !ok && err != nil {
		st.s.FirstError[kind] = err.Error()
	}
}

// Observe records one round trip of the given latency kind.
func (st *Stats) Observe(kind string, d time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	h := st.s.Latency[kind]
	if h == nil {
		h = new(Histogram)
		st.s.Latency[kind] = h
	}
	h.Add(d)
}

// Snapshot returns a copy of the summary so far, taken at now.
func (st *Stats) Snapshot(now time.Time) Summary {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s
	s.Elapsed = now.Sub(s.Start)
	s.Errors = make(map[string]uint64, len(st.s.Errors))
	for k, v := range st.s.Errors {
		s.Errors[k] = v
	}
	s.FirstError = make(map[string]string, len(st.s.FirstError))
	for k, v := range st.s.FirstError {
		s.FirstError[k] = v
	}
	s.Latency = make(map[string]*Histogram, len(st.s.Latency))
	for k, h := range st.s.Latency {
		s.Latency[k] = h.Clone()
	}
	return s
}

// Summary is what a run observed, as of Elapsed after Start.
type Summary struct {
	Bots        int
	Start       time.Time
	Elapsed     time.Duration
	LoginOK     uint64 // bots that got a ticket and a gateway LoginAck 0
	LoginFailed uint64
	EnterOK     uint64 // bots whose CmdEnter got EnterReply ok
	EnterFailed uint64
	Online      int                   // bots in the lobby right now
	Sent        uint64                // data frames sent to the gateway
	Received    uint64                // data frames received from the gateway
	ChatSeen    uint64                // PushWorld lines received, summed over bots
	Matches     uint64                // PushMatched received
	Drops       uint64                // connections cut on purpose
	Resumed     uint64                // sessions resumed
	Lost        uint64                // messages lost (bots' sequence numbers, both directions)
	Duplicated  uint64                // messages duplicated
	Relogins    uint64                // sessions ended under a bot, logged in again
	Gapped      uint64                // broadcast lines missing after a signalled broadcast gap
	Errors      map[string]uint64     // by kind (Err* constants)
	FirstError  map[string]string     // the first error message of each kind
	Latency     map[string]*Histogram // by kind (Latency* constants)
}

// counter is the field behind c, nil for an unknown Counter.
func (s *Summary) counter(c Counter) *uint64 {
	switch c {
	case LoginOK:
		return &s.LoginOK
	case LoginFailed:
		return &s.LoginFailed
	case EnterOK:
		return &s.EnterOK
	case EnterFailed:
		return &s.EnterFailed
	case Sent:
		return &s.Sent
	case Received:
		return &s.Received
	case ChatSeen:
		return &s.ChatSeen
	case Matches:
		return &s.Matches
	case Drops:
		return &s.Drops
	case Resumed:
		return &s.Resumed
	case Lost:
		return &s.Lost
	case Duplicated:
		return &s.Duplicated
	case Relogins:
		return &s.Relogins
	case Gapped:
		return &s.Gapped
	}
	return nil
}

// Failed reports whether any bot failed to log in or to enter.
func (s Summary) Failed() bool { return s.LoginFailed > 0 || s.EnterFailed > 0 }

// Format writes the summary as a few lines, each starting with prefix.
func (s Summary) Format(w io.Writer, prefix string) {
	fmt.Fprintf(w, "%s%s  bots %d: logged in %d (failed %d), entered %d (failed %d), online %d\n",
		prefix, s.Elapsed.Round(100*time.Millisecond), s.Bots, s.LoginOK, s.LoginFailed, s.EnterOK, s.EnterFailed, s.Online)
	fmt.Fprintf(w, "%s  messages sent %d, received %d; chat lines seen %d; matches %d\n",
		prefix, s.Sent, s.Received, s.ChatSeen, s.Matches)
	fmt.Fprintf(w, "%s  %s\n", prefix, s.ResumeLine())
	if s.Gapped > 0 {
		fmt.Fprintf(w, "%s  broadcast lines missing after a signalled broadcast gap: %d (not lost: the client was told)\n", prefix, s.Gapped)
	}
	for _, kind := range sortedKeys(s.Latency) {
		h := s.Latency[kind]
		fmt.Fprintf(w, "%s  latency %-5s p50 %s  p90 %s  p99 %s  (n=%d)\n", prefix, kind,
			fmtDur(h.Quantile(0.50)), fmtDur(h.Quantile(0.90)), fmtDur(h.Quantile(0.99)), h.Count())
	}
	if len(s.Errors) == 0 {
		fmt.Fprintf(w, "%s  errors: none\n", prefix)
		return
	}
	parts := make([]string, 0, len(s.Errors))
	for _, k := range sortedKeys(s.Errors) {
		parts = append(parts, fmt.Sprintf("%s %d", k, s.Errors[k]))
	}
	fmt.Fprintf(w, "%s  errors: %s\n", prefix, strings.Join(parts, ", "))
	for _, k := range sortedKeys(s.FirstError) {
		fmt.Fprintf(w, "%s    first %s: %s\n", prefix, k, s.FirstError[k])
	}
}

// fmtDur rounds a latency for display.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ResumeLine is the one-line account of resumes: "resume: <n> resumed, <l>
// lost, <d> duplicated, <r> relogins". Lost and duplicated count messages
// by the bots' own sequence numbers, end to end through the lobby, in both
// directions: each bot's world lines and their acks, and every other
// bot's lines it sees.
func (s Summary) ResumeLine() string {
	return fmt.Sprintf("resume: %d resumed, %d lost, %d duplicated, %d relogins", s.Resumed, s.Lost, s.Duplicated, s.Relogins)
}
