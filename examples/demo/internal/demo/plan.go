package demo

import (
	"fmt"
	"net"
	"strconv"

	"github.com/xserver/xserver/common"
)

// Role is what a child does in the cluster.
type Role int

// Roles, in start order.
const (
	RoleMgrServer Role = iota // control plane; its admin serves /nodes
	RoleGateway               // data plane
	RoleLogin                 // HTTP login service
	RoleNode                  // echo node
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
	// Type is the member's node type (0 for mgrservers, which are not
	// members).
	Type common.NodeType
}

// Addrs are the fixed loopback addresses Plan hands out; every other
// listener binds port 0.
type Addrs struct {
	MgrAdmins    []string // one mgrserver per address
	GatewayAdmin string
	Login        string // the login service's HTTP address
}

// NodeTypes returns the types of n demo nodes: 4, 4, 5, 4, 4, 5, ...
func NodeTypes(n int) []common.NodeType {
	out := make([]common.NodeType, n)
	for i := range out {
		out[i] = common.FirstGameType
		if i%3 == 2 {
			out[i] = common.FirstGameType + 1
		}
	}
	return out
}

// Want counts the members of plan by type: the membership a leader should
// report once every child has registered.
func Want(plan []Child) map[common.NodeType]int {
	m := make(map[common.NodeType]int)
	for _, c := range plan {
		if c.Role != RoleMgrServer {
			m[c.Type]++
		}
	}
	return m
}

// Plan returns the cluster: one mgrserver per admin address (mgr-1,
// mgr-2, ...), the gateway, the login service binding every player to a
// type-4 instance, then one echo node per type (echo-1, ...). Mgrservers
// come first so they start first.
func Plan(a Addrs, types []common.NodeType) []Child {
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
		Args:   []string{"-listen", a.Login, "-stateful", strconv.FormatUint(uint64(common.FirstGameType), 10)},
		Role:   RoleLogin,
		Listen: a.Login,
		Type:   common.Login,
	})
	for i, t := range types {
		out = append(out, Child{
			Name: fmt.Sprintf("echo-%d", i+1),
			Bin:  "echo",
			Args: []string{"-type", strconv.FormatUint(uint64(t), 10)},
			Role: RoleNode,
			Type: t,
		})
	}
	return out
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
