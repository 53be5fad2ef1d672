package nodetest_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/nodetest"
)

// greeter is a game service written against common.INode: it greets a
// player by name, tells everyone else, and forgets the player when its
// session ends.
type greeter struct {
	n common.INode

	mu     sync.Mutex // guards online: callbacks of a real node run concurrently
	online map[string]bool
}

const (
	greeterType common.NodeType = 4
	cmdHello    uint64          = 4001 // player → greeter: its name
	pushWelcome uint64          = 4010 // greeter → player
	pushJoined  uint64          = 4011 // greeter → the others
)

func newGreeter(n common.INode) *greeter {
	g := &greeter{n: n, online: make(map[string]bool)}
	n.RegisterFuncOnRelayMsg(func(src common.NodeType, _ common.Member, account string, cmd uint64, data []byte) {
		if src != common.Client || cmd != cmdHello-uint64(greeterType)*1000 {
			return
		}
		g.mu.Lock()
		var others []string
		for a := range g.online {
			others = append(others, a)
		}
		g.online[account] = true
		g.mu.Unlock()
		_ = n.SendClientMsgByRelay(account, pushWelcome, []byte("welcome, "+string(data)))
		for _, a := range others {
			_ = n.SendClientMsgByRelay(a, pushJoined, data)
		}
	})
	n.RegisterFuncOnLoseAccount(func(account string) {
		g.mu.Lock()
		delete(g.online, account)
		g.mu.Unlock()
	})
	n.EnableMessageRelay(true)
	return g
}

func (g *greeter) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.online)
}

// A unit test of a service: two players say hello, one leaves for good.
func Example() {
	c, err := nodetest.New(nodetest.Config{
		Stateful:     []common.NodeType{greeterType}, // players are bound to a greeter at login
		ResumeWindow: 10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	n := c.AddNode(greeterType)
	g := newGreeter(n)
	if err := n.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}

	alice, bob := c.NewPlayer("alice"), c.NewPlayer("bob")
	for _, p := range []*nodetest.Player{alice, bob} {
		if err := p.Login(); err != nil {
			fmt.Println(err)
			return
		}
		_ = p.Send(cmdHello, []byte(p.Account()))
	}
	c.Run() // deliver everything: the greeter's handler runs here

	for _, p := range []*nodetest.Player{alice, bob} {
		for m, ok := p.Next(); ok; m, ok = p.Next() {
			fmt.Printf("%s got %d %q\n", p.Account(), m.Cmd, m.Data)
		}
	}

	bob.Disconnect()           // connection lost: the session may resume
	c.Advance(5 * time.Second) // within the window
	fmt.Println("online after 5s:", g.count())
	c.Advance(5 * time.Second) // the window passes: lose-account
	fmt.Println("online after 10s:", g.count(), "bob is", bob.State())
	// Output:
	// alice got 4010 "welcome, alice"
	// alice got 4011 "bob"
	// bob got 4010 "welcome, bob"
	// online after 5s: 2
	// online after 10s: 1 bob is offline
}

// Two nodes talk through the gateway; the second dies and the sender
// hears its message was not delivered.
func ExampleCluster_KillNode() {
	c, _ := nodetest.New(nodetest.Config{})
	a, b := c.AddNode(5), c.AddNode(5)
	for _, n := range []*nodetest.Node{a, b} {
		name := "a"
		if n == b {
			name = "b"
		}
		n.RegisterFuncOnRelayMsg(func(src common.NodeType, _ common.Member, _ string, cmd uint64, data []byte) {
			fmt.Printf("%s got %d %q from a node of type %d\n", name, cmd, data, src)
		})
		n.RegisterFuncOnLeave(func(common.Member) { fmt.Printf("%s saw a member leave\n", name) })
		n.RegisterFuncOnUndeliverable(func(u common.Undeliverable) {
			fmt.Printf("%s: cmd %d not delivered (code %d)\n", name, u.Cmd, u.Code)
		})
		n.EnableMessageRelay(true)
		_ = n.Start(context.Background())
	}
	c.Run()

	hi := common.Raw("hi")
	_ = a.SendByID(b.GetID(), 1, &hi)
	c.Run()
	_ = a.SendByID(b.GetID(), 2, &hi)
	c.KillNode(b.GetID())
	c.Run()
	// Output:
	// b got 1 "hi" from a node of type 5
	// a saw a member leave
	// a: cmd 2 not delivered (code 6)
}

// A service that takes a clock runs its timers on the cluster's.
func ExampleCluster_AfterFunc() {
	c, _ := nodetest.New(nodetest.Config{})
	start := c.Now()
	c.AfterFunc(time.Second, func() { fmt.Println("tick at", c.Now().Sub(start)) })
	c.Advance(500 * time.Millisecond)
	fmt.Println("nothing yet")
	c.Advance(time.Second)
	// Output:
	// nothing yet
	// tick at 1s
}

// A call between two nodes: the caller waits, the queue runs, the
// callee's handler answers.
func ExampleNode_Call() {
	c, _ := nodetest.New(nodetest.Config{})
	inventory, shop := c.AddNode(6), c.AddNode(7)
	inventory.RegisterFuncOnCall(func(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
		return []byte(fmt.Sprintf("%s has 3 potions", data)), nil
	})
	for _, n := range []*nodetest.Node{inventory, shop} {
		n.EnableMessageRelay(true)
		_ = n.Start(context.Background())
	}
	c.Run()

	var reply common.Raw
	who := common.Raw("alice")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := shop.CallOne(ctx, 6, 1, &who, &reply); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply))
	// Output:
	// alice has 3 potions
}
