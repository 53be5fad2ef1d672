package nodetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/node"
)

// A call is a node message whose handler's answer travels back to the
// caller as another message. While it waits, the caller runs the queue
// itself (so the callee's handler runs, on the same goroutine): Call
// returns once its reply has been handled, with everything queued before
// it handled too. Errors are a real node's: common.ErrUndeliverable,
// *common.RemoteError (common.ErrNoHandler), common.ErrTimeout, and ctx's.
// Calls time out only by their ctx, which runs on the wall clock: the
// cluster's clock does not move while a call waits.

// pendingCall is one call a node made; guarded by c.mu.
type pendingCall struct {
	to        common.NodeID
	done      bool
	seq       uint64 // completion order
	data      []byte
	err       error
	abandoned bool // the caller gave up: the handler's ctx is cancelled
	handled   bool // BroadcastCall: reported
}

// RegisterFuncOnCall sets the handler of calls from other nodes. It runs
// when the queue reaches the call — on the goroutine running the queue,
// like every callback here — with ctx carrying the caller's deadline.
func (n *Node) RegisterFuncOnCall(f common.FuncTypeOnCall) {
	n.c.mu.Lock()
	n.onCall = f
	n.c.mu.Unlock()
}

// Call sends req to the member id and returns once its reply is in,
// decoded into reply (nil: ignore it); see the package documentation for
// how it waits. It fails with common.ErrNoNode for a member this node
// does not know.
func (n *Node) Call(ctx context.Context, id common.NodeID, cmd uint64, req, reply proto.Message) error {
	n.c.mu.Lock()
	err := n.nodeSendCheckLocked()
	if err == nil && n.view[id] == nil {
		err = fmt.Errorf("%w: %s", common.ErrNoNode, id)
	}
	n.c.mu.Unlock()
	if err != nil {
		return err
	}
	return n.call(ctx, id, cmd, req, reply)
}

// CallOne calls one member of type t chosen by Config.Selector.
func (n *Node) CallOne(ctx context.Context, t common.NodeType, cmd uint64, req, reply proto.Message) error {
	return n.callPicked(ctx, t, n.c.cfg.Selector, "", cmd, req, reply)
}

// CallByKey calls the member of type t that key maps to on the
// consistent-hash ring.
func (n *Node) CallByKey(ctx context.Context, t common.NodeType, key string, cmd uint64, req, reply proto.Message) error {
	return n.callPicked(ctx, t, discovery.ConsistentHash, key, cmd, req, reply)
}

func (n *Node) callPicked(ctx context.Context, t common.NodeType, mode discovery.Mode, key string, cmd uint64, req, reply proto.Message) error {
	n.c.mu.Lock()
	err := n.nodeSendCheckLocked()
	n.c.mu.Unlock()
	if err != nil {
		return err
	}
	m, err := n.pick(t, mode, key)
	if err != nil {
		return err
	}
	return n.call(ctx, m.info.id, cmd, req, reply)
}

func (n *Node) call(ctx context.Context, to common.NodeID, cmd uint64, req, reply proto.Message) error {
	data, err := marshal(req)
	if err != nil {
		return err
	}
	pc, err := n.startCall(ctx, to, cmd, data)
	if err != nil {
		return err
	}
	if err := n.c.await(ctx, []*pendingCall{pc}, nil); err != nil {
		return err
	}
	n.c.mu.Lock()
	data, err = pc.data, pc.err
	n.c.mu.Unlock()
	if err != nil {
		return lateTimeout(err)
	}
	if reply != nil {
		if err := proto.Unmarshal(data, reply); err != nil {
			return fmt.Errorf("nodetest: decode the reply: %w", err)
		}
	}
	return nil
}

// BroadcastCall calls every member of type t but this node at once:
// collect gets each reply in the order the replies arrive; the first
// error (a failed call, or collect's) is returned and the calls still
// waiting are cancelled (their handlers see a cancelled ctx).
func (n *Node) BroadcastCall(ctx context.Context, t common.NodeType, cmd uint64, req proto.Message, collect func(from common.Member, data []byte) error) error {
	n.c.mu.Lock()
	err := n.nodeSendCheckLocked()
	n.c.mu.Unlock()
	if err != nil {
		return err
	}
	var targets []common.Member
	for _, m := range n.GetNodeList(t) {
		if m.GetID() != n.id {
			targets = append(targets, m)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: no member of type %s", common.ErrNoNode, t)
	}
	data, err := marshal(req)
	if err != nil {
		return err
	}
	pcs := make([]*pendingCall, 0, len(targets))
	from := make(map[*pendingCall]common.Member, len(targets))
	for _, m := range targets {
		pc, err := n.startCall(ctx, m.GetID(), cmd, data)
		if err != nil {
			n.c.abandon(pcs)
			return err
		}
		pcs = append(pcs, pc)
		from[pc] = m
	}
	return n.c.await(ctx, pcs, func(pc *pendingCall) error {
		if pc.err != nil {
			return fmt.Errorf("nodetest: call %s: %w", pc.to, lateTimeout(pc.err))
		}
		if collect != nil {
			return collect(from[pc], pc.data)
		}
		return nil
	})
}

// startCall queues a call to to and returns its record.
func (n *Node) startCall(ctx context.Context, to common.NodeID, cmd uint64, data []byte) (*pendingCall, error) {
	if err := ctx.Err(); err != nil {
		return nil, callCtxErr(err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(node.DefaultConfig().CallTimeout)
	}
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := n.nodeSendCheckLocked(); err != nil {
		return nil, err
	}
	pc := &pendingCall{to: to}
	src := n.self
	// A node reads calls while its callbacks run, and runs the handler on
	// a goroutine of its own: no lane.
	c.postLocked(func() { c.serveCall(n, src, pc, to, cmd, data, deadline) })
	return pc, nil
}

// serveCall is the call reaching to: its handler runs here and its answer
// is queued back to the caller.
func (c *Cluster) serveCall(caller *Node, src *info, pc *pendingCall, to common.NodeID, cmd uint64, data []byte, deadline time.Time) {
	c.mu.Lock()
	dst := c.byID[to]
	if dst == nil || !dst.linkedLocked() {
		caller.postAnswerLocked(pc, nil, fmt.Errorf("%w: %s is not linked to the gateway", common.ErrUndeliverable, to))
		c.mu.Unlock()
		return
	}
	h := dst.onCall
	from := dst.view[src.id]
	if from == nil {
		from = &member{viewer: dst, info: &info{id: src.id, typ: src.typ}}
	}
	abandoned := pc.abandoned
	c.mu.Unlock()

	var (
		out []byte
		err error
	)
	switch {
	case h == nil:
		err = &common.RemoteError{Code: common.CodeNoHandler, Message: "no call handler registered"}
	case !abandoned && time.Now().After(deadline):
		err = &common.RemoteError{Code: common.CodeLate, Message: "the deadline passed before the call could run"}
	default:
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if abandoned {
			cancel()
		}
		out, err = h(ctx, from, cmd, append([]byte(nil), data...))
		if err != nil && !abandoned && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = &common.RemoteError{Code: common.CodeLate, Message: "the deadline passed while the call ran"}
		}
		cancel()
	}
	if err != nil {
		var re *common.RemoteError
		if !errors.As(err, &re) {
			re = &common.RemoteError{Code: common.CodeApp, Message: err.Error()}
		}
		msg := re.Message
		if len(msg) > wire.MaxReason {
			msg = msg[:wire.MaxReason]
		}
		err = &common.RemoteError{Code: re.Code, Message: msg}
	}
	c.mu.Lock()
	if dst.linkedLocked() { // a handler that closed its own node sends nothing
		caller.postAnswerLocked(pc, append([]byte(nil), out...), err)
	}
	c.mu.Unlock()
}

// postAnswerLocked queues the answer to a call of n. A real node reads
// it even while its callbacks run (one may be waiting for it): no lane.
func (n *Node) postAnswerLocked(pc *pendingCall, data []byte, err error) {
	c := n.c
	c.postLocked(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if pc.done || pc.abandoned || n.state == nodeClosed {
			return
		}
		c.tseq++
		pc.done, pc.seq, pc.data, pc.err = true, c.tseq, data, err
	})
}

// lateTimeout maps a callee's CodeLate answer to common.ErrTimeout, as a
// real node does.
func lateTimeout(err error) error {
	var re *common.RemoteError
	if errors.As(err, &re) && re.Code == common.CodeLate {
		return common.ErrTimeout
	}
	return err
}

func callCtxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return common.ErrTimeout
	}
	return err
}

// abandon marks calls nobody waits for any more.
func (c *Cluster) abandon(pcs []*pendingCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range pcs {
		if !pc.done {
			pc.abandoned = true
		}
	}
}

// await runs the queue until every call of pcs is answered, ctx ends or
// each (in the order the answers came) returns an error; each may be nil
// for a single call. Run, Step and Advance called from the handlers it
// runs are refused (ErrReentrant) unless a Run was already going on.
func (c *Cluster) await(ctx context.Context, pcs []*pendingCall, each func(*pendingCall) error) error {
	c.mu.Lock()
	entered := !c.running
	c.running = true
	c.mu.Unlock()
	if entered {
		defer c.leave()
	}
	for steps := 0; ; steps++ {
		c.mu.Lock()
		var fresh []*pendingCall
		left := 0
		for _, pc := range pcs {
			switch {
			case pc.done && !pc.handled:
				pc.handled = true
				fresh = append(fresh, pc)
			case !pc.done:
				left++
			}
		}
		c.mu.Unlock()
		sort.Slice(fresh, func(i, j int) bool { return fresh[i].seq < fresh[j].seq })
		for _, pc := range fresh {
			if each == nil {
				continue
			}
			if err := each(pc); err != nil {
				c.abandon(pcs)
				return err
			}
		}
		if left == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			c.abandon(pcs)
			return callCtxErr(err)
		}
		if steps >= c.cfg.MaxSteps {
			c.abandon(pcs)
			c.mu.Lock()
			c.failLocked(fmt.Errorf("%w: %d events waiting for a call (Config.MaxSteps)", ErrRunaway, c.cfg.MaxSteps))
			c.mu.Unlock()
			return common.ErrTimeout
		}
		ran, blocked := c.stepOrBlocked()
		switch {
		case blocked:
			// What is left waits for lanes held by callbacks that are
			// waiting themselves: no answer can come before the deadline.
			c.abandon(pcs)
			return common.ErrTimeout
		case !ran:
			// Nothing left to run and no answer: the caller closed.
			c.abandon(pcs)
			return common.ErrClosed
		}
	}
}
