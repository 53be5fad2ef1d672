package demo

import (
	"fmt"
	"net"
	"strconv"

	"github.com/xserver/xserver/common"
)

// Child describes one process to run.
type Child struct {
	Name string   // short name prefixed to its output ("mgr-1")
	Bin  string   // program name, looked up next to the demo binary
	Args []string // command-line arguments
	// Admin is the admin address of an mgrserver ("" for nodes).
	Admin string
	// Type is a node's type (0 for mgrservers).
	Type common.NodeType
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

// Want counts types: the membership a leader should report.
func Want(types []common.NodeType) map[common.NodeType]int {
	m := make(map[common.NodeType]int)
	for _, t := range types {
		m[t]++
	}
	return m
}

// Plan returns one mgrserver per admin address (mgr-1, mgr-2, ...), each
// listening on a free loopback port, then one echo node per type
// (echo-1, ...). Mgrservers come first so they start first.
func Plan(mgrAdmins []string, types []common.NodeType) []Child {
	var out []Child
	for i, a := range mgrAdmins {
		out = append(out, Child{
			Name:  fmt.Sprintf("mgr-%d", i+1),
			Bin:   "mgrserver",
			Args:  []string{"-listen", "127.0.0.1:0", "-admin", a},
			Admin: a,
		})
	}
	for i, t := range types {
		out = append(out, Child{
			Name: fmt.Sprintf("echo-%d", i+1),
			Bin:  "echo",
			Args: []string{"-type", strconv.FormatUint(uint64(t), 10)},
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
