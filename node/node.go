package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/lograte"
	"github.com/xserver/xserver/internal/testhook"
	"github.com/xserver/xserver/login"
	pb "github.com/xserver/xserver/proto"
)

// Node is the framework side of a game service. See the package doc.
type Node struct {
	cfg Config
	log logrus.FieldLogger

	mu        sync.Mutex // guards every field below, and cfg.Rand
	grayTurn  uint64     // GetNodeOne picks under a gray release (the side)
	grayRR    uint64     // and the turn within a side
	self      *member
	view      *discovery.View
	members   map[common.NodeID]*member
	types     map[common.NodeType]*typeIndex
	link      *link // current mgrserver connection; nil when none
	ready     bool  // a snapshot has been applied
	started   bool
	closed    bool
	onJoin    []common.FuncTypeOnMember
	onLeave   []common.FuncTypeOnMember
	onUpd     []common.FuncTypeOnMember
	onRelay   common.FuncTypeOnRelayMsg
	onLose    common.FuncTypeOnLoseAccount
	onAway    common.FuncTypeOnAccount
	onBack    common.FuncTypeOnAccount
	onUndeliv common.FuncTypeOnUndeliverable
	onCall    common.FuncTypeOnCall
	calls     *calls
	lastCause error // why the last attempt to join failed (WaitReady)

	sessions *login.Sessions // player session records (holder lookups)

	rl          *relay
	relayCancel context.CancelFunc

	warnLog *lograte.Limiter // misconfiguration and connect failures

	readyCh chan struct{} // closed at the first applied snapshot
	stop    chan struct{} // closed by Close
	disp    *dispatcher
	wg      sync.WaitGroup
}

// typeIndex is the per-type list and selector, rebuilt lazily after a
// change (so a burst of joins costs one rebuild, not one per join).
type typeIndex struct {
	dirty bool
	list  []*member
	sel   *discovery.Selector[*member]
}

var _ common.INode = (*Node)(nil)

// New validates cfg and builds a node. Nothing runs until Start.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		view:    discovery.NewView(),
		members: make(map[common.NodeID]*member),
		types:   make(map[common.NodeType]*typeIndex),
		readyCh: make(chan struct{}),
		stop:    make(chan struct{}),
		warnLog: lograte.New(lograte.DefaultEvery),
	}
	n.log = cfg.Logger.WithFields(logrus.Fields{"node": cfg.ID.String(), "type": cfg.Type.String()})
	n.self = &member{n: n, id: cfg.ID, info: &pb.NodeInfo{
		Id: cfg.ID.Bytes(), Type: uint32(cfg.Type), Addrs: []string{cfg.InnerIP, cfg.OuterIP},
		Ports: append([]int32(nil), cfg.Ports...), Overload: append([]uint32(nil), cfg.Overload...), Version: cfg.Version,
	}}
	n.members[cfg.ID] = n.self
	n.markDirtyLocked(cfg.Type)
	n.sessions = &login.Sessions{Redis: cfg.Redis, Cluster: cfg.Cluster}
	n.rl = newRelay(n)
	n.calls = newCalls()
	return n, nil
}

// Start begins looking for the mgrserver leader in the background and
// returns at once. Use WaitReady to wait for the first member list.
func (n *Node) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return ErrStarted
	}
	n.started = true
	if h := testhook.NodeFrom(ctx); h != nil {
		h.SetCrash(n.crash)
		n.rl.hook = h
	}
	n.disp = newDispatcher()
	rctx, cancel := context.WithCancel(context.Background())
	n.relayCancel = cancel
	n.wg.Add(2)
	go n.run()
	go func() { defer n.wg.Done(); n.rl.run(rctx) }()
	return nil
}

// WaitReady blocks until the node has registered and applied a member
// list, or ctx ends. Then the error wraps ctx's and says why the node could
// not join so far (no leader published, wrong secret, Redis unreachable...).
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.stop: // closed wins over ready, whichever happened first
		return common.ErrClosed
	default:
	}
	select {
	case <-n.readyCh:
		select {
		case <-n.stop:
			return common.ErrClosed
		default:
			return nil
		}
	case <-n.stop:
		return common.ErrClosed
	case <-ctx.Done():
		n.mu.Lock()
		cause := n.lastCause
		n.mu.Unlock()
		if cause != nil {
			return fmt.Errorf("node: not ready: %w: %w", ctx.Err(), cause)
		}
		return ctx.Err()
	}
}

// Close leaves the cluster gracefully (members see a leave, not a failure)
// and stops every goroutine. Safe twice.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	started := n.started
	l := n.link
	n.mu.Unlock()
	close(n.stop)
	if !started {
		return nil
	}
	n.relayCancel() // gateway links say goodbye first
	if l != nil {
		l.leave()
	}
	n.calls.cancelAll()
	n.wg.Wait()
	n.rl.cb.close()
	n.disp.close()
	n.log.Info("node stopped")
	return nil
}

// Connected reports whether the node is registered with a leader now.
func (n *Node) Connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.link != nil && n.link.registered
}

// LeaderEpoch is the highest leader epoch seen.
func (n *Node) LeaderEpoch() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.view.Epoch()
}

// --- self ---

func (n *Node) current() *member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.self
}

// GetID returns this node's ID.
func (n *Node) GetID() common.NodeID { return n.cfg.ID }

// GetType returns this node's type.
func (n *Node) GetType() common.NodeType { return n.cfg.Type }

// GetIP returns this node's inner or outer address.
func (n *Node) GetIP(i common.IPType) string { return n.current().GetIP(i) }

// GetPort returns port slot i.
func (n *Node) GetPort(i int) int32 { return n.current().GetPort(i) }

// GetOverload returns load slot i.
func (n *Node) GetOverload(i int) uint32 { return n.current().GetOverload(i) }

// GetVersion returns this node's version.
func (n *Node) GetVersion() string { return n.current().GetVersion() }

// SendMsg sends to this node itself through a gateway.
func (n *Node) SendMsg(cmd uint64, msg proto.Message) error { return n.SendByID(n.cfg.ID, cmd, msg) }

// SetOverload sets load slot i and propagates it to every member.
func (n *Node) SetOverload(i int, v uint32) {
	if i < 0 || i >= 16 {
		return
	}
	n.mu.Lock()
	in := *n.self.info
	ov := make([]uint32, max(len(in.Overload), i+1))
	copy(ov, in.Overload)
	ov[i] = v
	in.Overload = ov
	n.replaceSelfLocked(&in)
	l := n.link
	n.mu.Unlock()
	if l != nil {
		l.sendUpdate(&pb.UpdateSelf{Overload: ov, SetOverload: true})
	}
}

// SetVersion sets this node's version and propagates it.
func (n *Node) SetVersion(v string) {
	n.mu.Lock()
	in := *n.self.info
	in.Version = v
	n.replaceSelfLocked(&in)
	l := n.link
	n.mu.Unlock()
	if l != nil {
		l.sendUpdate(&pb.UpdateSelf{Version: v, SetVersion: true})
	}
}

func (n *Node) replaceSelfLocked(in *pb.NodeInfo) {
	n.self = &member{n: n, id: n.cfg.ID, info: in}
	n.members[n.cfg.ID] = n.self
	n.markDirtyLocked(n.cfg.Type)
}

// --- members ---

// RegisterFuncOnJoin adds a callback for members joining.
func (n *Node) RegisterFuncOnJoin(f common.FuncTypeOnMember) {
	n.mu.Lock()
	n.onJoin = append(n.onJoin, f)
	n.mu.Unlock()
}

// RegisterFuncOnLeave adds a callback for members leaving or failing.
func (n *Node) RegisterFuncOnLeave(f common.FuncTypeOnMember) {
	n.mu.Lock()
	n.onLeave = append(n.onLeave, f)
	n.mu.Unlock()
}

// RegisterFuncOnUpdate adds a callback for members changing overload or
// version.
func (n *Node) RegisterFuncOnUpdate(f common.FuncTypeOnMember) {
	n.mu.Lock()
	n.onUpd = append(n.onUpd, f)
	n.mu.Unlock()
}

func (n *Node) markDirtyLocked(t common.NodeType) {
	ti := n.types[t]
	if ti == nil {
		ti = &typeIndex{sel: discovery.NewSelector[*member](rand.New(rand.NewSource(n.cfg.Rand.Int63())))}
		n.types[t] = ti
	}
	ti.dirty = true
}

// indexLocked returns the fresh index of type t (nil when none ever seen).
func (n *Node) indexLocked(t common.NodeType) *typeIndex {
	ti := n.types[t]
	if ti == nil || !ti.dirty {
		return ti
	}
	ti.list = ti.list[:0]
	for _, m := range n.members {
		if m.GetType() == t {
			ti.list = append(ti.list, m)
		}
	}
	sort.Slice(ti.list, func(i, j int) bool { return ti.list[i].Key() < ti.list[j].Key() })
	ti.sel.Update(ti.list)
	ti.dirty = false
	return ti
}

// GetNodeOne returns one member of type t chosen by the configured
// selector, or nil when there is none.
func (n *Node) GetNodeOne(t common.NodeType) common.Member {
	m, err := n.pick(t, n.cfg.Selector, "")
	if err != nil {
		return nil
	}
	return m
}

// GetNodeByKey returns the member of type t that key maps to on a
// consistent-hash ring (stable while membership is), or nil.
func (n *Node) GetNodeByKey(t common.NodeType, key string) common.Member {
	m, err := n.pick(t, discovery.ConsistentHash, key)
	if err != nil {
		return nil
	}
	return m
}

func (n *Node) pick(t common.NodeType, mode discovery.Mode, key string) (*member, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ti := n.indexLocked(t)
	if ti == nil {
		return nil, fmt.Errorf("%w: no member of type %s", common.ErrNoNode, t)
	}
	if r := n.cfg.Rollouts.For(t); r != nil && len(ti.list) > 0 {
		return n.pickGrayLocked(r, ti.list, mode, key), nil
	}
	m, err := ti.sel.Get(mode, key)
	if err != nil {
		return nil, fmt.Errorf("%w: type %s: %v", common.ErrNoNode, t, err)
	}
	return m, nil
}

// pickGrayLocked picks among the members of one side of a gray release:
// the key's side by its hash (rendezvous among that side's members), or,
// without a key, the rollout's share of the picks in turn (exactly the
// share over every 10 000 picks: the turn walks the buckets in a
// scrambled order) with the node's selector mode among that side.
func (n *Node) pickGrayLocked(r *discovery.Rollout, list []*member, mode discovery.Mode, key string) *member {
	if key != "" {
		return discovery.Rendezvous(key, discovery.Narrow(r, r.In(key), list, (*member).GetVersion))
	}
	n.grayTurn++
	in := float64(n.grayTurn*7919%discovery.ShareBuckets) < r.Share*discovery.ShareBuckets
	side := discovery.Narrow(r, in, list, (*member).GetVersion)
	if mode == discovery.LeastLoad {
		best := side[0]
		for _, m := range side[1:] {
			if m.Load() < best.Load() {
				best = m
			}
		}
		return best
	}
	n.grayRR++
	return side[n.grayRR%uint64(len(side))]
}

// GetNodeList returns every member of type t, sorted by ID.
func (n *Node) GetNodeList(t common.NodeType) []common.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	ti := n.indexLocked(t)
	if ti == nil {
		return nil
	}
	out := make([]common.Member, len(ti.list))
	for i, m := range ti.list {
		out[i] = m
	}
	return out
}

// GetNodeAll returns every member, this node included, sorted by type then
// ID.
func (n *Node) GetNodeAll() []common.Member {
	n.mu.Lock()
	out := make([]*member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	n.mu.Unlock()
	sortMembers(out)
	res := make([]common.Member, len(out))
	for i, m := range out {
		res[i] = m
	}
	return res
}

func sortMembers(ms []*member) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].info.Type != ms[j].info.Type {
			return ms[i].info.Type < ms[j].info.Type
		}
		return ms[i].Key() < ms[j].Key()
	})
}

// GetNode returns the member with that ID, or nil.
func (n *Node) GetNode(id common.NodeID) common.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m, ok := n.members[id]; ok {
		return m
	}
	return nil
}

// HaveNode reports whether the member is known.
func (n *Node) HaveNode(id common.NodeID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.members[id]
	return ok
}

// NumMembers is the number of members known, this node included.
func (n *Node) NumMembers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.members)
}

// PrintNodeInfo logs every member of type t.
func (n *Node) PrintNodeInfo(log common.ILogger, t common.NodeType) {
	for _, m := range n.GetNodeList(t) {
		printMember(log, m)
	}
}

// PrintAllNodeInfo logs every member.
func (n *Node) PrintAllNodeInfo(log common.ILogger) {
	for _, m := range n.GetNodeAll() {
		printMember(log, m)
	}
}

func printMember(log common.ILogger, m common.Member) {
	mm := m.(*member)
	log.Infof("node id=%s type=%s inner=%s outer=%s ports=%v overload=%v version=%q",
		mm.id, mm.GetType(), mm.GetIP(common.IPInner), mm.GetIP(common.IPOuter), mm.info.Ports, mm.info.Overload, mm.info.Version)
}

// applyLocked folds view changes into the member index and queues the
// callbacks. This node's own entry is local truth and never replaced.
func (n *Node) applyLocked(changes []discovery.Change) {
	for _, c := range changes {
		if c.ID == n.cfg.ID {
			continue
		}
		var fs []common.FuncTypeOnMember
		var m *member
		switch c.Kind {
		case discovery.Joined, discovery.Updated:
			m = &member{n: n, id: c.ID, info: c.Info}
			if old, ok := n.members[c.ID]; ok && old.info.Type != c.Info.Type {
				n.markDirtyLocked(common.NodeType(old.info.Type))
			}
			n.members[c.ID] = m
			fs = n.onJoin
			if c.Kind == discovery.Updated {
				fs = n.onUpd
			}
		case discovery.Left:
			m = n.members[c.ID]
			if m == nil {
				continue
			}
			delete(n.members, c.ID)
			fs = n.onLeave
		}
		n.markDirtyLocked(m.GetType())
		if m.GetType() == common.Gateway {
			n.rl.poke()
		}
		if infoEnabled(n.log) { // building the entry costs more than the change itself
			n.log.WithFields(logrus.Fields{"member": c.ID.String(), "member_type": m.GetType().String(), "failed": c.Failed}).Info("member ", c.Kind)
		}
		for _, f := range fs {
			f, m := f, m
			n.disp.post(func() { f(m) })
		}
	}
}

// infoEnabled reports whether l would print at Info level.
func infoEnabled(l logrus.FieldLogger) bool {
	switch v := l.(type) {
	case *logrus.Entry:
		return v.Logger.IsLevelEnabled(logrus.InfoLevel)
	case *logrus.Logger:
		return v.IsLevelEnabled(logrus.InfoLevel)
	}
	return true
}

// sleep waits d or until Close; false means closed.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.stop:
		return false
	}
}

// jitter returns d scaled by a random factor in [0.5, 1.5).
func (n *Node) jitter(d time.Duration) time.Duration {
	n.mu.Lock()
	f := 0.5 + n.cfg.Rand.Float64()
	n.mu.Unlock()
	return time.Duration(float64(d) * f)
}

var errClosed = errors.New("node: closed")

// crash stops the node without a goodbye (members see a failure). This
// module's failure tests reach it through internal/testhook.
func (n *Node) crash() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	started := n.started
	l := n.link
	n.mu.Unlock()
	close(n.stop)
	if !started {
		return
	}
	n.relayCancel()
	if l != nil {
		l.close()
	}
	n.wg.Wait()
	n.rl.cb.close()
	n.disp.close()
}
