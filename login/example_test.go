package login_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/login"
)

// member is a minimal common.Member; a real login service passes its
// *node.Node as the MemberSource instead of building members by hand.
type member struct {
	id    common.NodeID
	typ   common.NodeType
	ip    string
	ports [2]int32
	load  uint32
}

func (m member) GetID() common.NodeID                { return m.id }
func (m member) GetType() common.NodeType            { return m.typ }
func (m member) GetIP(common.IPType) string          { return m.ip }
func (m member) GetPort(i int) int32                 { return m.ports[i] }
func (m member) GetOverload(i int) uint32            { return m.load }
func (m member) GetVersion() string                  { return "1.0" }
func (m member) SendMsg(uint64, proto.Message) error { return common.ErrRelayDisabled }

// members is a fixed MemberSource.
type members []common.Member

func (ms members) GetNodeList(t common.NodeType) []common.Member {
	var out []common.Member
	for _, m := range ms {
		if m.GetType() == t {
			out = append(out, m)
		}
	}
	return out
}

const lobby = common.FirstGameType

// A login service: check the password, then hand the client a Ticket. This
// example needs a Redis on localhost:6379, so it is compiled but not run.
func Example() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"localhost:6379"}})
	defer rdb.Close()

	cfg := login.DefaultConfig()
	cfg.Redis = rdb
	cfg.Cluster = "mygame"
	cfg.Members = members{
		member{id: common.NewNodeID(), typ: common.Gateway, ip: "203.0.113.10", ports: [2]int32{7000, 7001}, load: 120},
		member{id: common.NewNodeID(), typ: common.Gateway, ip: "203.0.113.11", ports: [2]int32{7000, 0}, load: 80},
		member{id: common.NewNodeID(), typ: lobby, load: 3},
	}
	cfg.StatefulTypes = []common.NodeType{lobby}
	cfg.Checker = login.CheckerFunc(func(ctx context.Context, account, password string) error {
		if password != "open sesame" { // a real checker asks the account database
			return errors.New("password mismatch")
		}
		return nil
	})
	svc, err := login.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ticket, err := svc.Login(ctx, "alice", "open sesame")
	switch {
	case errors.Is(err, login.ErrBadAccount), errors.Is(err, login.ErrBadCredentials):
		fmt.Println("rejected") // tell the player
		return
	case err != nil:
		fmt.Println("try again later:", err) // no gateway, no instance, Redis down
		return
	}
	reply, _ := json.Marshal(ticket) // send to the client
	fmt.Println(ticket.Gateway, len(reply) > 0)
}

// The gateway side of a client's first frame: check the token, load the
// bindings, and keep the affinity window open while the session lives.
func ExampleVerifyToken() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"localhost:6379"}})
	defer rdb.Close()
	ctx := context.Background()
	account, token := "alice", "token-from-the-first-frame"

	switch err := login.VerifyToken(ctx, rdb, "mygame", account, token); {
	case errors.Is(err, login.ErrBadToken):
		fmt.Println("close the connection: bad token")
		return
	case err != nil:
		fmt.Println("close the connection: try again later")
		return
	}
	bindings, err := login.LoadBindings(ctx, rdb, "mygame", account)
	if err != nil {
		return
	}
	// The bound lobby instance is gone: pick a live one and swap it in; the
	// result is whatever binding won, possibly another gateway's choice.
	dead, replacement := bindings[lobby], common.NewNodeID()
	now, err := login.Rebind(ctx, rdb, "mygame", account, lobby, dead, replacement, login.DefaultAffinity)
	if err != nil {
		return
	}
	fmt.Println("route lobby messages to", now)

	// Periodically while the session lives, and once when it ends.
	_ = login.TouchBindings(ctx, rdb, "mygame", account, login.DefaultAffinity)
}
