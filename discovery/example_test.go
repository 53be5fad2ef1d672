package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"

	"github.com/xserver/xserver/discovery"
)

type server string

func (s server) Key() string { return string(s) }

type pinger struct{ down map[server]bool }

func (p pinger) Ping(_ context.Context, s server) (bool, error) {
	if p.down[s] {
		return false, errors.New("unreachable")
	}
	return true, nil
}

func ExampleManager() {
	m := discovery.NewManager(discovery.ManagerConfig[server]{
		Pinger: pinger{down: map[server]bool{"gw-1": true, "gw-2": true}},
		Rand:   rand.New(rand.NewSource(1)),
	})
	fmt.Println("offline:", m.IsOffline())

	m.AddServer("gw-1")
	m.AddServer("gw-2")
	m.AddServer("gw-3")
	head, _ := m.FindServer()
	fmt.Println("using", head, "offline:", m.IsOffline())

	// A failed RPC to the head rotates it to the tail.
	m.NotifyFailedServer(head)
	fmt.Println("after failure:", m.Servers())

	// A rebalance shuffles the list but never keeps an unreachable head:
	// gw-3 is the only server that answers.
	m.RebalanceServers(context.Background())
	head, _ = m.FindServer()
	fmt.Println("after rebalance using", head, "of", m.NumServers())
	// Output:
	// offline: true
	// using gw-1 offline: false
	// after failure: [gw-2 gw-3 gw-1]
	// after rebalance using gw-3 of 3
}

type backend struct {
	name  string
	conns uint32
}

func (b backend) Key() string  { return b.name }
func (b backend) Load() uint32 { return b.conns }

func ExampleSelector() {
	sel := discovery.NewSelector[backend](rand.New(rand.NewSource(1)))
	if _, err := sel.Get(discovery.RoundRobin, ""); errors.Is(err, discovery.ErrNoServers) {
		fmt.Println("empty:", err)
	}

	sel.Update([]backend{{"game-c", 7}, {"game-a", 3}, {"game-b", 3}})
	fmt.Println(sel.GetAll())

	// Least load spreads over the two servers tied at 3 connections.
	picks := map[string]int{}
	for range 4 {
		b, _ := sel.Get(discovery.LeastLoad, "")
		picks[b.name]++
	}
	fmt.Println(picks)

	// A consistent-hash key keeps its server.
	first, _ := sel.Get(discovery.ConsistentHash, "player-42")
	again, _ := sel.Get(discovery.ConsistentHash, "player-42")
	fmt.Println("sticky:", first == again)

	mode, err := discovery.ParseMode("round-robin")
	fmt.Println(mode, err)
	_, err = discovery.ParseMode("fastest")
	fmt.Println(err)
	// Output:
	// empty: discovery: no available servers (mode round-robin)
	// [{game-a 3} {game-b 3} {game-c 7}]
	// map[game-a:2 game-b:2]
	// sticky: true
	// round-robin <nil>
	// discovery: select mode not supported: "fastest" (want random, round-robin, least-load or consistent-hash)
}
