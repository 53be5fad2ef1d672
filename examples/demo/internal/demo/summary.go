package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/xserver/xserver/common"
)

// Status is the part of an mgrserver's /nodes document (mgrserver.Status
// in JSON) the demo reads. It is declared here because mgrserver.Status
// does not decode: common.NodeID only marshals.
type Status struct {
	Leader bool         `json:"leader"`
	Epoch  uint64       `json:"epoch"`
	Nodes  []NodeStatus `json:"nodes"`
}

// NodeStatus is one member in Status.
type NodeStatus struct {
	ID      string          `json:"id"`
	Type    common.NodeType `json:"type"`
	Version string          `json:"version"`
}

// View is what one mgrserver's /nodes said, or why it said nothing.
type View struct {
	Name   string
	Status *Status // nil when Err is set
	Err    error
}

// Fetch asks every mgrserver in children for /nodes on its Admin
// address, one after another, each bounded by ctx and the client's
// timeout.
func Fetch(ctx context.Context, c *http.Client, children []Child) []View {
	var out []View
	for _, ch := range children {
		if ch.Role != RoleMgrServer {
			continue
		}
		st, err := fetchOne(ctx, c, "http://"+ch.Admin+"/nodes")
		out = append(out, View{Name: ch.Name, Status: st, Err: err})
	}
	return out
}

func fetchOne(ctx context.Context, c *http.Client, url string) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("demo: %s: %s", url, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("demo: %s: %w", url, err)
	}
	return &st, nil
}

// leader returns the view of the leader: the one claiming to lead with
// the highest epoch (two may claim it for a moment during a hand-over).
func leader(views []View) (View, bool) {
	var best View
	found := false
	for _, v := range views {
		if v.Status == nil || !v.Status.Leader {
			continue
		}
		if !found || v.Status.Epoch > best.Status.Epoch {
			best, found = v, true
		}
	}
	return best, found
}

// Summary renders views as one line, e.g.
//
//	cluster: leader mgr-1 epoch 1 (standby mgr-2), 3 nodes: type4 x2, type5 x1
//
// Unreachable mgrservers are named as such; without a leader the line
// says so.
func Summary(views []View) string {
	var b strings.Builder
	b.WriteString("cluster: ")
	l, ok := leader(views)
	if ok {
		fmt.Fprintf(&b, "leader %s epoch %d", l.Name, l.Status.Epoch)
	} else {
		b.WriteString("no leader yet")
	}
	var others []string
	for _, v := range views {
		switch {
		case ok && v.Name == l.Name:
		case v.Err != nil:
			others = append(others, v.Name+" unreachable")
		case v.Status.Leader:
			others = append(others, v.Name+" also claims to lead")
		default:
			others = append(others, "standby "+v.Name)
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(others, ", "))
	}
	if !ok {
		return b.String()
	}
	counts := countTypes(l.Status.Nodes)
	switch n := len(l.Status.Nodes); n {
	case 0:
		b.WriteString(", no nodes")
	case 1:
		b.WriteString(", 1 node: ")
	default:
		fmt.Fprintf(&b, ", %d nodes: ", n)
	}
	types := make([]common.NodeType, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s x%d", t, counts[t])
	}
	return b.String()
}

func countTypes(nodes []NodeStatus) map[common.NodeType]int {
	m := make(map[common.NodeType]int)
	for _, n := range nodes {
		m[n.Type]++
	}
	return m
}

// Reached reports whether a leader reports exactly the wanted number of
// nodes of each type.
func Reached(views []View, want map[common.NodeType]int) bool {
	l, ok := leader(views)
	if !ok {
		return false
	}
	got := countTypes(l.Status.Nodes)
	if len(got) != len(want) {
		return false
	}
	for t, n := range want {
		if got[t] != n {
			return false
		}
	}
	return true
}

// DescribeWant renders want like Summary renders nodes: "type4 x2, type5 x1".
func DescribeWant(want map[common.NodeType]int) string {
	types := make([]common.NodeType, 0, len(want))
	for t := range want {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s x%d", t, want[t])
	}
	return strings.Join(parts, ", ")
}
