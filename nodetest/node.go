package nodetest

import (
	"context"
	"fmt"
	"math/rand"
	"sort"

	"github.com/gogo/protobuf/proto"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
)

// info is what the cluster knows of one member. Immutable once
// published: a change makes a new info.
type info struct {
	id       common.NodeID
	typ      common.NodeType
	addrs    []string
	ports    []int32
	overload []uint32
	version  string
}

func (in *info) with(f func(*info)) *info {
	c := *in
	c.addrs = append([]string(nil), in.addrs...)
	c.ports = append([]int32(nil), in.ports...)
	c.overload = append([]uint32(nil), in.overload...)
	f(&c)
	return &c
}

// member is a node's snapshot of a member. SendMsg sends from viewer.
type member struct {
	viewer *Node // nil for Cluster.Gateway's answer
	info   *info
}

var _ common.Member = (*member)(nil)

func (m *member) GetID() common.NodeID     { return m.info.id }
func (m *member) GetType() common.NodeType { return m.info.typ }
func (m *member) GetVersion() string       { return m.info.version }

func (m *member) GetIP(i common.IPType) string {
	if int(i) < 0 || int(i) >= len(m.info.addrs) {
		return ""
	}
	return m.info.addrs[i]
}

func (m *member) GetPort(i int) int32 {
	if i < 0 || i >= len(m.info.ports) {
		return 0
	}
	return m.info.ports[i]
}

func (m *member) GetOverload(i int) uint32 {
	if i < 0 || i >= len(m.info.overload) {
		return 0
	}
	return m.info.overload[i]
}

// SendMsg sends msg to this member from the node whose view it came from.
func (m *member) SendMsg(cmd uint64, msg proto.Message) error {
	if m.viewer == nil {
		return fmt.Errorf("%w: a member from Cluster.Gateway sends nothing", common.ErrRelayDisabled)
	}
	return m.viewer.SendByID(m.info.id, cmd, msg)
}

// Key and Load make a member a discovery.Candidate.
func (m *member) Key() string  { return m.info.id.String() }
func (m *member) Load() uint32 { return m.GetOverload(0) }

type nodeState uint8

const (
	nodeNew nodeState = iota
	nodeStarted
	nodeClosed
)

// typeIndex is a node's list and selector of one member type, rebuilt
// after a change.
type typeIndex struct {
	dirty bool
	list  []*member
	sel   *discovery.Selector[*member]
}

// ownership is an account bound to a node: the session it is owned in.
type ownership struct {
	sid    uint64
	paused bool
}

// Node is a game-service node of a Cluster. It implements common.INode
// as package node's Node does, against the cluster's gateway and players
// instead of the network; see the package documentation for what runs
// when. All methods are safe for concurrent use and none blocks except
// WaitReady; sends queue and return.
type Node struct {
	c   *Cluster
	id  common.NodeID
	typ common.NodeType
	bad error      // why Start fails, from AddNodeWith
	rnd *rand.Rand // seeds the selectors; guarded by c.mu

	// Guarded by c.mu.
	self  *info
	state nodeState
	relay bool
	view  map[common.NodeID]*member
	index map[common.NodeType]*typeIndex
	owned map[string]*ownership
	kept  []func() // player messages sent before Start

	onJoin, onLeave, onUpd []common.FuncTypeOnMember
	onRelay                common.FuncTypeOnRelayMsg
	onCall                 common.FuncTypeOnCall
	onLose                 common.FuncTypeOnLoseAccount
	onAway, onBack         common.FuncTypeOnAccount
	onUndeliv              common.FuncTypeOnUndeliverable

	link lane // its gateway link's goroutine
	disp lane // its dispatcher's goroutine

	ready chan struct{} // closed by Start or Close
}

// callbacks runs fs(arg) as callbacks of lane l.
func callbacks[T any](c *Cluster, l *lane, fs []func(T), arg T) {
	if len(fs) == 0 {
		return
	}
	c.inLane(l, func() {
		for _, f := range fs {
			f(arg)
		}
	})
}

var _ common.INode = (*Node)(nil)

// --- self ---

func (n *Node) selfInfo() *info {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.self
}

// GetID returns the node's ID.
func (n *Node) GetID() common.NodeID { return n.id }

// GetType returns the node's type.
func (n *Node) GetType() common.NodeType { return n.typ }

// GetIP returns the inner or outer address.
func (n *Node) GetIP(i common.IPType) string { return (&member{info: n.selfInfo()}).GetIP(i) }

// GetPort returns port slot i.
func (n *Node) GetPort(i int) int32 { return (&member{info: n.selfInfo()}).GetPort(i) }

// GetOverload returns load slot i.
func (n *Node) GetOverload(i int) uint32 { return (&member{info: n.selfInfo()}).GetOverload(i) }

// GetVersion returns the node's version.
func (n *Node) GetVersion() string { return n.selfInfo().version }

// SendMsg sends msg to the node itself, through the gateway.
func (n *Node) SendMsg(cmd uint64, msg proto.Message) error { return n.SendByID(n.id, cmd, msg) }

// SetOverload sets load slot i (0–15). The other members see the new
// value, and their update callbacks run, as the queue reaches it.
func (n *Node) SetOverload(i int, v uint32) {
	if i < 0 || i >= 16 {
		return
	}
	n.setSelf(func(in *info) {
		if len(in.overload) <= i {
			in.overload = append(in.overload, make([]uint32, i+1-len(in.overload))...)
		}
		in.overload[i] = v
	})
}

// SetVersion sets the node's version; propagated as SetOverload is.
func (n *Node) SetVersion(v string) { n.setSelf(func(in *info) { in.version = v }) }

func (n *Node) setSelf(f func(*info)) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.state == nodeClosed {
		return
	}
	n.self = n.self.with(f)
	n.view[n.id] = &member{viewer: n, info: n.self}
	n.dirtyLocked(n.typ)
	if n.state != nodeStarted {
		return
	}
	in := n.self
	for _, o := range c.nodes {
		if o != n && o.state == nodeStarted {
			o.postMemberLocked(in)
		}
	}
}

// --- lifecycle ---

// Start registers the node: its member list is filled at once (join
// callbacks for every member already there are queued) and the other
// members learn of it as the queue runs. It returns ErrStarted on a node
// started or closed before, and ErrConfig for a bad NodeConfig.
func (n *Node) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.bad != nil {
		return n.bad
	}
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.state != nodeNew {
		return ErrStarted
	}
	n.state = nodeStarted
	close(n.ready)
	for _, in := range c.registeredLocked() {
		if in.id == n.id {
			continue
		}
		m := &member{viewer: n, info: in}
		n.view[in.id] = m
		n.dirtyLocked(in.typ)
		c.postOnLocked(&n.disp, func() {
			c.mu.Lock()
			fs := n.onJoin
			if n.state != nodeStarted {
				fs = nil
			}
			c.mu.Unlock()
			callbacks(c, &n.disp, memberFuncs(fs), common.Member(m))
		})
	}
	for _, o := range c.nodes {
		if o != n && o.state == nodeStarted {
			o.postMemberLocked(n.self)
		}
	}
	for _, ev := range n.kept {
		c.postLocked(ev)
	}
	n.kept = nil
	return nil
}

// WaitReady returns nil once the node is started (Start fills the member
// list at once), common.ErrClosed once it is closed, or ctx's error while
// neither happened.
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.state == nodeClosed {
		return common.ErrClosed
	}
	return nil
}

// Close leaves the cluster: the other members see it leave, its players
// are rebound at their next message, and none of its callbacks runs
// again. Safe twice.
func (n *Node) Close() error {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.state != nodeClosed {
		c.stopNodeLocked(n)
	}
	return nil
}

// --- members ---

// postMemberLocked queues n learning that in joined, or changed when n
// knows it already: its view changes and its callbacks run when the queue
// reaches it.
func (n *Node) postMemberLocked(in *info) {
	n.c.postOnLocked(&n.disp, func() {
		c := n.c
		c.mu.Lock()
		if n.state != nodeStarted {
			c.mu.Unlock()
			return
		}
		m := &member{viewer: n, info: in}
		old, known := n.view[in.id]
		n.view[in.id] = m
		n.dirtyLocked(in.typ)
		fs := n.onJoin
		if known {
			if old.info.typ != in.typ {
				n.dirtyLocked(old.info.typ)
			}
			fs = n.onUpd
		}
		c.mu.Unlock()
		callbacks(c, &n.disp, memberFuncs(fs), common.Member(m))
	})
}

// postLeaveLocked queues n learning that id left.
func (n *Node) postLeaveLocked(id common.NodeID) {
	n.c.postOnLocked(&n.disp, func() {
		c := n.c
		c.mu.Lock()
		m := n.view[id]
		if n.state != nodeStarted || m == nil {
			c.mu.Unlock()
			return
		}
		delete(n.view, id)
		n.dirtyLocked(m.info.typ)
		fs := n.onLeave
		c.mu.Unlock()
		callbacks(c, &n.disp, memberFuncs(fs), common.Member(m))
	})
}

func memberFuncs(fs []common.FuncTypeOnMember) []func(common.Member) {
	out := make([]func(common.Member), len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

func (n *Node) dirtyLocked(t common.NodeType) {
	ti := n.index[t]
	if ti == nil {
		ti = &typeIndex{sel: discovery.NewSelector[*member](rand.New(rand.NewSource(n.rnd.Int63())))}
		n.index[t] = ti
	}
	ti.dirty = true
}

func (n *Node) indexLocked(t common.NodeType) *typeIndex {
	ti := n.index[t]
	if ti == nil || !ti.dirty {
		return ti
	}
	ti.list = ti.list[:0]
	for _, m := range n.view {
		if m.info.typ == t {
			ti.list = append(ti.list, m)
		}
	}
	sort.Slice(ti.list, func(i, j int) bool { return ti.list[i].Key() < ti.list[j].Key() })
	ti.sel.Update(ti.list)
	ti.dirty = false
	return ti
}

func (n *Node) pick(t common.NodeType, mode discovery.Mode, key string) (*member, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	ti := n.indexLocked(t)
	if ti == nil {
		return nil, fmt.Errorf("%w: no member of type %s", common.ErrNoNode, t)
	}
	m, err := ti.sel.Get(mode, key)
	if err != nil {
		return nil, fmt.Errorf("%w: type %s: %v", common.ErrNoNode, t, err)
	}
	return m, nil
}

// GetNodeOne returns one member of type t chosen by Config.Selector, or
// nil.
func (n *Node) GetNodeOne(t common.NodeType) common.Member {
	m, err := n.pick(t, n.c.cfg.Selector, "")
	if err != nil {
		return nil
	}
	return m
}

// GetNodeByKey returns the member of type t key maps to on the same
// consistent-hash ring as package node's, or nil.
func (n *Node) GetNodeByKey(t common.NodeType, key string) common.Member {
	m, err := n.pick(t, discovery.ConsistentHash, key)
	if err != nil {
		return nil
	}
	return m
}

// GetNodeList returns every member of type t this node knows, sorted by
// ID.
func (n *Node) GetNodeList(t common.NodeType) []common.Member {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	ti := n.indexLocked(t)
	if ti == nil || len(ti.list) == 0 {
		return nil
	}
	out := make([]common.Member, len(ti.list))
	for i, m := range ti.list {
		out[i] = m
	}
	return out
}

// GetNodeAll returns every member this node knows, itself included,
// sorted by type then ID.
func (n *Node) GetNodeAll() []common.Member {
	n.c.mu.Lock()
	ms := make([]*member, 0, len(n.view))
	for _, m := range n.view {
		ms = append(ms, m)
	}
	n.c.mu.Unlock()
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].info.typ != ms[j].info.typ {
			return ms[i].info.typ < ms[j].info.typ
		}
		return ms[i].Key() < ms[j].Key()
	})
	out := make([]common.Member, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// GetNode returns the member with that ID, or nil.
func (n *Node) GetNode(id common.NodeID) common.Member {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if m, ok := n.view[id]; ok {
		return m
	}
	return nil
}

// HaveNode reports whether the member is known.
func (n *Node) HaveNode(id common.NodeID) bool {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	_, ok := n.view[id]
	return ok
}

// PrintNodeInfo logs every member of type t.
func (n *Node) PrintNodeInfo(log common.ILogger, t common.NodeType) {
	for _, m := range n.GetNodeList(t) {
		printMember(log, m.(*member))
	}
}

// PrintAllNodeInfo logs every member.
func (n *Node) PrintAllNodeInfo(log common.ILogger) {
	for _, m := range n.GetNodeAll() {
		printMember(log, m.(*member))
	}
}

func printMember(log common.ILogger, m *member) {
	log.Infof("node id=%s type=%s inner=%s outer=%s ports=%v overload=%v version=%q",
		m.info.id, m.info.typ, m.GetIP(common.IPInner), m.GetIP(common.IPOuter), m.info.ports, m.info.overload, m.info.version)
}

// RegisterFuncOnJoin adds a callback for members joining (at Start, one
// per member already there).
func (n *Node) RegisterFuncOnJoin(f common.FuncTypeOnMember) {
	n.c.mu.Lock()
	n.onJoin = append(n.onJoin, f)
	n.c.mu.Unlock()
}

// RegisterFuncOnLeave adds a callback for members leaving or killed.
func (n *Node) RegisterFuncOnLeave(f common.FuncTypeOnMember) {
	n.c.mu.Lock()
	n.onLeave = append(n.onLeave, f)
	n.c.mu.Unlock()
}

// RegisterFuncOnUpdate adds a callback for members changing overload or
// version.
func (n *Node) RegisterFuncOnUpdate(f common.FuncTypeOnMember) {
	n.c.mu.Lock()
	n.onUpd = append(n.onUpd, f)
	n.c.mu.Unlock()
}

// --- callbacks ---

// RegisterFuncOnRelayMsg sets the handler of players' and nodes' messages.
func (n *Node) RegisterFuncOnRelayMsg(f common.FuncTypeOnRelayMsg) {
	n.c.mu.Lock()
	n.onRelay = f
	n.c.mu.Unlock()
}

// RegisterFuncOnLoseAccount sets the lose-account handler: once per
// ownership, when the session ends or the account is bound elsewhere.
func (n *Node) RegisterFuncOnLoseAccount(f common.FuncTypeOnLoseAccount) {
	n.c.mu.Lock()
	n.onLose = f
	n.c.mu.Unlock()
}

// RegisterFuncOnDisconnect sets the handler for an owned account's client
// going away with a session that may resume.
func (n *Node) RegisterFuncOnDisconnect(f common.FuncTypeOnAccount) {
	n.c.mu.Lock()
	n.onAway = f
	n.c.mu.Unlock()
}

// RegisterFuncOnResume sets the handler for an owned account's client
// coming back.
func (n *Node) RegisterFuncOnResume(f common.FuncTypeOnAccount) {
	n.c.mu.Lock()
	n.onBack = f
	n.c.mu.Unlock()
}

// RegisterFuncOnUndeliverable sets the handler of messages that could not
// be delivered.
func (n *Node) RegisterFuncOnUndeliverable(f common.FuncTypeOnUndeliverable) {
	n.c.mu.Lock()
	n.onUndeliv = f
	n.c.mu.Unlock()
}

// EnableMessageRelay links the node to the gateway (or unlinks it).
// Unlinked, it sends nothing, receives nothing from players or nodes and
// is not chosen for players' messages.
func (n *Node) EnableMessageRelay(v bool) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if v && !n.relay && n.state == nodeStarted {
		n.relinkLocked()
	}
	n.relay = v
}

// linkedLocked reports whether the gateway can reach n.
func (n *Node) linkedLocked() bool { return n.state == nodeStarted && n.relay }

// --- sends ---

// sendCheckLocked is what every send checks first.
func (n *Node) sendCheckLocked() error {
	switch {
	case n.state == nodeClosed:
		return common.ErrClosed
	case !n.relay:
		return common.ErrRelayDisabled
	}
	return nil
}

func marshal(msg proto.Message) ([]byte, error) {
	if msg == nil {
		return nil, nil
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("nodetest: marshal: %w", err)
	}
	return append([]byte(nil), b...), nil
}

// SendByID sends msg to one member through the gateway. It fails when the
// member is not in this node's list (common.ErrNoNode); a member gone by
// the time the message arrives is reported to the undeliverable handler.
func (n *Node) SendByID(id common.NodeID, cmd uint64, msg proto.Message) error {
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.nodeSendCheckLocked(); err != nil {
		return err
	}
	if n.view[id] == nil {
		return fmt.Errorf("%w: %s", common.ErrNoNode, id)
	}
	n.postNodeMsgLocked(id, cmd, data)
	return nil
}

func (n *Node) nodeSendCheckLocked() error {
	if err := n.sendCheckLocked(); err != nil {
		return err
	}
	if n.state != nodeStarted {
		return fmt.Errorf("%w: not started", common.ErrNoGateway)
	}
	return nil
}

// SendOne sends msg to one member of type t chosen by Config.Selector.
func (n *Node) SendOne(t common.NodeType, cmd uint64, msg proto.Message) error {
	n.c.mu.Lock()
	err := n.nodeSendCheckLocked()
	n.c.mu.Unlock()
	if err != nil {
		return err
	}
	m, err := n.pick(t, n.c.cfg.Selector, "")
	if err != nil {
		return err
	}
	return n.SendByID(m.info.id, cmd, msg)
}

// SendOneByKey sends msg to the member of type t that key maps to on the
// same consistent-hash ring as package node's (GetNodeByKey).
func (n *Node) SendOneByKey(t common.NodeType, key string, cmd uint64, msg proto.Message) error {
	n.c.mu.Lock()
	err := n.nodeSendCheckLocked()
	n.c.mu.Unlock()
	if err != nil {
		return err
	}
	m, err := n.pick(t, discovery.ConsistentHash, key)
	if err != nil {
		return err
	}
	return n.SendByID(m.info.id, cmd, msg)
}

// SendByType sends msg to every member of type t (itself too unless
// excludeSelf); common.ErrNoNode when there is none.
func (n *Node) SendByType(t common.NodeType, cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.sendMany(func(m *member) bool { return m.info.typ == t }, cmd, msg, excludeSelf, t.String())
}

// SendAll sends msg to every member but the gateway (itself too unless
// excludeSelf).
func (n *Node) SendAll(cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.sendMany(func(m *member) bool { return m.info.typ != common.Gateway }, cmd, msg, excludeSelf, "any type")
}

func (n *Node) sendMany(match func(*member) bool, cmd uint64, msg proto.Message, excludeSelf bool, what string) error {
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	ms := n.GetNodeAll()
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.nodeSendCheckLocked(); err != nil {
		return err
	}
	sent := 0
	for _, cm := range ms {
		m := cm.(*member)
		if !match(m) || excludeSelf && m.info.id == n.id {
			continue
		}
		sent++
		n.postNodeMsgLocked(m.info.id, cmd, data)
	}
	if sent == 0 {
		return fmt.Errorf("%w: no member of %s", common.ErrNoNode, what)
	}
	return nil
}

// postNodeMsgLocked queues a node message to id: when it arrives, id's
// relay handler runs, or n hears it was undeliverable.
func (n *Node) postNodeMsgLocked(to common.NodeID, cmd uint64, data []byte) {
	c := n.c
	src := n.self
	c.postDynLocked(func() *lane { return c.linkOfLocked(to) }, func() {
		c.mu.Lock()
		dst := c.byID[to]
		if dst == nil || !dst.linkedLocked() {
			n.postUndeliverableLocked(common.Undeliverable{To: to, Cmd: cmd, Code: wire.CodeNoNode})
			c.mu.Unlock()
			return
		}
		from := dst.view[src.id]
		if from == nil {
			from = &member{viewer: dst, info: &info{id: src.id, typ: src.typ}}
		}
		f := dst.onRelay
		c.mu.Unlock()
		if f != nil {
			c.inLane(&dst.link, func() { f(src.typ, from, "", cmd, append([]byte(nil), data...)) })
		}
	})
}

// linkOfLocked is the link lane of node id, nil when the gateway cannot
// reach it.
func (c *Cluster) linkOfLocked(id common.NodeID) *lane {
	if n := c.byID[id]; n != nil && n.linkedLocked() {
		return &n.link
	}
	return nil
}

// postUndeliverableLocked queues the undeliverable callback of n.
func (n *Node) postUndeliverableLocked(u common.Undeliverable) {
	n.c.postOnLocked(&n.link, func() {
		n.c.mu.Lock()
		f := n.onUndeliv
		ok := n.linkedLocked()
		n.c.mu.Unlock()
		if ok && f != nil {
			n.c.inLane(&n.link, func() { f(u) })
		}
	})
}

// SendClientMsgByRelay sends data to a player through the gateway. It
// only queues: the player gets it when the queue reaches it, in order
// with this node's other messages to the account; while the player is
// away the message waits for its Resume. An account without a session
// (or whose session ends before the message gets there) is reported to
// the undeliverable handler. Before Start the message is kept and sent
// at Start.
func (n *Node) SendClientMsgByRelay(account string, cmd uint64, data []byte) error {
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	data = append([]byte(nil), data...)
	return n.toGateway(func() { n.c.gatewayPush(n, account, cmd, data) })
}

// BroadcastClientMsg sends data to every player online; players away get
// it when they resume.
func (n *Node) BroadcastClientMsg(cmd uint64, data []byte) error {
	data = append([]byte(nil), data...)
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.nodeSendCheckLocked(); err != nil {
		return err
	}
	n.c.postLocked(func() { n.c.gatewayBroadcast(n, cmd, data) })
	return nil
}

// Kick ends a player's session after this node's earlier messages to it:
// the player gets a kick with code 8 (Kicked) and reason, cannot resume,
// and the nodes it was bound to lose the account. A player without a
// session is left alone.
func (n *Node) Kick(account, reason string) error {
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	return n.toGateway(func() { n.c.gatewayKick(account, wire.CodeKicked, reason) })
}

// toGateway queues ev, or keeps it until Start.
func (n *Node) toGateway(ev func()) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.sendCheckLocked(); err != nil {
		return err
	}
	if n.state == nodeNew {
		n.kept = append(n.kept, ev)
		return nil
	}
	n.c.postLocked(ev)
	return nil
}

// --- account events, from the gateway ---

// postOnlineLocked queues the gateway telling n that account is bound to
// it and online in session sid (resumed: back after a disconnect).
// Account events reach a node only while it is linked; see relinkLocked.
func (n *Node) postOnlineLocked(account string, sid uint64, resumed bool) {
	n.c.postOnLocked(&n.link, func() {
		c := n.c
		c.mu.Lock()
		if !n.linkedLocked() {
			c.mu.Unlock()
			return
		}
		o := n.owned[account]
		back := resumed && o != nil && o.sid == sid && o.paused
		n.owned[account] = &ownership{sid: sid}
		f := n.onBack
		c.mu.Unlock()
		if back && f != nil {
			c.inLane(&n.link, func() { f(account) })
		}
	})
}

// postPausedLocked queues the gateway telling n that account's client is
// away.
func (n *Node) postPausedLocked(account string, sid uint64) {
	n.c.postOnLocked(&n.link, func() {
		c := n.c
		c.mu.Lock()
		o := n.owned[account]
		if !n.linkedLocked() || o == nil || o.sid != sid || o.paused {
			c.mu.Unlock()
			return
		}
		o.paused = true
		f := n.onAway
		c.mu.Unlock()
		if f != nil {
			c.inLane(&n.link, func() { f(account) })
		}
	})
}

// postLoseLocked queues the gateway telling n that account is no longer
// bound to it in session sid.
func (n *Node) postLoseLocked(account string, sid uint64) {
	n.c.postOnLocked(&n.link, func() {
		c := n.c
		c.mu.Lock()
		o := n.owned[account]
		if !n.linkedLocked() || o == nil || o.sid != sid {
			c.mu.Unlock()
			return
		}
		delete(n.owned, account)
		f := n.onLose
		c.mu.Unlock()
		if f != nil {
			c.inLane(&n.link, func() { f(account) })
		}
	})
}

// relinkLocked queues what the gateway tells a node whose link came back
// (relay enabled again): every session bound to it is online (or away),
// and an account it owned that is no longer its is lost.
func (n *Node) relinkLocked() {
	c := n.c
	c.postLocked(func() {
		c.mu.Lock()
		if !n.linkedLocked() {
			c.mu.Unlock()
			return
		}
		var lost []string
		for acc, o := range n.owned {
			s := c.sessions[acc]
			if s == nil || s.sid != o.sid || c.binds[acc].ids[n.typ] != n.id {
				lost = append(lost, acc)
			}
		}
		sort.Strings(lost)
		for _, acc := range lost {
			n.postLoseLocked(acc, n.owned[acc].sid)
		}
		var accs []string
		for acc, s := range c.sessions {
			if c.binds[acc].ids[n.typ] == n.id && (n.owned[acc] == nil || n.owned[acc].sid != s.sid) {
				accs = append(accs, acc)
			}
		}
		sort.Strings(accs)
		for _, acc := range accs {
			s := c.sessions[acc]
			n.owned[acc] = &ownership{sid: s.sid}
			if s.away {
				n.postPausedLocked(acc, s.sid)
			}
		}
		c.mu.Unlock()
	})
}

// Owns reports whether account is bound to this node now, as far as the
// node has heard: from the gateway's "online" until lose-account.
func (n *Node) Owns(account string) bool {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.owned[account] != nil
}
