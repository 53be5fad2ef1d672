package gateway_test

import (
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
	pb "github.com/xserver/xserver/proto"
)

// With -selector consistent-hash the gateway keys stateless routing by
// account: one account always reaches the same instance, and accounts
// spread over the instances.
func TestConsistentHashRoutesByAccount(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Selector = discovery.ConsistentHash })
	e.startGame(lobbyType)
	for i := 0; i < 3; i++ {
		e.startGame(echoType)
	}
	e.ready()
	const accounts, msgs = 6, 12
	used := map[string]int{}
	for a := 0; a < accounts; a++ {
		c := e.connect(accountName(a))
		var first string
		for i := uint32(0); i < msgs; i++ {
			c.send(uint64(echoType)*1000+1, i)
			_, seq, from := c.reply()
			if seq != i {
				t.Fatalf("%s: reply %d, want %d", c.account, seq, i)
			}
			if first == "" {
				first = from
			} else if from != first {
				t.Fatalf("%s: message %d went to %s, earlier ones to %s", c.account, i, from, first)
			}
		}
		used[first]++
	}
	if len(used) < 2 {
		t.Fatalf("%d accounts all routed to one of 3 instances: %v", accounts, used)
	}
}

// SendOneByKey sends each key's messages to the instance GetNodeByKey
// names, so keys spread over instances.
func TestSendOneByKey(t *testing.T) {
	e := newEnv(t, 1)
	src := e.startGame(lobbyType)
	var echoes []*gameNode
	for i := 0; i < 3; i++ {
		echoes = append(echoes, e.startGame(echoType))
	}
	e.ready()
	waitFor(t, 10*time.Second, "sender knows every echo instance", func() bool { return len(src.GetNodeList(echoType)) == 3 })
	from := src.GetID().String()
	want := map[common.NodeID]int{}
	for k := 0; k < 6; k++ {
		key := accountName(k)
		owner := src.GetNodeByKey(echoType, key)
		for i := 0; i < 5; i++ {
			if err := src.SendOneByKey(echoType, key, 1, &pb.Ping{UnixNano: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		want[owner.GetID()] += 5
	}
	if len(want) < 2 {
		t.Fatalf("6 keys all map to one of 3 instances: %v", want)
	}
	count := func(n *gameNode) int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.fromNode[from]
	}
	waitFor(t, 10*time.Second, "30 messages delivered", func() bool {
		s := 0
		for _, n := range echoes {
			s += count(n)
		}
		return s == 30
	})
	for _, n := range echoes {
		if got := count(n); got != want[n.GetID()] {
			t.Errorf("%s got %d messages, want %d", n.GetID(), got, want[n.GetID()])
		}
	}
}
