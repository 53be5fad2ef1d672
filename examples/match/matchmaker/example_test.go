package matchmaker_test

import (
	"fmt"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/examples/match/matchmaker"
)

func ExampleQueue() {
	lobby := common.NodeID{1}
	q := matchmaker.NewQueue("demo")
	_, _ = q.Enqueue(game.Ticket{Player: game.Player{Account: "alice", Name: "Alice"}, Mode: "duel", Lobby: lobby})
	m, _ := q.Enqueue(game.Ticket{Player: game.Player{Account: "bob", Name: "Bob"}, Mode: "duel", Lobby: lobby})
	for _, n := range m.Notices() {
		fmt.Printf("%s: %s meets %s\n", n.Matched.MatchID, n.Matched.Account, n.Matched.Opponent.Name)
	}
	// Output:
	// m-demo-1: alice meets Bob
	// m-demo-1: bob meets Alice
}
