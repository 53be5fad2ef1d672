package node_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/node"
)

// A lobby service embeds a node: it registers with the mgrserver found
// through Redis, waits for the member list and looks up the chat servers.
// (It needs Redis and a running mgrserver, so it is compiled, not run.)
func ExampleNode() {
	const (
		lobby = common.FirstGameType
		chat  = common.FirstGameType + 1
	)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer rdb.Close()

	cfg := node.DefaultConfig()
	cfg.Redis = rdb
	cfg.Secret = "intranet-secret" // the same on every mgrserver, gateway and node
	cfg.Type = lobby
	cfg.Ports = []int32{7001}
	n, err := node.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	n.RegisterFuncOnJoin(func(m common.Member) { fmt.Println("joined:", m.GetType(), m.GetID()) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close() // a graceful leave: members see a leave, not a failure
	if err := n.WaitReady(ctx); err != nil {
		fmt.Println("no mgrserver:", err)
		return
	}
	for _, m := range n.GetNodeList(chat) {
		fmt.Println("chat server", m.GetID(), m.GetIP(common.IPInner), m.GetPort(0))
	}
}
