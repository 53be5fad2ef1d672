package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
)

// Errors of calls and node messages: the same values as package common's,
// so a service written against common.INode needs no import of node.
var (
	// ErrUndeliverable: the message or call did not reach its node.
	ErrUndeliverable = common.ErrUndeliverable
	// ErrTimeout: the call's deadline passed without a reply; it also
	// matches context.DeadlineExceeded.
	ErrTimeout = common.ErrTimeout
	// ErrNoHandler: the called node registered no call handler.
	ErrNoHandler = common.ErrNoHandler
)

// Remote error codes a callee's node answers with (RemoteError.Code).
const (
	CodeApp       = common.CodeApp
	CodeNoHandler = common.CodeNoHandler
	CodeBusy      = common.CodeBusy
	CodeLate      = common.CodeLate
)

// RemoteError is the error a called node answered with: common.RemoteError.
type RemoteError = common.RemoteError

// sentMsg is a node message handed to a gateway and not yet acknowledged
// by it (NodeAck): the gateway may be stalled.
type sentMsg struct {
	op     uint8
	to     common.NodeID
	cmd    uint64
	id     uint64
	at     time.Time // handed to the gateway
	expire time.Time // the gateway will not deliver it after this
}

// maxCallsRunning bounds the call handlers running at once on a node;
// beyond it calls are refused with CodeBusy.
const maxCallsRunning = 1024

// calls is a node's state of calls: the ones it made and waits for, and
// the ones it runs.
type calls struct {
	nextID  atomic.Uint64
	mu      sync.Mutex // guards waiting, running
	waiting map[uint64]chan callResult
	running map[callKey]context.CancelFunc
	slots   chan struct{}
}

type callKey struct {
	from common.NodeID
	id   uint64
}

type callResult struct {
	data []byte
	err  error
}

func newCalls() *calls {
	return &calls{waiting: make(map[uint64]chan callResult), running: make(map[callKey]context.CancelFunc),
		slots: make(chan struct{}, maxCallsRunning)}
}

// cancelAll cancels every running handler (the node is closing).
func (c *calls) cancelAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cancel := range c.running {
		cancel()
	}
}

// resolve hands a result to a waiting call, if it still waits.
func (c *calls) resolve(id uint64, r callResult) {
	c.mu.Lock()
	ch := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- r // buffered
	}
}

// sendTracked hands one node frame to the head gateway (the next one when
// the head refuses it) and records it until the gateway acknowledges it.
func (r *relay) sendTracked(m *wire.NodeMsg, expire time.Time) error {
	size := wire.NodeMsgSize(len(m.Data))
	fill := func(b []byte) { wire.AppendNodeMsg(b[:0], m) }
	sent := sentMsg{op: m.Op, to: m.Dst, cmd: m.Cmd, id: m.ID, at: time.Now(), expire: expire}
	try := func(l *gwLink) bool {
		r.mu.Lock()
		r.flushAcksLocked(l.id)
		r.mu.Unlock()
		l.pmu.Lock()
		defer l.pmu.Unlock()
		var b [32]byte
		ack := l.owedAck(b[:0]) // in front, in the same append (see owedAck)
		if !l.out.AppendWith(len(ack)+size, func(p []byte) { fill(p[copy(p, ack):]) }) {
			if len(ack) > 0 {
				l.out.Force(ack)
			}
			return false
		}
		l.pending = append(l.pending, sent)
		return true
	}
	l, ok := r.mgr.FindServer()
	if !ok {
		return common.ErrNoGateway
	}
	if try(l) {
		return nil
	}
	r.mgr.NotifyFailedServer(l)
	l2, ok := r.mgr.FindServer()
	if !ok || l2 == l {
		return fmt.Errorf("%w: gateway %s not accepting", common.ErrNoGateway, l.id)
	}
	if try(l2) {
		return nil
	}
	r.mgr.NotifyFailedServer(l2)
	return fmt.Errorf("%w: gateways %s and %s not accepting", common.ErrNoGateway, l.id, l2.id)
}

// nodeAcked takes a gateway's count of node messages it handled on l.
func (l *gwLink) nodeAcked(n uint64) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if n <= l.packed {
		return // older than what expired here meanwhile
	}
	k := int(min(n-l.packed, uint64(len(l.pending))))
	l.packed = n
	l.pending = l.pending[:copy(l.pending, l.pending[k:])]
}

// takePending removes the link's unacknowledged node messages: all of them
// (the link is gone), or those expired by now.
func (l *gwLink) takePending(all bool, now time.Time) []sentMsg {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if all {
		out := l.pending
		l.pending = nil
		return out
	}
	// Entries are in send order and expiries nearly so: take the expired
	// prefix, and count it as acknowledged (the gateway drops them).
	k := 0
	for k < len(l.pending) && !l.pending[k].expire.After(now) {
		k++
	}
	if k == 0 {
		return nil
	}
	out := append([]sentMsg(nil), l.pending[:k]...)
	l.pending = l.pending[:copy(l.pending, l.pending[k:])]
	l.packed += uint64(k)
	return out
}

// stalled reports whether the link's oldest unacknowledged node message
// has waited longer than d.
func (l *gwLink) stalled(now time.Time, d time.Duration) bool {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	return len(l.pending) > 0 && now.Sub(l.pending[0].at) > d
}

// undelivered reports node messages that did not reach their node: a call
// fails at once, a one-way message goes to the undeliverable callback.
func (n *Node) undelivered(msgs []sentMsg, code uint16, why string) {
	for _, m := range msgs {
		n.rl.undeliverable.Add(1)
		switch m.op {
		case wire.OpCall:
			n.calls.resolve(m.id, callResult{err: fmt.Errorf("%w: %s", ErrUndeliverable, why)})
		case wire.OpMessage:
			n.fireUndeliverable(common.Undeliverable{To: m.to, Cmd: m.cmd, Code: code})
		}
	}
}

// checkStalls runs on the relay's tick: node messages a gateway did not
// handle before they expired are undeliverable (the gateway drops them if
// it ever wakes), and a head gateway that sits on messages is rotated away.
func (r *relay) checkStalls(now time.Time) {
	n := r.n
	for _, l := range r.mgr.Servers() {
		if exp := l.takePending(false, now); len(exp) > 0 {
			r.lookLog.Warn(l.log.WithField("messages", len(exp)), "a gateway did not forward node messages in time; reporting them undeliverable")
			n.undelivered(exp, wire.CodeExpired, "the gateway did not forward it in time")
		}
		if l.stalled(now, n.cfg.MessageTTL/2) {
			r.mgr.NotifyFailedServer(l) // new messages go through another gateway
		}
	}
}

// onNodeMsg handles a node frame from a gateway.
func (n *Node) onNodeMsg(m *wire.NodeMsg) {
	switch m.Op {
	case wire.OpMessage:
		// On the sender's lane: in the sender's order, off the link's reader.
		from, cmd, data := n.memberOrStub(m.Src, m.SrcType), m.Cmd, append([]byte(nil), m.Data...)
		srcType := m.SrcType
		n.rl.cb.post(m.Src.String(), func() {
			if f := n.relayFunc(); f != nil {
				f(srcType, from, "", cmd, data)
			}
		})
	case wire.OpReply:
		n.calls.resolve(m.ID, callResult{data: append([]byte(nil), m.Data...)})
	case wire.OpFailed:
		e := &RemoteError{Code: CodeApp}
		if len(m.Data) >= 2 {
			e.Code, e.Message = uint16(m.Data[0])<<8|uint16(m.Data[1]), string(m.Data[2:])
		}
		n.calls.resolve(m.ID, callResult{err: e})
	case wire.OpCancel:
		n.calls.mu.Lock()
		cancel := n.calls.running[callKey{m.Src, m.ID}]
		n.calls.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case wire.OpCall:
		n.serveCall(m)
	}
}

// serveCall runs the call handler on its own goroutine, under the caller's
// deadline, and sends the reply.
func (n *Node) serveCall(m *wire.NodeMsg) {
	n.mu.Lock()
	h := n.onCall
	n.mu.Unlock()
	deadline := time.UnixMilli(m.Expire)
	from, fromType, id, cmd := m.Src, m.SrcType, m.ID, m.Cmd
	reply := func(data []byte, err error) {
		out := wire.NodeMsg{Op: wire.OpReply, SrcType: n.cfg.Type, Src: n.cfg.ID, Dst: from, Cmd: cmd, ID: id, Expire: m.Expire, Data: data}
		if err != nil {
			var re *RemoteError
			if !errors.As(err, &re) {
				re = &RemoteError{Code: CodeApp, Message: err.Error()}
			}
			msg := re.Message
			if len(msg) > wire.MaxReason {
				msg = msg[:wire.MaxReason]
			}
			out.Op, out.Data = wire.OpFailed, append([]byte{byte(re.Code >> 8), byte(re.Code)}, msg...)
		}
		if err := n.rl.sendTracked(&out, deadline); err != nil {
			n.log.WithError(err).Debug("call reply not sent")
		}
	}
	switch {
	case h == nil:
		reply(nil, &RemoteError{Code: CodeNoHandler, Message: "no call handler registered"})
		return
	case m.Expire != 0 && time.Now().After(deadline):
		reply(nil, &RemoteError{Code: CodeLate, Message: "the deadline passed before the call could run"})
		return
	}
	select {
	case n.calls.slots <- struct{}{}:
	default:
		reply(nil, &RemoteError{Code: CodeBusy, Message: "too many calls running"})
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	if m.Expire == 0 {
		ctx, cancel = context.WithCancel(context.Background())
	}
	key := callKey{from, id}
	n.calls.mu.Lock()
	n.calls.running[key] = cancel
	n.calls.mu.Unlock()
	data := append([]byte(nil), m.Data...)
	caller := n.memberOrStub(from, fromType)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			cancel()
			n.calls.mu.Lock()
			delete(n.calls.running, key)
			n.calls.mu.Unlock()
			<-n.calls.slots
		}()
		out, err := h(ctx, caller, cmd, data)
		if ctx.Err() != nil && err == nil && errors.Is(context.Cause(ctx), context.Canceled) {
			return // the caller gave up: nobody reads the reply
		}
		reply(out, lateErr(ctx, err))
	}()
}

// lateErr is the error a handler's failure is answered with: CodeLate when
// the call's deadline passed while it ran (the handler most likely failed
// because of it), so that the caller sees a timeout and not an application
// error, whichever of the two clocks fired first.
func lateErr(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &RemoteError{Code: CodeLate, Message: "the deadline passed while the call ran"}
	}
	return err
}

// remoteTimeout maps a callee's CodeLate answer to ErrTimeout.
func remoteTimeout(err error) error {
	var re *RemoteError
	if errors.As(err, &re) && re.Code == CodeLate {
		return ErrTimeout
	}
	return err
}

// --- public API ---

// RegisterFuncOnCall sets the handler of calls from other nodes (Call,
// CallOne, CallByKey, BroadcastCall). Each call runs on its own goroutine
// (at most 1024 at once; beyond, callers get RemoteError CodeBusy) with
// ctx carrying the caller's deadline and cancelled when the caller gives
// up. Its reply, or its error, goes back to the caller: return a
// *RemoteError to choose the code.
func (n *Node) RegisterFuncOnCall(f common.FuncTypeOnCall) {
	n.mu.Lock()
	n.onCall = f
	n.mu.Unlock()
}

// Call sends req to the node id and waits for its reply, decoded into
// reply (nil: ignore it). ctx's deadline travels with the call and bounds
// the wait (without one, Config.CallTimeout applies); cancelling ctx frees
// the call at once and tells the callee. Errors: common.ErrNoNode (no such
// member), ErrUndeliverable (did not reach it), ErrTimeout (no reply in
// time), *RemoteError (the callee's error), or ctx's error.
func (n *Node) Call(ctx context.Context, id common.NodeID, cmd uint64, req, reply proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	if !n.HaveNode(id) {
		return fmt.Errorf("%w: %s", common.ErrNoNode, id)
	}
	return n.call(ctx, id, cmd, req, reply)
}

// CallOne calls one member of type t chosen by the configured selector.
func (n *Node) CallOne(ctx context.Context, t common.NodeType, cmd uint64, req, reply proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	m, err := n.pick(t, n.cfg.Selector, "")
	if err != nil {
		return err
	}
	return n.call(ctx, m.id, cmd, req, reply)
}

// CallByKey calls the member of type t that key maps to on a
// consistent-hash ring.
func (n *Node) CallByKey(ctx context.Context, t common.NodeType, key string, cmd uint64, req, reply proto.Message) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	m, err := n.pick(t, discovery.ConsistentHash, key)
	if err != nil {
		return err
	}
	return n.call(ctx, m.id, cmd, req, reply)
}

// BroadcastCall calls every member of type t (this node excluded) at once.
// Each reply is handed to collect (one at a time); the first error — a
// failed call, or collect's — cancels the calls still running and is
// returned. With no member of the type it returns common.ErrNoNode.
func (n *Node) BroadcastCall(ctx context.Context, t common.NodeType, cmd uint64, req proto.Message, collect func(from common.Member, data []byte) error) error {
	if err := n.relayCheck(); err != nil {
		return err
	}
	var targets []common.Member
	for _, m := range n.GetNodeList(t) {
		if m.GetID() != n.cfg.ID {
			targets = append(targets, m)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: no member of type %s", common.ErrNoNode, t)
	}
	var mu sync.Mutex
	return discovery.Broadcast(ctx, targets, func(ctx context.Context, m common.Member) error {
		var raw common.Raw
		if err := n.call(ctx, m.GetID(), cmd, req, &raw); err != nil {
			return fmt.Errorf("node: call %s: %w", m.GetID(), err)
		}
		if collect == nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		return collect(m, raw)
	})
}

func (n *Node) call(ctx context.Context, to common.NodeID, cmd uint64, req, reply proto.Message) error {
	n.rl.releaseReaders() // the reply may come over the link this callback was read from
	data, err := marshal(req)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.CallTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	id := n.calls.nextID.Add(1)
	ch := make(chan callResult, 1)
	n.calls.mu.Lock()
	n.calls.waiting[id] = ch
	n.calls.mu.Unlock()
	m := wire.NodeMsg{Op: wire.OpCall, SrcType: n.cfg.Type, Src: n.cfg.ID, Dst: to, Cmd: cmd, ID: id,
		Expire: deadline.UnixMilli(), Data: data}
	if err := n.rl.sendTracked(&m, deadline); err != nil {
		n.calls.resolve(id, callResult{})
		return err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return remoteTimeout(r.err)
		}
		if reply != nil {
			if err := proto.Unmarshal(r.data, reply); err != nil {
				return fmt.Errorf("node: decode the reply: %w", err)
			}
		}
		return nil
	case <-ctx.Done():
		n.calls.resolve(id, callResult{}) // no longer waiting
		cancel := wire.NodeMsg{Op: wire.OpCancel, SrcType: n.cfg.Type, Src: n.cfg.ID, Dst: to, Cmd: cmd, ID: id,
			Expire: time.Now().Add(n.cfg.MessageTTL).UnixMilli()}
		_ = n.rl.sendTracked(&cancel, time.Now().Add(n.cfg.MessageTTL))
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrTimeout
		}
		return ctx.Err()
	}
}
