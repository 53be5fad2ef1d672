package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/login"
	pb "github.com/xserver/xserver/proto"
)

// relay keeps one data link to every gateway in the membership and sends
// node messages through the head of a Consul-style server list: on a
// failed write the head is reported failed and the send retried once on
// the new head; the list is reshuffled periodically (RebalanceServers with
// a ping over the link) so load spreads over gateways.
type relay struct {
	n   *Node
	mgr *discovery.Manager[*gwLink]

	mu       sync.Mutex // guards enabled, links, dialing, accounts
	enabled  bool
	links    map[common.NodeID]*gwLink
	dialing  map[common.NodeID]bool
	accounts map[string]holder // account → gateway holding it (learned; aged out)

	kick chan struct{} // membership or enablement changed: reconcile
	wg   sync.WaitGroup

	undeliverable uint64 // notices received (n.mu is not needed: atomic via mu)
}

func newRelay(n *Node) *relay {
	r := &relay{n: n, links: make(map[common.NodeID]*gwLink), dialing: make(map[common.NodeID]bool),
		accounts: make(map[string]holder), kick: make(chan struct{}, 1)}
	r.mgr = discovery.NewManager(discovery.ManagerConfig[*gwLink]{
		Pinger:       r,
		Cluster:      clusterSize{n},
		MinRebalance: n.cfg.RelayRebalance,
		Logger:       n.log,
	})
	return r
}

type clusterSize struct{ n *Node }

func (c clusterSize) NumNodes() int { return c.n.NumMembers() }

func (r *relay) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run reconciles the links with the gateway members until the node stops.
func (r *relay) run(ctx context.Context) {
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.mgr.Run(ctx) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.reconcile(ctx)
		select {
		case <-r.kick:
		case now := <-t.C:
			r.sweep(now)
		case <-ctx.Done():
			r.mu.Lock()
			links := make([]*gwLink, 0, len(r.links))
			for _, l := range r.links {
				links = append(links, l)
			}
			r.mu.Unlock()
			for _, l := range links {
				l.leave()
			}
			r.wg.Wait()
			return
		}
	}
}

// reconcile dials gateways not yet linked and drops links to gateways that
// left (or all of them when relay is disabled).
func (r *relay) reconcile(ctx context.Context) {
	want := make(map[common.NodeID]common.Member)
	r.mu.Lock()
	enabled := r.enabled
	r.mu.Unlock()
	if enabled {
		for _, m := range r.n.GetNodeList(common.Gateway) {
			if m.GetID() != r.n.cfg.ID {
				want[m.GetID()] = m
			}
		}
	}
	r.mu.Lock()
	var drop []*gwLink
	for id, l := range r.links {
		if _, ok := want[id]; !ok {
			drop = append(drop, l)
		}
	}
	var dial []common.Member
	for id, m := range want {
		if r.links[id] == nil && !r.dialing[id] {
			r.dialing[id] = true
			dial = append(dial, m)
		}
	}
	r.mu.Unlock()
	for _, l := range drop {
		l.leave()
	}
	for _, m := range dial {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.link(ctx, m)
		}()
	}
}

// link dials one gateway and serves the link until it ends.
func (r *relay) link(ctx context.Context, m common.Member) {
	n := r.n
	id := m.GetID()
	defer func() {
		r.mu.Lock()
		delete(r.dialing, id)
		r.mu.Unlock()
	}()
	addr := net.JoinHostPort(m.GetIP(common.IPInner), strconv.Itoa(int(m.GetPort(2))))
	c, err := n.dial(ctx, addr)
	if err != nil {
		n.log.WithError(err).WithField("gateway", id.String()).Debug("gateway dial failed")
		return
	}
	l := &gwLink{r: r, id: id, conn: c, out: intranet.NewOutbox(n.cfg.RelayQueueBytes), stop: make(chan struct{}),
		pong: make(chan struct{}, 1), log: n.log.WithField("gateway", id.String())}
	l.serve(ctx)
}

// gwLink is the data link to one gateway.
type gwLink struct {
	r    *relay
	id   common.NodeID
	conn net.Conn
	out  *intranet.Outbox
	log  logrus.FieldLogger
	stop chan struct{}
	once sync.Once
	pong chan struct{} // a pong arrived (for the rebalance pinger)
}

// Key makes a link a discovery.Server: one per gateway.
func (l *gwLink) Key() string { return l.id.String() }

func (l *gwLink) close() {
	l.once.Do(func() { close(l.stop) })
	_ = l.conn.Close()
}

// leave says goodbye, flushes briefly and closes.
func (l *gwLink) leave() {
	f, _ := wire.Frame(wire.KindLeave, &pb.Leave{})
	l.out.CloseWith(f)
	select {
	case <-l.out.Done():
	case <-time.After(time.Second):
	}
	l.close()
}

// Ping implements discovery.Pinger over a link: a ping answered within the
// context's deadline (default one second) means healthy.
func (r *relay) Ping(ctx context.Context, l *gwLink) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	select { // drop a stale pong
	case <-l.pong:
	default:
	}
	f, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
	if !l.out.Append(f) {
		return false, common.ErrNotConnected
	}
	select {
	case <-l.pong:
		return true, nil
	case <-l.stop:
		return false, common.ErrNotConnected
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (l *gwLink) serve(ctx context.Context) {
	r, n := l.r, l.r.n
	defer l.close()
	rd := wire.NewReader(l.conn, n.cfg.MaxFrame, 64<<10)
	_ = l.conn.SetReadDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	kind, p, err := rd.ReadFrame()
	var hello pb.Hello
	if err != nil || kind != wire.KindHello || hello.Unmarshal(p) != nil {
		l.log.WithError(err).Warn("gateway handshake failed")
		return
	}
	if hello.PingIntervalMs <= 0 || hello.PingMisses == 0 {
		l.log.Warn("gateway sent no heartbeat settings")
		return
	}
	interval := time.Duration(hello.PingIntervalMs) * time.Millisecond
	silence := time.Duration(hello.PingMisses) * interval
	n.mu.Lock()
	info := n.self.info
	n.mu.Unlock()
	f, _ := wire.Frame(wire.KindRegister, &pb.Register{Mac: intranet.MAC(n.cfg.Secret, hello.Nonce, n.cfg.ID.Bytes()), Info: info})
	l.out.Force(f)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.out.WriteLoop(l.conn, silence, l.stop); err != nil {
			l.close()
		}
	}()
	kind, p, err = rd.ReadFrame()
	if err != nil || kind != wire.KindAccepted {
		if kind == wire.KindError {
			err = peerError(p)
		}
		l.log.WithError(err).Warn("gateway refused the link")
		return
	}
	r.mu.Lock()
	r.links[l.id] = l
	r.mu.Unlock()
	r.mgr.AddServer(l)
	l.log.Info("linked to gateway")
	defer func() {
		r.mgr.RemoveServer(l)
		r.mu.Lock()
		if r.links[l.id] == l {
			delete(r.links, l.id)
		}
		r.mu.Unlock()
		l.log.Info("gateway link closed")
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: time.Now().UnixNano()})
				l.out.Append(f)
			case <-l.stop:
				return
			}
		}
	}()
	dl := intranet.NewLazyDeadline(l.conn, silence)
	for {
		dl.Arm()
		kind, p, err := rd.ReadFrame()
		if err != nil {
			select {
			case <-l.stop:
			default:
				l.log.WithError(err).Info("gateway link lost")
			}
			return
		}
		if err := l.handle(kind, p); err != nil {
			var pe *PeerError
			if errors.As(err, &pe) && pe.Code == intranet.CodeShutdown {
				l.log.Info("gateway shutting down")
			} else if errors.As(err, &pe) {
				l.log.WithError(err).Warn("gateway closed the link")
			} else {
				l.log.WithError(err).Warn("bad frame from gateway; dropping the link")
			}
			return
		}
	}
}

func (l *gwLink) handle(kind wire.Kind, p []byte) error {
	r, n := l.r, l.r.n
	switch kind {
	case wire.KindFromClient:
		account, cmd, data, err := wire.DecodeAccountMsg(p)
		if err != nil {
			return err
		}
		r.learn(account, l.id)
		if f := n.relayFunc(); f != nil {
			f(common.Client, nil, string(account), cmd, data)
		}
	case wire.KindNodeMsg:
		m, err := wire.DecodeNodeMsg(p)
		if err != nil {
			return err
		}
		if f := n.relayFunc(); f != nil {
			f(m.SrcType, n.memberOrStub(m.Src, m.SrcType), "", m.Cmd, m.Data)
		}
	case wire.KindLoseAccount:
		a, err := wire.DecodeAccount(p)
		if err != nil {
			return err
		}
		account := string(a)
		r.mu.Lock()
		if r.accounts[account].gw == l.id {
			delete(r.accounts, account)
		}
		r.mu.Unlock()
		n.mu.Lock()
		f := n.onLose
		n.mu.Unlock()
		if f != nil {
			f(account)
		}
	case wire.KindAccountOnline:
		a, err := wire.DecodeAccount(p)
		if err != nil {
			return err
		}
		r.learn(a, l.id)
	case wire.KindUndeliverable:
		to, cmd, code, err := wire.DecodeUndeliverable(p)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.undeliverable++
		r.mu.Unlock()
		l.log.WithFields(logrus.Fields{"to": to.String(), "cmd": cmd, "why": wire.CodeText(code)}).Warn("node message undeliverable")
	case wire.KindPing:
		var m pb.Ping
		if err := m.Unmarshal(p); err != nil {
			return fmt.Errorf("%w: ping", common.ErrBadInput)
		}
		f, _ := wire.Frame(wire.KindPong, &pb.Pong{UnixNano: m.UnixNano})
		l.out.Append(f)
	case wire.KindPong:
		select {
		case l.pong <- struct{}{}:
		default:
		}
	case wire.KindError:
		return peerError(p)
	default:
		return fmt.Errorf("%w: unexpected %s frame from gateway", common.ErrBadInput, kind)
	}
	return nil
}

// holder is a learned account → gateway entry. It is trusted for
// holderTTL after it was last confirmed (by the account's traffic or a
// Redis lookup); after that the next send looks the account up again, so a
// player who moved to another gateway is found within the TTL and the map
// holds only recently active accounts.
type holder struct {
	gw   common.NodeID
	seen int64 // unix nanoseconds, last confirmation
}

const holderTTL = 15 * time.Second

// learn records which gateway holds account (no allocation when known).
func (r *relay) learn(account []byte, gw common.NodeID) {
	now := time.Now().UnixNano()
	r.mu.Lock()
	if cur, ok := r.accounts[string(account)]; !ok || cur.gw != gw || now-cur.seen > int64(time.Second) {
		r.accounts[string(account)] = holder{gw: gw, seen: now}
	}
	r.mu.Unlock()
}

// sweep drops entries not confirmed within the TTL.
func (r *relay) sweep(now time.Time) {
	cut := now.Add(-holderTTL).UnixNano()
	r.mu.Lock()
	for a, h := range r.accounts {
		if h.seen < cut {
			delete(r.accounts, a)
		}
	}
	r.mu.Unlock()
}

func (n *Node) relayFunc() common.FuncTypeOnRelayMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.onRelay
}

// memberOrStub returns the member, or a minimal one when the sender is not
// (yet) in this node's view.
func (n *Node) memberOrStub(id common.NodeID, t common.NodeType) common.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m, ok := n.members[id]; ok {
		return m
	}
	return &member{n: n, id: id, info: &pb.NodeInfo{Id: id.Bytes(), Type: uint32(t)}}
}

// --- public messaging API ---

// EnableMessageRelay turns gateway links on or off. It may be called
// before or after Start.
func (n *Node) EnableMessageRelay(v bool) {
	n.rl.mu.Lock()
	n.rl.enabled = v
	n.rl.mu.Unlock()
	n.rl.poke()
}

// RegisterFuncOnRelayMsg sets the handler of relayed messages. It runs on
// the receiving link's goroutine, in arrival order (so a player's messages
// arrive in the order they were sent); keep it quick or hand work off.
func (n *Node) RegisterFuncOnRelayMsg(f common.FuncTypeOnRelayMsg) {
	n.mu.Lock()
	n.onRelay = f
	n.mu.Unlock()
}

// RegisterFuncOnLoseAccount sets the lose-account handler; it runs on the
// link goroutine, after every message of that session.
func (n *Node) RegisterFuncOnLoseAccount(f common.FuncTypeOnLoseAccount) {
	n.mu.Lock()
	n.onLose = f
	n.mu.Unlock()
}

// GatewayLinks is the number of gateways linked for relay.
func (n *Node) GatewayLinks() int { return n.rl.mgr.NumServers() }

// Undeliverable counts node messages gateways reported undeliverable.
func (n *Node) Undeliverable() uint64 {
	n.rl.mu.Lock()
	defer n.rl.mu.Unlock()
	return n.rl.undeliverable
}

func (n *Node) relayCheck() error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return common.ErrClosed
	}
	n.rl.mu.Lock()
	defer n.rl.mu.Unlock()
	if !n.rl.enabled {
		return common.ErrRelayDisabled
	}
	return nil
}

// sendVia hands a frame to the head gateway; on failure it reports the
// head failed and retries once on the new head.
func (r *relay) sendVia(size int, fill func([]byte)) error {
	l, ok := r.mgr.FindServer()
	if !ok {
		return common.ErrNoGateway
	}
	if l.out.AppendWith(size, fill) {
		return nil
	}
	r.mgr.NotifyFailedServer(l)
	l2, ok := r.mgr.FindServer()
	if !ok || l2 == l {
		return fmt.Errorf("%w: gateway %s not accepting", common.ErrNoGateway, l.id)
	}
	if l2.out.AppendWith(size, fill) {
		return nil
	}
	r.mgr.NotifyFailedServer(l2)
	return fmt.Errorf("%w: gateways %s and %s not accepting", common.ErrNoGateway, l.id, l2.id)
}

func (n *Node) sendNode(to common.NodeID, cmd uint64, data []byte) error {
	m := wire.NodeMsg{SrcType: n.cfg.Type, Src: n.cfg.ID, Dst: to, Cmd: cmd, Data: data}
	return n.rl.sendVia(wire.NodeMsgSize(len(data)), func(b []byte) { wire.AppendNodeMsg(b[:0], &m) })
}

func marshal(msg proto.Message) ([]byte, error) {
	if msg == nil {
		return nil, nil
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("node: marshal: %w", err)
	}
	return b, nil
}

// SendByID sends msg to one member through a gateway.
func (n *Node) SendByID(id common.NodeID, cmd uint64, msg proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if !n.HaveNode(id) {
		return fmt.Errorf("%w: %s", common.ErrNoNode, id)
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	return n.sendNode(id, cmd, data)
}

// SendOne sends msg to one member of type t chosen by the selector.
func (n *Node) SendOne(t common.NodeType, cmd uint64, msg proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	m, err := n.pick(t, n.cfg.Selector, "")
	if err != nil {
		return err
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	return n.sendNode(m.id, cmd, data)
}

// SendByType sends msg to every member of type t. It returns the first
// error; the other members are still tried.
func (n *Node) SendByType(t common.NodeType, cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.sendMany(func(m common.Member) bool { return m.GetType() == t }, cmd, msg, excludeSelf, t.String())
}

// SendAll sends msg to every member except gateways (which relay but do
// not receive node messages).
func (n *Node) SendAll(cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.sendMany(func(m common.Member) bool { return m.GetType() != common.Gateway }, cmd, msg, excludeSelf, "any type")
}

func (n *Node) sendMany(match func(common.Member) bool, cmd uint64, msg proto.Message, excludeSelf bool, what string) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	data, err := marshal(msg)
	if err != nil {
		return err
	}
	var first error
	sent := 0
	for _, m := range n.GetNodeAll() {
		if !match(m) || excludeSelf && m.GetID() == n.cfg.ID {
			continue
		}
		sent++
		if err := n.sendNode(m.GetID(), cmd, data); err != nil && first == nil {
			first = err
		}
	}
	if sent == 0 {
		return fmt.Errorf("%w: no member of %s", common.ErrNoNode, what)
	}
	return first
}

// holder finds the link of the gateway holding account: learned from its
// traffic, else from Redis.
func (r *relay) holder(account string) (*gwLink, error) {
	r.mu.Lock()
	h, ok := r.accounts[account]
	l := r.links[h.gw]
	r.mu.Unlock()
	if ok && l != nil && time.Since(time.Unix(0, h.seen)) < holderTTL {
		return l, nil
	}
	n := r.n
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.DialTimeout)
	defer cancel()
	s, err := n.cfg.Redis.Get(ctx, login.KeysFor(n.cfg.Cluster, account).Holder).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: account %q is not online", common.ErrNoNode, account)
	}
	if err != nil {
		return nil, fmt.Errorf("node: find account's gateway: %w", err)
	}
	id, err := common.ParseNodeID(s)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	l = r.links[id]
	if l != nil {
		r.accounts[account] = holder{gw: id, seen: time.Now().UnixNano()}
	}
	r.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("%w: gateway %s of account %q not linked", common.ErrNoGateway, id, account)
	}
	return l, nil
}

// SendClientMsgByRelay sends data to a player's client through the gateway
// holding its session.
func (n *Node) SendClientMsgByRelay(account string, cmd uint64, data []byte) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	l, err := n.rl.holder(account)
	if err != nil {
		return err
	}
	if !l.out.AppendWith(wire.AccountMsgSize(account, len(data)), func(b []byte) {
		wire.PutAccountMsg(b, wire.KindToClient, account, cmd, data)
	}) {
		return fmt.Errorf("%w: gateway %s not accepting", common.ErrNotConnected, l.id)
	}
	return nil
}

// BroadcastClientMsg sends data to every client of every gateway.
func (n *Node) BroadcastClientMsg(cmd uint64, data []byte) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	links := n.rl.mgr.Servers()
	if len(links) == 0 {
		return common.ErrNoGateway
	}
	var first error
	for _, l := range links {
		if !l.out.Append(wire.AppendBroadcast(nil, cmd, data)) && first == nil {
			first = fmt.Errorf("%w: gateway %s not accepting", common.ErrNotConnected, l.id)
		}
	}
	return first
}

// Kick ends a player's session on its gateway; the bound nodes get
// lose-account.
func (n *Node) Kick(account, reason string) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	l, err := n.rl.holder(account)
	if err != nil {
		return err
	}
	if !l.out.Append(wire.AppendKick(nil, account, wire.CodeKicked, reason)) {
		return fmt.Errorf("%w: gateway %s not accepting", common.ErrNotConnected, l.id)
	}
	return nil
}
