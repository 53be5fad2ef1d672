package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
	pb "github.com/xserver/xserver/proto"
)

// With -selector consistent-hash the gateway keys stateless routing by
// account: one account always reaches the same instance, and accounts
// spread over the instances.
//
// Node IDs are random, so which instance owns which account changes from
// run to run: 6 fixed accounts all land on one of 3 instances in about 1
// run in 243 ((1/3)^5). The test so goes on with more accounts until two
// instances served (maxAccounts all on one instance: about 3^-39).
func TestConsistentHashRoutesByAccount(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Selector = discovery.ConsistentHash })
	e.startGame(lobbyType)
	for i := 0; i < 3; i++ {
		e.startGame(echoType)
	}
	e.ready()
	const accounts, maxAccounts, msgs = 6, 40, 12
	used := map[string]int{}
	a := 0
	for ; a < accounts || (len(used) < 2 && a < maxAccounts); a++ {
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
		t.Fatalf("%d accounts all routed to one of 3 instances: %v", a, used)
	}
}

// SendOneByKey sends each key's messages to the instance GetNodeByKey
// names, so keys spread over instances. As above, the ring depends on the
// random node IDs: keys are added until two instances own some (6 fixed
// keys all had one owner in about 1 run in 243).
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
	const keys, maxKeys = 6, 40
	want := map[common.NodeID]int{}
	sent := 0
	for k := 0; k < keys || (len(want) < 2 && k < maxKeys); k++ {
		key := accountName(k)
		owner := src.GetNodeByKey(echoType, key)
		for i := 0; i < 5; i++ {
			if err := src.SendOneByKey(echoType, key, 1, &pb.Ping{UnixNano: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		want[owner.GetID()] += 5
		sent += 5
	}
	if len(want) < 2 {
		t.Fatalf("%d keys all map to one of 3 instances: %v", sent/5, want)
	}
	count := func(n *gameNode) int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.fromNode[from]
	}
	waitFor(t, 10*time.Second, fmt.Sprintf("%d messages delivered", sent), func() bool {
		s := 0
		for _, n := range echoes {
			s += count(n)
		}
		return s == sent
	})
	for _, n := range echoes {
		if got := count(n); got != want[n.GetID()] {
			t.Errorf("%s got %d messages, want %d", n.GetID(), got, want[n.GetID()])
		}
	}
}
