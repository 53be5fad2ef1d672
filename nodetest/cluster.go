package nodetest

import (
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
)

// Errors of the test cluster. Test with errors.Is.
var (
	// ErrConfig: the Config or a NodeConfig is not valid.
	ErrConfig = errors.New("nodetest: invalid config")
	// ErrRunaway: one Run or Advance handled Config.MaxSteps events or
	// timers and stopped: messages probably bounce between nodes forever.
	ErrRunaway = errors.New("nodetest: too many steps in one run")
	// ErrReentrant: Run, Step or Advance was called from a callback they
	// were running; the inner call did nothing.
	ErrReentrant = errors.New("nodetest: Run, Step or Advance called from a callback")
	// ErrStarted: Start on a node already started or closed.
	ErrStarted = errors.New("nodetest: node already started")
	// ErrExpired: Resume after the session ended (its resume window
	// passed, or it was kicked or replaced meanwhile).
	ErrExpired = errors.New("nodetest: session expired")
)

// Defaults of Config.
const (
	DefaultOffset       = 1000
	DefaultResumeWindow = 30 * time.Second
	DefaultAffinity     = 5 * time.Minute
	DefaultMaxSteps     = 1_000_000
)

// DefaultStart is where the cluster's clock starts unless Config.Start
// says otherwise.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Config describes the cluster. The zero value is valid: every node type
// is stateless, and sessions can resume for 30 seconds.
type Config struct {
	// Offset is the gateway's cmd offset: a player's cmd goes to node
	// type cmd / Offset, which receives cmd − type × Offset. Default 1000.
	Offset uint64
	// Stateful lists the node types a player is bound to at login (the
	// login service's stateful types). A login fails with
	// common.ErrNoNode while one of them has no instance.
	Stateful []common.NodeType
	// ResumeWindow is how long a disconnected player's session waits for
	// Resume (default 30s). Negative: no resume; a session ends with its
	// connection, as for a version 1 client.
	ResumeWindow time.Duration
	// Affinity is how long an account's bindings outlive its session: a
	// login within it finds the same instances (default 5 min).
	Affinity time.Duration
	// Selector is how GetNodeOne and SendOne choose: Random (the default,
	// drawn from Seed), RoundRobin or LeastLoad. ConsistentHash is refused,
	// as by node.Config: hashed choice takes a key (GetNodeByKey,
	// SendOneByKey).
	Selector discovery.Mode
	// Seed seeds every random choice: node IDs, random selection, the
	// login's choice among equally loaded instances. Default 1.
	Seed int64
	// Start is the clock's initial time (default DefaultStart).
	Start time.Time
	// MaxSteps bounds the events and timers one Run or Advance handles
	// (default 1,000,000); see ErrRunaway.
	MaxSteps int
}

func (c *Config) validate() error {
	if c.Offset == 0 {
		c.Offset = DefaultOffset
	}
	switch {
	case c.ResumeWindow == 0:
		c.ResumeWindow = DefaultResumeWindow
	case c.ResumeWindow < 0:
		c.ResumeWindow = 0
	}
	if c.Affinity <= 0 {
		c.Affinity = DefaultAffinity
	}
	if err := c.Selector.Valid(); err != nil {
		return fmt.Errorf("%w: selector: %w", ErrConfig, err)
	}
	if c.Selector == discovery.ConsistentHash { // as node.Config refuses it
		return fmt.Errorf("%w: selector %v needs a key per call: use GetNodeByKey or SendOneByKey", ErrConfig, c.Selector)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = DefaultMaxSteps
	}
	seen := make(map[common.NodeType]bool)
	for _, t := range c.Stateful {
		if t < common.FirstGameType {
			return fmt.Errorf("%w: stateful type %s is reserved", ErrConfig, t)
		}
		if seen[t] {
			return fmt.Errorf("%w: stateful type %s listed twice", ErrConfig, t)
		}
		seen[t] = true
	}
	c.Stateful = append([]common.NodeType(nil), c.Stateful...)
	return nil
}

// Cluster is an in-memory cluster: nodes, one gateway and players, with
// a message queue and a clock that only move when the test says so. See
// the package documentation.
//
// Concurrency: one mutex guards the whole cluster (queue, clock, nodes,
// sessions, players). Every method is safe for concurrent use; callbacks
// run on the goroutine that called Run, Step or Advance, never under the
// mutex, one at a time.
type Cluster struct {
	mu      sync.Mutex // guards every field below and the fields of nodes, players and sessions marked so
	cfg     Config
	now     time.Time
	rnd     *rand.Rand
	queue   []event // events not yet handled, oldest first
	qhead   int
	timers  []*Timer // pending timers, unordered
	tseq    uint64
	running bool
	err     error

	gw       *info // the gateway as members see it
	nodes    []*Node
	byID     map[common.NodeID]*Node
	sessions map[string]*session // live or away, by account
	binds    map[string]*binding // by account
	nextSid  uint64
	rr       map[common.NodeType]uint64 // round-robin position of stateless types
}

// New returns an empty cluster (just the gateway) whose clock reads
// cfg.Start.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg: cfg, now: cfg.Start, rnd: rand.New(rand.NewSource(cfg.Seed)),
		byID: make(map[common.NodeID]*Node), sessions: make(map[string]*session),
		binds: make(map[string]*binding), rr: make(map[common.NodeType]uint64),
	}
	c.gw = &info{id: c.newIDLocked(), typ: common.Gateway, addrs: []string{"127.0.0.1", "127.0.0.1"}}
	return c, nil
}

// newIDLocked draws a version 4 UUID from the seeded source, so node IDs
// (and everything hashed on them) are the same in every run.
func (c *Cluster) newIDLocked() common.NodeID {
	var id common.NodeID
	c.rnd.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// Gateway is the cluster's gateway as a member (type common.Gateway).
// Nodes see it in their member lists; it relays, it receives no node
// messages.
func (c *Cluster) Gateway() common.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &member{info: c.gw}
}

// Now is the cluster's clock.
func (c *Cluster) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Err reports the first misuse seen: a runaway Run (ErrRunaway) or a
// re-entrant one (ErrReentrant). End a test with a check of it.
func (c *Cluster) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Cluster) failLocked(err error) {
	if c.err == nil {
		c.err = err
	}
}

// lane is a goroutine of a real node that runs callbacks one at a time:
// a node's gateway link callbacks (relay, session and undeliverable;
// a real node runs them on lanes by account and by sender, which this
// cluster orders more strictly, one at a time per node) or its dispatcher
// (membership callbacks). Calls and their answers need no lane: a real
// node reads them while its callbacks run. While a callback of a lane runs — waiting in a Call, say —
// events for that lane wait too. busy is guarded by Cluster.mu.
type lane struct{ busy int }

// event is one queued delivery. lane, evaluated under Cluster.mu, names
// the lane it needs (nil: none, it may always run).
type event struct {
	lane func() *lane
	run  func()
}

// postLocked queues an event that needs no lane. Events run in the order
// they were queued.
func (c *Cluster) postLocked(run func()) { c.queue = append(c.queue, event{run: run}) }

// postOnLocked queues an event for lane l.
func (c *Cluster) postOnLocked(l *lane, run func()) {
	c.queue = append(c.queue, event{lane: func() *lane { return l }, run: run})
}

// postDynLocked queues an event whose lane is known only when it runs.
func (c *Cluster) postDynLocked(l func() *lane, run func()) {
	c.queue = append(c.queue, event{lane: l, run: run})
}

// popLocked removes and returns the oldest event whose lane is free;
// blocked reports that events are queued but none can run now.
func (c *Cluster) popLocked() (run func(), blocked bool) {
	for i := c.qhead; i < len(c.queue); i++ {
		ev := c.queue[i]
		if ev.lane != nil {
			if l := ev.lane(); l != nil && l.busy > 0 {
				continue
			}
		}
		if i == c.qhead {
			c.queue[i] = event{}
			c.qhead++
		} else {
			copy(c.queue[i:], c.queue[i+1:])
			c.queue[len(c.queue)-1] = event{}
			c.queue = c.queue[:len(c.queue)-1]
		}
		return ev.run, false
	}
	if c.qhead == len(c.queue) {
		c.queue, c.qhead = c.queue[:0], 0
		return nil, false
	}
	return nil, true
}

// inLane runs f as a callback of lane l: events for l wait meanwhile.
func (c *Cluster) inLane(l *lane, f func()) {
	c.mu.Lock()
	l.busy++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		l.busy--
		c.mu.Unlock()
	}()
	f()
}

// Pending is the number of events queued and not yet handled.
func (c *Cluster) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) - c.qhead
}

// enter marks the start of Run, Step or Advance; false when one is
// already running (a callback called it).
func (c *Cluster) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		c.failLocked(ErrReentrant)
		return false
	}
	c.running = true
	return true
}

func (c *Cluster) leave() {
	c.mu.Lock()
	c.running = false
	c.mu.Unlock()
}

// Step handles the oldest queued event (a message reaching a node, the
// gateway or a player, or a callback) and reports whether there was one.
// It never moves the clock.
func (c *Cluster) Step() bool {
	if !c.enter() {
		return false
	}
	defer c.leave()
	return c.step()
}

func (c *Cluster) step() bool {
	ran, _ := c.stepOrBlocked()
	return ran
}

// stepOrBlocked runs one event; blocked reports that none could run
// although some are queued (their lanes are busy).
func (c *Cluster) stepOrBlocked() (ran, blocked bool) {
	c.mu.Lock()
	run, blocked := c.popLocked()
	c.mu.Unlock()
	if run == nil {
		return false, blocked
	}
	run()
	return true, false
}

// Run handles queued events, and those they cause, until none is left,
// and returns how many it handled. It never moves the clock: timers wait
// for Advance. It stops after Config.MaxSteps events (see Err).
func (c *Cluster) Run() int {
	if !c.enter() {
		return 0
	}
	defer c.leave()
	n, _ := c.run(0)
	return n
}

// run drains the queue; budget counts steps already used by the caller.
func (c *Cluster) run(used int) (int, bool) {
	n := 0
	for used+n < c.cfg.MaxSteps {
		if !c.step() {
			return n, true
		}
		n++
	}
	c.mu.Lock()
	more := c.qhead < len(c.queue)
	if more {
		c.failLocked(fmt.Errorf("%w: %d events (Config.MaxSteps)", ErrRunaway, c.cfg.MaxSteps))
	}
	c.mu.Unlock()
	return n, !more
}

// Advance moves the clock forward by d. It first runs the queue, then
// fires every timer due by the new time in order, running the queue after
// each with the clock at that timer's time, and returns the number of
// events and timers handled. Timers due now fire too (Advance(0)).
func (c *Cluster) Advance(d time.Duration) int {
	if !c.enter() {
		return 0
	}
	defer c.leave()
	n, ok := c.run(0)
	c.mu.Lock()
	end := c.now.Add(max(d, 0))
	c.mu.Unlock()
	for ok {
		c.mu.Lock()
		t := c.nextTimerLocked(end)
		if t != nil {
			if n >= c.cfg.MaxSteps {
				c.failLocked(fmt.Errorf("%w: %d events and timers (Config.MaxSteps)", ErrRunaway, c.cfg.MaxSteps))
				c.mu.Unlock()
				break
			}
			c.now = t.due
		}
		c.mu.Unlock()
		if t == nil {
			break
		}
		t.f()
		n++
		var k int
		k, ok = c.run(n)
		n += k
	}
	c.mu.Lock()
	if ok && end.After(c.now) {
		c.now = end
	}
	c.mu.Unlock()
	return n
}

// Timer is a timer on the cluster's clock (see AfterFunc).
type Timer struct {
	c       *Cluster
	due     time.Time
	seq     uint64
	f       func()
	stopped bool // guarded by c.mu
}

// AfterFunc calls f on the goroutine running Advance once the clock has
// moved d past now, and returns a Timer that can cancel it. Give it to a
// service that takes a clock, so its timers run in the test's time.
func (c *Cluster) AfterFunc(d time.Duration, f func()) *Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.afterLocked(d, f)
}

func (c *Cluster) afterLocked(d time.Duration, f func()) *Timer {
	c.tseq++
	t := &Timer{c: c, due: c.now.Add(max(d, 0)), seq: c.tseq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop cancels the timer; false when it already fired or was stopped.
func (t *Timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.stopLocked()
}

func (t *Timer) stopLocked() bool {
	if t.stopped {
		return false
	}
	t.stopped = true
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			break
		}
	}
	return true
}

// nextTimerLocked removes and returns the earliest timer due by end (ties
// in creation order), or nil.
func (c *Cluster) nextTimerLocked(end time.Time) *Timer {
	best := -1
	for i, t := range c.timers {
		if t.due.After(end) {
			continue
		}
		if best < 0 || t.due.Before(c.timers[best].due) || t.due.Equal(c.timers[best].due) && t.seq < c.timers[best].seq {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	t := c.timers[best]
	t.stopLocked()
	return t
}

// AddNode adds a node of type t, not yet started: register its callbacks,
// then Start it. Its ID is drawn from Config.Seed.
func (c *Cluster) AddNode(t common.NodeType) *Node {
	return c.AddNodeWith(NodeConfig{Type: t})
}

// NodeConfig is what AddNodeWith publishes of a node. Invalid values
// (type Client or MgrServer, an ID already used) make Start fail with
// ErrConfig.
type NodeConfig struct {
	Type     common.NodeType
	ID       common.NodeID // zero: drawn from Config.Seed
	InnerIP  string        // default "127.0.0.1"
	OuterIP  string        // default InnerIP
	Ports    []int32
	Overload []uint32
	Version  string
}

// AddNodeWith adds a node described by cfg, not yet started.
func (c *Cluster) AddNodeWith(cfg NodeConfig) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bad error
	switch {
	case cfg.Type == common.Client || cfg.Type == common.MgrServer || cfg.Type == common.Gateway:
		bad = fmt.Errorf("%w: type %s cannot be a node here", ErrConfig, cfg.Type)
	case !cfg.ID.IsZero() && (c.byID[cfg.ID] != nil || cfg.ID == c.gw.id):
		bad = fmt.Errorf("%w: node id %s already used", ErrConfig, cfg.ID)
	}
	if cfg.ID.IsZero() {
		cfg.ID = c.newIDLocked()
	}
	if cfg.InnerIP == "" {
		cfg.InnerIP = "127.0.0.1"
	}
	if cfg.OuterIP == "" {
		cfg.OuterIP = cfg.InnerIP
	}
	n := &Node{
		c: c, id: cfg.ID, typ: cfg.Type, bad: bad,
		ready: make(chan struct{}),
		view:  make(map[common.NodeID]*member),
		index: make(map[common.NodeType]*typeIndex),
		owned: make(map[string]*ownership),
		rnd:   rand.New(rand.NewSource(c.rnd.Int63())),
	}
	n.self = &info{id: cfg.ID, typ: cfg.Type, addrs: []string{cfg.InnerIP, cfg.OuterIP},
		ports: append([]int32(nil), cfg.Ports...), overload: append([]uint32(nil), cfg.Overload...), version: cfg.Version}
	n.view[n.id] = &member{viewer: n, info: n.self}
	if bad == nil {
		c.byID[n.id] = n
		c.nodes = append(c.nodes, n)
	}
	return n
}

// Node returns the node with that ID (started or not, closed or not), or
// nil.
func (c *Cluster) Node(id common.NodeID) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id]
}

// KillNode stops a node without a goodbye, as if its process died: the
// other members see it leave, messages to it are reported undeliverable
// to their senders, and its players are rebound by the gateway to another
// instance of its type at their next message. Messages it sent before are
// still delivered (they had left it). Its callbacks never run again. It
// reports false for an unknown or already stopped node.
func (c *Cluster) KillNode(id common.NodeID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.byID[id]
	if n == nil || n.state == nodeClosed {
		return false
	}
	c.stopNodeLocked(n)
	return true
}

// stopNodeLocked takes n out of the cluster: members learn it left.
func (c *Cluster) stopNodeLocked(n *Node) {
	was := n.state
	n.state = nodeClosed
	select {
	case <-n.ready:
	default:
		close(n.ready)
	}
	if was != nodeStarted {
		return
	}
	for _, o := range c.nodes {
		if o != n && o.state == nodeStarted {
			o.postLeaveLocked(n.id)
		}
	}
}

// registeredLocked is every member the control plane knows: the gateway
// and the started nodes, by type then ID.
func (c *Cluster) registeredLocked() []*info {
	out := []*info{c.gw}
	for _, n := range c.nodes {
		if n.state == nodeStarted {
			out = append(out, n.self)
		}
	}
	sortInfos(out)
	return out
}

func sortInfos(in []*info) {
	sort.Slice(in, func(i, j int) bool {
		if in[i].typ != in[j].typ {
			return in[i].typ < in[j].typ
		}
		return in[i].id.String() < in[j].id.String()
	})
}
