package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/node"
	pb "github.com/xserver/xserver/proto"
)

const callType = common.FirstGameType + 7

// startCallee starts a node of callType answering calls with h.
func (e *env) startCallee(h common.FuncTypeOnCall) *node.Node {
	e.tb.Helper()
	return e.startNode(callType, int64(100+len(e.nodes)), func(n *node.Node) { n.RegisterFuncOnCall(h) })
}

// startNode starts a relay-enabled node of type t, set up by setup
// before it starts, and closes it at the end of the test.
func (e *env) startNode(t common.NodeType, seed int64, setup func(*node.Node)) *node.Node {
	e.tb.Helper()
	n, err := node.New(e.nodeConfig(t, seed))
	if err != nil {
		e.tb.Fatal(err)
	}
	setup(n)
	n.EnableMessageRelay(true)
	if err := n.Start(context.Background()); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { n.Close() })
	return n
}

func (e *env) linked(ns ...*node.Node) {
	e.tb.Helper()
	waitFor(e.tb, 20*time.Second, "nodes linked and known", func() bool {
		for _, n := range ns {
			if n.GatewayLinks() != len(e.gws) {
				return false
			}
			for _, o := range ns {
				if !n.HaveNode(o.GetID()) {
					return false
				}
			}
		}
		return true
	})
}

func TestCall(t *testing.T) {
	e := newEnv(t, 1)
	var sawDeadline atomic.Int64
	var cancelled atomic.Bool
	var slowRunning atomic.Int32
	callee := e.startCallee(func(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		if dl, ok := ctx.Deadline(); ok {
			sawDeadline.Store(dl.UnixMilli())
		}
		switch cmd {
		case 1: // echo
			return append([]byte("re:"), data...), nil
		case 2:
			return nil, &node.RemoteError{Code: 42, Message: "no such item"}
		case 3:
			return nil, errors.New("database down")
		case 4: // slow: until the caller gives up
			slowRunning.Add(1)
			defer slowRunning.Add(-1)
			<-ctx.Done()
			cancelled.Store(errors.Is(ctx.Err(), context.Canceled))
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("unknown cmd %d", cmd)
	})
	caller := e.startCallee(nil)
	e.linked(callee, caller)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	dl, _ := ctx.Deadline()

	raw := common.Raw("ping")
	var reply common.Raw
	if err := caller.Call(ctx, callee.GetID(), 1, &raw, &reply); err != nil || string(reply) != "re:ping" {
		t.Fatalf("call: %q %v", reply, err)
	}
	if d := sawDeadline.Load() - dl.UnixMilli(); d < -1 || d > 1 {
		t.Fatalf("the callee's deadline is %d ms off the caller's", d)
	}
	var re *node.RemoteError
	if err := caller.Call(ctx, callee.GetID(), 2, nil, nil); !errors.As(err, &re) || re.Code != 42 || re.Message != "no such item" {
		t.Fatalf("handler's RemoteError: %v", err)
	}
	if err := caller.Call(ctx, callee.GetID(), 3, nil, nil); !errors.As(err, &re) || re.Code != node.CodeApp || re.Message != "database down" {
		t.Fatalf("handler's error: %v", err)
	}
	if err := callee.Call(ctx, caller.GetID(), 1, nil, nil); !errors.Is(err, node.ErrNoHandler) {
		t.Fatalf("no handler: %v", err)
	}
	if err := caller.Call(ctx, common.NewNodeID(), 1, nil, nil); !errors.Is(err, common.ErrNoNode) {
		t.Fatalf("no such node: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	start := time.Now()
	err := caller.Call(short, callee.GetID(), 4, nil, nil)
	cancelShort()
	if !errors.Is(err, node.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("timeout: %v after %v", err, time.Since(start))
	}
	// The deadline travels in whole milliseconds, so the callee's fires up
	// to 1 ms before the caller's: its handler's failure (ctx expired)
	// reaches the caller first. The caller still sees a timeout, not the
	// handler's error.
	for i := 0; i < 5; i++ {
		d := time.Now().Add(100 * time.Millisecond).Truncate(time.Millisecond).Add(999 * time.Microsecond)
		late, cancelLate := context.WithDeadline(ctx, d)
		err := caller.Call(late, callee.GetID(), 4, nil, nil)
		cancelLate()
		if !errors.Is(err, node.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a handler failing at its deadline: %v, want a timeout", err)
		}
	}
	waitFor(t, 3*time.Second, "the slow handlers returned", func() bool { return slowRunning.Load() == 0 })
	// Cancelling frees the call at once and reaches the callee.
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- caller.Call(cctx, callee.GetID(), 4, nil, nil) }()
	waitFor(t, 3*time.Second, "the call running at the callee", func() bool { return slowRunning.Load() == 1 })
	ccancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a cancelled call did not return")
	}
	waitFor(t, 2*time.Second, "the callee's ctx cancelled", cancelled.Load)
}

// A call to a node that is a member but not linked to the gateway fails
// at once as undeliverable, rather than waiting for its deadline.
func TestCallUndeliverable(t *testing.T) {
	e := newEnv(t, 1)
	caller := e.startCallee(nil)
	other := e.startCallee(func(context.Context, common.Member, uint64, []byte) ([]byte, error) { return nil, nil })
	e.linked(caller, other)
	other.EnableMessageRelay(false) // leaves the gateway, stays a member
	waitFor(t, 5*time.Second, "the link gone", func() bool { return !e.gws[0].HasLink(other.GetID()) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := caller.Call(ctx, other.GetID(), 1, nil, nil); !errors.Is(err, node.ErrUndeliverable) {
		t.Fatalf("call to an unlinked node: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("undeliverable took %v", d)
	}
}

// BroadcastCall gathers every instance's reply, or stops at the first
// error and cancels the rest.
func TestBroadcastCall(t *testing.T) {
	e := newEnv(t, 1)
	var cancelled atomic.Int32
	var ns []*node.Node
	for i := 0; i < 3; i++ {
		i := i
		ns = append(ns, e.startCallee(func(ctx context.Context, _ common.Member, cmd uint64, _ []byte) ([]byte, error) {
			if cmd == 9 && i == 0 {
				return nil, errors.New("no")
			}
			if cmd == 9 {
				select {
				case <-ctx.Done():
					cancelled.Add(1)
					return nil, ctx.Err()
				case <-time.After(5 * time.Second):
				}
			}
			return []byte(fmt.Sprint(i)), nil
		}))
	}
	e.linked(ns...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err := ns[0].BroadcastCall(ctx, callType, 1, nil, func(from common.Member, data []byte) error {
		got = append(got, string(data))
		return nil
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("gathered %v: %v", got, err)
	}
	start := time.Now()
	err = ns[1].BroadcastCall(ctx, callType, 9, nil, nil)
	var re *node.RemoteError
	if !errors.As(err, &re) || re.Message != "no" || time.Since(start) > 2*time.Second {
		t.Fatalf("first error: %v after %v", err, time.Since(start))
	}
	waitFor(t, 3*time.Second, "the other call cancelled", func() bool { return cancelled.Load() == 1 })
}

// A gateway dying in the middle of calls gives each an answer or an
// error by its deadline: never a hang.
func TestCallGatewayDies(t *testing.T) {
	e := newEnv(t, 2)
	release := make(chan struct{})
	callee := e.startCallee(func(ctx context.Context, _ common.Member, _ uint64, _ []byte) ([]byte, error) {
		select {
		case <-release:
			return []byte("ok"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	caller := e.startCallee(nil)
	e.linked(callee, caller)
	const calls = 20
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			errs <- caller.Call(ctx, callee.GetID(), 1, nil, nil)
		}()
	}
	time.Sleep(100 * time.Millisecond) // the calls are on their way or running
	e.gws[0].Crash()
	close(release)
	deadline := time.After(5 * time.Second)
	ok := 0
	for i := 0; i < calls; i++ {
		select {
		case err := <-errs:
			if err == nil {
				ok++
			} else if i == 0 {
				t.Logf("first error: %v", err)
			}
		case <-deadline:
			t.Fatalf("%d calls still hang after their deadline", calls-i)
		}
	}
	t.Logf("%d of %d calls answered across the gateway's death", ok, calls)
}

// rawLink links to gw's intranet listener as node id of type t, speaking
// the relay protocol by hand.
func rawLink(t *testing.T, gw *gateway.Gateway, id common.NodeID, typ common.NodeType) (net.Conn, *wire.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", gw.Addrs().Intranet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := wire.NewReader(c, 1<<20, 0)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	k, p, err := r.ReadFrame()
	var hello pb.Hello
	if err != nil || k != wire.KindHello || hello.Unmarshal(p) != nil {
		t.Fatalf("hello: %s %v", k, err)
	}
	info := &pb.NodeInfo{Id: id.Bytes(), Type: uint32(typ), Addrs: []string{"127.0.0.1"}}
	f, _ := wire.Frame(wire.KindRegister, &pb.Register{Mac: intranet.MAC(secret, hello.Nonce, id.Bytes()), Info: info})
	c.Write(f)
	if k, _, err := r.ReadFrame(); err != nil || k != wire.KindAccepted {
		t.Fatalf("accepted: %s %v", k, err)
	}
	return c, r
}

// A node message whose time to live passed on its way (a stalled
// gateway, a stalled link) is refused, never delivered late.
func TestStaleNodeMessageRefused(t *testing.T) {
	e := newEnv(t, 1)
	gw := e.gws[0]
	a, b := common.NewNodeID(), common.NewNodeID()
	ca, ra := rawLink(t, gw, a, callType)
	_, rb := rawLink(t, gw, b, callType)
	waitFor(t, 5*time.Second, "both linked", func() bool { return gw.HasLink(a) && gw.HasLink(b) })
	fresh := wire.NodeMsg{SrcType: callType, Src: a, Dst: b, Cmd: 1, Expire: time.Now().Add(time.Minute).UnixMilli(), Data: []byte("fresh")}
	stale := fresh
	stale.Cmd, stale.Expire, stale.Data = 2, time.Now().Add(-time.Second).UnixMilli(), []byte("stale")
	ca.Write(append(wire.AppendNodeMsg(nil, &stale), wire.AppendNodeMsg(nil, &fresh)...))
	var sawUndeliverable, sawAck bool
	for !sawUndeliverable || !sawAck {
		k, p, err := ra.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch k {
		case wire.KindUndeliverable:
			u, _ := wire.DecodeUndeliverable(p)
			if u.Cmd != 2 || u.Code != wire.CodeExpired {
				t.Fatalf("undeliverable %+v", u)
			}
			sawUndeliverable = true
		case wire.KindNodeAck:
			n, _ := wire.DecodeLinkAck(p)
			sawAck = n == 2
		}
	}
	for {
		k, p, err := rb.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if k == wire.KindNodeMsg {
			m, _ := wire.DecodeNodeMsg(p)
			if m.Cmd != 1 {
				t.Fatalf("delivered cmd %d: a stale message went through", m.Cmd)
			}
			return
		}
	}
}

// A call made from a relay handler gets its answer, though the reply comes
// back on the very gateway link whose message the handler is running for:
// handlers run off the link's reader.
func TestCallFromRelayHandler(t *testing.T) {
	e := newEnv(t, 1) // one gateway: the reply can only come on the same link
	callee := e.startCallee(func(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		return append([]byte("re:"), data...), nil
	})
	caller := e.startCallee(nil)
	sender := e.startCallee(nil)
	got := make(chan error, 1)
	caller.RegisterFuncOnRelayMsg(func(t common.NodeType, from common.Member, account string, cmd uint64, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		raw, reply := common.Raw(data), common.Raw(nil)
		err := caller.Call(ctx, callee.GetID(), 1, &raw, &reply)
		if err == nil && string(reply) != "re:"+string(data) {
			err = fmt.Errorf("reply %q", reply)
		}
		got <- err
	})
	e.linked(callee, caller, sender)
	raw := common.Raw("hi")
	start := time.Now()
	if err := sender.SendByID(caller.GetID(), 9, &raw); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("call from a relay handler: %v after %v", err, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay handler never ran")
	}
}
