package demo

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

// Role is what a child does in the cluster. Children stop in the reverse
// order: bots, then the edge (login service and gateway), then the game
// nodes, then the mgrservers.
type Role int

// Roles, in start order.
const (
	RoleMgrServer Role = iota // control plane; its admin serves /nodes
	RoleGateway               // data plane
	RoleLogin                 // HTTP login service and the browser page
	RoleNode                  // game node: lobby or match
	RoleBot                   // scripted players (a client, not a member)
)

// Child describes one process to run.
type Child struct {
	Name string   // short name prefixed to its output ("mgr-1")
	Bin  string   // program name, looked up next to the demo binary
	Args []string // command-line arguments
	Role Role
	// Admin is the admin HTTP address of an mgrserver or the gateway ("" for
	// the others).
	Admin string
	// Listen is the login service's HTTP address ("" for the others).
	Listen string
	// Type is the member's node type (0 for mgrservers and bots, which are
	// not members).
	Type common.NodeType
}

// Member reports whether the child registers with the mgrserver leader.
func (c Child) Member() bool { return c.Role != RoleMgrServer && c.Role != RoleBot }

// Addrs are the fixed loopback addresses Plan hands out; every other
// listener binds port 0.
type Addrs struct {
	MgrAdmins    []string // one mgrserver per address
	GatewayAdmin string
	Login        string // the login service's HTTP address (API and page)
}

// Want counts the members of plan by type: the membership a leader should
// report once every child has registered.
func Want(plan []Child) map[common.NodeType]int {
	m := make(map[common.NodeType]int)
	for _, c := range plan {
		if c.Member() {
			m[c.Type]++
		}
	}
	return m
}

// Plan returns the cluster: one mgrserver per admin address (mgr-1,
// mgr-2, ...), the gateway (TCP and WebSocket), the login service binding
// every player to one instance of each stateful type (a comma list, as
// examples/login's -stateful takes it), then the lobbies and the match
// nodes. Mgrservers come first so they start first. Bots are not part of
// it: they start once the cluster has formed (see Bots).
func Plan(a Addrs, lobbies, matches int, stateful string) []Child {
	var out []Child
	for i, adm := range a.MgrAdmins {
		out = append(out, Child{
			Name:  fmt.Sprintf("mgr-%d", i+1),
			Bin:   "mgrserver",
			Args:  []string{"-listen", "127.0.0.1:0", "-admin", adm},
			Role:  RoleMgrServer,
			Admin: adm,
		})
	}
	out = append(out, Child{
		Name:  "gateway",
		Bin:   "gateway",
		Args:  []string{"-listen", "127.0.0.1:0", "-intranet", "127.0.0.1:0", "-ws-listen", "127.0.0.1:0", "-admin", a.GatewayAdmin},
		Role:  RoleGateway,
		Admin: a.GatewayAdmin,
		Type:  common.Gateway,
	}, Child{
		Name:   "login",
		Bin:    "login",
		Args:   []string{"-listen", a.Login, "-stateful", stateful},
		Role:   RoleLogin,
		Listen: a.Login,
		Type:   common.Login,
	})
	for i := range lobbies {
		out = append(out, Child{Name: numbered("lobby", i, lobbies), Bin: "lobby", Role: RoleNode, Type: game.LobbyType})
	}
	for i := range matches {
		out = append(out, Child{Name: numbered("match", i, matches), Bin: "match", Role: RoleNode, Type: game.MatchType})
	}
	return out
}

// DefaultStateful is the login service's stateful types in the demo: the
// lobby's, "4".
func DefaultStateful() string { return strconv.FormatUint(uint64(game.LobbyType), 10) }

// Bots is the bot swarm: n bots that log in at loginURL, each saying a
// world chat line every chatEvery (0: never), and queue until stopped.
func Bots(loginURL string, n int, chatEvery time.Duration) Child {
	return Child{
		Name: "bots",
		Bin:  "bot",
		Args: []string{"-n", strconv.Itoa(n), "-duration", "0", "-login", loginURL, "-chat-every", chatEvery.String()},
		Role: RoleBot,
	}
}

// numbered is "name" when there is one of a kind, else "name-<i+1>".
func numbered(name string, i, of int) string {
	if of == 1 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, i+1)
}

// TypeName names a node type of the example game: "lobby", "match", or
// the type's own name ("gateway", "type6").
func TypeName(t common.NodeType) string {
	switch t {
	case game.LobbyType:
		return "lobby"
	case game.MatchType:
		return "match"
	}
	return t.String()
}

// FreeAddr returns 127.0.0.1:<port> for a port that was free a moment
// ago (the child binds it soon after; a collision fails that child).
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// Available reports whether addr can be listened on right now.
func Available(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
