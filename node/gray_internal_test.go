package node

import (
	"fmt"
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
	pb "github.com/xserver/xserver/proto"
)

// Under a gray release GetNodeOne sends the rollout's share of its picks
// to the new version (exactly, over 10 000 picks), and GetNodeByKey keeps
// each key on its side, on one instance.
func TestPickGray(t *testing.T) {
	rs, err := discovery.ParseRollouts("type=5,version=2.0,share=10%")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{Rollouts: rs}}
	var list []*member
	for i, v := range []string{"1.0", "1.0", "1.0", "2.0"} {
		var id common.NodeID
		id[0] = byte(i + 1)
		list = append(list, &member{n: n, id: id, info: &pb.NodeInfo{Type: 5, Version: v}})
	}
	for _, mode := range []discovery.Mode{discovery.Random, discovery.RoundRobin, discovery.LeastLoad} {
		onNew := 0
		for range 10000 {
			if n.pickGrayLocked(&rs[0], list, mode, "").GetVersion() == "2.0" {
				onNew++
			}
		}
		if onNew != 1000 {
			t.Errorf("%v: %d of 10 000 picks on the new version, want 1 000", mode, onNew)
		}
	}
	for i := range 500 {
		key := fmt.Sprint("player-", i)
		m := n.pickGrayLocked(&rs[0], list, discovery.ConsistentHash, key)
		if (m.GetVersion() == "2.0") != rs[0].In(key) {
			t.Fatalf("%s on %s, its side is new=%v", key, m.GetVersion(), rs[0].In(key))
		}
		if again := n.pickGrayLocked(&rs[0], list, discovery.ConsistentHash, key); again != m {
			t.Fatalf("%s moved", key)
		}
	}
}
