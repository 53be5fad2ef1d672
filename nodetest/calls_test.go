package nodetest_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/node"
	"github.com/xserver/xserver/nodetest"
)

// answer registers a call handler that records the call in tr and
// answers "<name>:<request>", or fails for a request "fail"/"busy".
func answer(n *nodetest.Node, tr *trace, name string) {
	n.RegisterFuncOnCall(func(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		_, hasDeadline := ctx.Deadline()
		tr.add("%s: call %d %s from %s (deadline %v, cancelled %v)", name, cmd, data, tr.name(from.GetID()), hasDeadline, ctx.Err() != nil)
		switch string(data) {
		case "fail":
			return nil, errors.New("no such thing")
		case "busy":
			return nil, &node.RemoteError{Code: node.CodeBusy, Message: "later"}
		}
		return []byte(name + ":" + string(data)), nil
	})
}

func TestCall(t *testing.T) {
	c, tr := newCluster(t, nodetest.Config{})
	a := add(t, c, tr, lobby, "a")
	b := add(t, c, tr, match, "b")
	answer(b, tr, "b")
	c.Run()
	tr.take()

	// Messages sent before the call arrive before it; the call returns
	// with its reply, everything before it handled.
	if err := a.SendByID(b.GetID(), 1, raw("first")); err != nil {
		t.Fatal(err)
	}
	var got common.Raw
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Call(ctx, b.GetID(), 2, raw("q"), &got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "b:q" {
		t.Errorf("reply %q", got)
	}
	same(t, "order", tr.take(), []string{"b: from a (type4) 1 first", "b: call 2 q from a (deadline true, cancelled false)"})
	if c.Pending() != 0 {
		t.Errorf("%d events left", c.Pending())
	}

	if err := a.CallOne(ctx, match, 3, raw("one"), nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CallByKey(context.Background(), match, "k", 4, raw("key"), &got); err != nil || string(got) != "b:key" {
		t.Fatalf("%q %v", got, err)
	}
	same(t, "picked", tr.take(), []string{"b: call 3 one from a (deadline true, cancelled false)", "b: call 4 key from a (deadline true, cancelled false)"})

	// Errors.
	var re *node.RemoteError
	if err := a.Call(ctx, b.GetID(), 5, raw("fail"), nil); !errors.As(err, &re) || re.Code != node.CodeApp || re.Message != "no such thing" {
		t.Errorf("handler error: %v", err)
	}
	if err := a.Call(ctx, b.GetID(), 5, raw("busy"), nil); !errors.As(err, &re) || re.Code != node.CodeBusy {
		t.Errorf("remote error: %v", err)
	}
	if err := b.Call(ctx, a.GetID(), 6, nil, nil); !errors.Is(err, node.ErrNoHandler) {
		t.Errorf("no handler: %v", err)
	}
	if err := a.Call(ctx, common.NodeID{9}, 6, nil, nil); !errors.Is(err, common.ErrNoNode) {
		t.Errorf("unknown node: %v", err)
	}
	if err := a.CallOne(ctx, 9, 6, nil, nil); !errors.Is(err, common.ErrNoNode) {
		t.Errorf("unknown type: %v", err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := a.Call(done, b.GetID(), 6, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	past, stop2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer stop2()
	if err := a.Call(past, b.GetID(), 6, nil, nil); !errors.Is(err, node.ErrTimeout) {
		t.Errorf("past deadline: %v", err)
	}
	tr.take()
	c.KillNode(b.GetID()) // a does not know yet
	if err := a.Call(ctx, b.GetID(), 7, nil, nil); !errors.Is(err, node.ErrUndeliverable) {
		t.Errorf("to a dead node: %v", err)
	}
	same(t, "a learnt meanwhile", tr.take(), []string{"a: leave b"})
}

func TestCallFromHandlers(t *testing.T) {
	c, tr := newCluster(t, nodetest.Config{})
	l := add(t, c, tr, lobby, "l")
	m1 := add(t, c, tr, match, "m1")
	m2 := add(t, c, tr, match, "m2")
	answer(m2, tr, "m2")
	// m1 answers by asking m2, and tells the caller first.
	m1.RegisterFuncOnCall(func(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		if err := from.SendMsg(9, raw("wait")); err != nil {
			return nil, err
		}
		var r common.Raw
		if err := m1.Call(ctx, m2.GetID(), cmd, (*common.Raw)(&data), &r); err != nil {
			return nil, err
		}
		return append([]byte("m1+"), r...), nil
	})
	// A membership callback may call too (a real node runs it on its
	// dispatcher, not on a gateway link).
	l.RegisterFuncOnJoin(func(m common.Member) {
		if m.GetType() != match || m.GetID() == m1.GetID() || m.GetID() == m2.GetID() {
			return
		}
		var r common.Raw
		err := l.Call(context.Background(), m1.GetID(), 2, raw("hello"), &r)
		tr.add("l: joined, m1 says %s %v", r, err)
	})
	c.Run()
	tr.take()

	var r common.Raw
	if err := l.Call(context.Background(), m1.GetID(), 1, raw("x"), &r); err != nil || string(r) != "m1+m2:x" {
		t.Fatalf("%q %v", r, err)
	}
	same(t, "nested", tr.take(), []string{
		"l: from m1 (type5) 9 wait", "m2: call 1 x from m1 (deadline true, cancelled false)",
	})
	add(t, c, tr, match, "m3")
	c.Run()
	got := tr.take()
	if !contains(got, "l: joined, m1 says m1+m2:hello <nil>") {
		t.Errorf("call from a join callback: %q", got)
	}
}

// A call from a relay handler gets its reply, as on a real node (which
// reads replies while its callbacks run).
func TestCallFromRelayHandler(t *testing.T) {
	c, err := nodetest.New(nodetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &trace{names: map[common.NodeID]string{}}
	l := add(t, c, tr, lobby, "l")
	m := add(t, c, tr, match, "m")
	answer(m, tr, "m")
	var got error
	l.RegisterFuncOnRelayMsg(func(common.NodeType, common.Member, string, uint64, []byte) {
		got = l.Call(context.Background(), m.GetID(), 1, nil, nil)
	})
	c.Run()
	if err := m.SendByID(l.GetID(), 1, nil); err != nil {
		t.Fatal(err)
	}
	c.Run()
	if got != nil || c.Err() != nil {
		t.Errorf("call: %v, cluster: %v", got, c.Err())
	}
	if lines := tr.take(); !contains(lines, "m: call 1  from l (deadline true, cancelled false)") {
		t.Errorf("%q", lines)
	}
	if c.Pending() != 0 {
		t.Errorf("%d events left", c.Pending())
	}

	// Run from a call handler is refused.
	c2, _ := nodetest.New(nodetest.Config{})
	a, b := add(t, c2, tr, lobby, "a"), add(t, c2, tr, lobby, "b")
	b.RegisterFuncOnCall(func(context.Context, common.Member, uint64, []byte) ([]byte, error) {
		c2.Run()
		return nil, nil
	})
	c2.Run()
	if err := a.Call(context.Background(), b.GetID(), 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c2.Err(), nodetest.ErrReentrant) {
		t.Errorf("Err %v", c2.Err())
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestBroadcastCall(t *testing.T) {
	c, tr := newCluster(t, nodetest.Config{})
	a := add(t, c, tr, lobby, "a")
	var ms []*nodetest.Node
	for i := range 3 {
		m := add(t, c, tr, match, fmt.Sprint("m", i))
		answer(m, tr, fmt.Sprint("m", i))
		ms = append(ms, m)
	}
	c.Run()
	tr.take()
	var got []string
	err := a.BroadcastCall(context.Background(), match, 1, raw("q"), func(from common.Member, data []byte) error {
		got = append(got, tr.name(from.GetID())+"="+string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	same(t, "replies", got, []string{"m0=m0:q", "m1=m1:q", "m2=m2:q"})
	tr.take()

	// The first error ends it; the other answers are ignored.
	err = a.BroadcastCall(context.Background(), match, 2, raw("fail"), func(common.Member, []byte) error {
		t.Error("collect called after a failure")
		return nil
	})
	var re *node.RemoteError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "no such thing") {
		t.Errorf("err %v", err)
	}
	c.Run()
	if lines := tr.take(); len(lines) != 3 {
		t.Errorf("handlers: %q", lines)
	}
	stop := errors.New("enough")
	if err := a.BroadcastCall(context.Background(), match, 3, nil, func(common.Member, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("collect's error: %v", err)
	}
	c.Run()
	if err := ms[0].BroadcastCall(context.Background(), lobby, 1, nil, nil); !errors.Is(err, node.ErrNoHandler) {
		t.Errorf("no handler: %v", err)
	}
	if err := a.BroadcastCall(context.Background(), lobby, 1, nil, nil); !errors.Is(err, common.ErrNoNode) {
		t.Errorf("only itself: %v", err)
	}
}

// While a callback waits in a call, the other callbacks of its goroutine
// (here: the node's membership callbacks) wait too; other goroutines'
// (its relay handler) do not.
func TestCallKeepsCallbacksSequential(t *testing.T) {
	c, tr := newCluster(t, nodetest.Config{})
	l := c.AddNode(lobby)
	m := add(t, c, tr, match, "m")
	answer(m, tr, "m")
	depth, maxDepth := 0, 0
	var order []string
	l.RegisterFuncOnJoin(func(j common.Member) {
		depth++
		maxDepth = max(maxDepth, depth)
		defer func() { depth-- }()
		order = append(order, "join "+tr.name(j.GetID()))
		if j.GetID() == m.GetID() {
			_ = l.Call(context.Background(), m.GetID(), 1, nil, nil)
			order = append(order, "called")
		}
	})
	l.RegisterFuncOnRelayMsg(func(_ common.NodeType, from common.Member, _ string, _ uint64, data []byte) {
		order = append(order, "relay "+string(data))
	})
	l.EnableMessageRelay(true)
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	later := c.AddNode(match) // l learns of it while its first callbacks run
	if err := later.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr.names[later.GetID()] = "later"
	if err := l.SendMsg(1, raw("x")); err != nil {
		t.Fatal(err)
	}
	c.Run()
	if maxDepth != 1 {
		t.Errorf("membership callbacks nested %d deep", maxDepth)
	}
	same(t, "order", order, []string{"join gw", "join m", "relay x", "called", "join later"})
}
