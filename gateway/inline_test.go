package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/node"
)

// startRelayNode starts a node of type t handling client messages with h.
func (e *env) startRelayNode(t common.NodeType, seed int64, h common.FuncTypeOnRelayMsg) *node.Node {
	e.tb.Helper()
	return e.startNode(t, seed, func(n *node.Node) { n.RegisterFuncOnRelayMsg(h) })
}

// A node may run a client message's handler on the reader of the link it
// came from (the last message read has nothing behind it to wait for). A
// handler that blocks there must not stop the link: here one player's
// handler waits until other players' messages, which come over the same
// and only gateway link after it, are answered.
func TestBlockedHandlerDoesNotStopItsLink(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType) // logins need a lobby
	e.ready()
	const typ = common.FirstGameType + 8
	started := make(chan struct{})
	release := make(chan struct{})
	var n *node.Node
	n = e.startRelayNode(typ, 300, func(_ common.NodeType, _ common.Member, account string, cmd uint64, data []byte) {
		if account == "blocker" {
			close(started)
			<-release
			return
		}
		if err := n.SendClientMsgByRelay(account, cmd, data); err != nil {
			t.Errorf("reply to %s: %v", account, err)
		}
	})
	e.linked(n)
	blocker := e.connect("blocker")
	// Lanes are chosen by a hash of the account: a player on the blocked
	// player's lane waits behind it, rightly; six make it all but certain
	// that some are on other lanes.
	var others []*client
	for i := range 6 {
		others = append(others, e.connect(fmt.Sprintf("free-%d", i)))
	}
	defer close(release) // before the node closes: Close runs what its lanes hold
	cmd := uint64(typ)*1000 + 1
	blocker.write(wire.AppendData(nil, cmd, []byte("wait")))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking handler never ran")
	}
	answered := make(chan string, len(others))
	for _, c := range others {
		c.write(wire.AppendData(nil, cmd, []byte(c.account)))
		go func() {
			_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			k, p, err := c.r.ReadFrame()
			if err == nil && k == wire.KindClientData {
				if _, data, err := wire.DecodeData(p); err == nil {
					answered <- string(data)
					return
				}
			}
			answered <- ""
		}()
	}
	select {
	case got := <-answered:
		if got == "" {
			t.Fatal("a player got no answer while another player's handler blocked")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no player was answered while another player's handler blocked")
	}
}

// A client message's handler that calls another node gets its reply,
// though the reply comes back over the link the message came from, whose
// reader may be running the handler.
func TestCallFromClientMessageHandler(t *testing.T) {
	e := newEnv(t, 1)      // one gateway: the reply can only come on the same link
	e.startGame(lobbyType) // logins need a lobby
	e.ready()
	callee := e.startCallee(func(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		return append([]byte("re:"), data...), nil
	})
	const typ = common.FirstGameType + 9
	var caller *node.Node
	caller = e.startRelayNode(typ, 301, func(_ common.NodeType, _ common.Member, account string, cmd uint64, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		raw, reply := common.Raw(data), common.Raw(nil)
		if err := caller.Call(ctx, callee.GetID(), 1, &raw, &reply); err != nil {
			reply = common.Raw("call failed: " + err.Error())
		}
		if err := caller.SendClientMsgByRelay(account, cmd, reply); err != nil {
			t.Errorf("reply to %s: %v", account, err)
		}
	})
	e.linked(callee, caller)
	c := e.connect("caller-of-calls")
	for i := range 3 {
		msg := fmt.Sprintf("hi-%d", i)
		c.write(wire.AppendData(nil, uint64(typ)*1000+1, []byte(msg)))
		k, p := c.read()
		if k != wire.KindClientData {
			t.Fatalf("got %s, want data", k)
		}
		if _, data, err := wire.DecodeData(p); err != nil || string(data) != "re:"+msg {
			t.Fatalf("answer %q, %v; want %q", data, err, "re:"+msg)
		}
	}
}
