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
//	cluster: leader mgr-1 epoch 1 (standby mgr-2), 3 nodes: lobby x2, match x1
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
	b.WriteString(others(views, l.Name))
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
		fmt.Fprintf(&b, "%s x%d", TypeName(t), counts[t])
	}
	return b.String()
}

// others describes the mgrservers but the leader: " (standby mgr-2,
// mgr-3 unreachable)", or "" when there are none.
func others(views []View, leader string) string {
	var out []string
	for _, v := range views {
		switch {
		case v.Name == leader:
		case v.Err != nil:
			out = append(out, v.Name+" unreachable")
		case v.Status.Leader:
			out = append(out, v.Name+" also claims to lead")
		default:
			out = append(out, "standby "+v.Name)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return " (" + strings.Join(out, ", ") + ")"
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

// DescribeWant renders want like Summary renders nodes: "lobby x2, match x1".
func DescribeWant(want map[common.NodeType]int) string {
	types := make([]common.NodeType, 0, len(want))
	for t := range want {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s x%d", TypeName(t), want[t])
	}
	return strings.Join(parts, ", ")
}

// Tracker turns successive /nodes views into membership events: who
// leads, and which members joined or left. It is pure and not safe for
// concurrent use (the demo's watch loop owns it).
type Tracker struct {
	leader string                // "<name> <epoch>" of the last leader seen; "" before
	known  map[string]NodeStatus // every member some leader listed, by ID
	listed map[string]bool       // members the current leader has listed
}

// Change is one membership event.
type Change struct {
	Kind   string     // "leader", "no-leader", "join", "rejoin", "leave"
	Leader string     // the leader's name (leader)
	Epoch  uint64     // its epoch (leader)
	Others string     // the other mgrservers, " (standby mgr-2)" (leader, no-leader)
	Node   NodeStatus // the member (join, rejoin, leave)
}

// Update compares views with what the Tracker saw before. A new leader
// (a failover or a hand-over) starts from nothing while members
// re-register, so what it does not list yet is not reported as gone:
// only a member the same leader listed before and no longer lists has
// left. Members a new leader lists that an earlier one did are
// re-registrations ("rejoin"), not joins.
func (t *Tracker) Update(views []View) []Change {
	if t.known == nil {
		t.known = make(map[string]NodeStatus)
	}
	l, ok := leader(views)
	if !ok {
		if t.leader == "" || t.leader == "-" { // none yet, or already said
			return nil
		}
		t.leader, t.listed = "-", nil
		return []Change{{Kind: "no-leader", Others: others(views, "")}}
	}
	var out []Change
	if key := fmt.Sprintf("%s %d", l.Name, l.Status.Epoch); key != t.leader {
		t.leader, t.listed = key, make(map[string]bool)
		out = append(out, Change{Kind: "leader", Leader: l.Name, Epoch: l.Status.Epoch, Others: others(views, l.Name)})
	}
	cur := make(map[string]bool, len(l.Status.Nodes))
	for _, n := range l.Status.Nodes {
		cur[n.ID] = true
		if t.listed[n.ID] {
			continue
		}
		t.listed[n.ID] = true
		kind := "join"
		if _, seen := t.known[n.ID]; seen {
			kind = "rejoin"
		}
		t.known[n.ID] = n
		out = append(out, Change{Kind: kind, Node: n})
	}
	var gone []NodeStatus
	for id := range t.listed {
		if !cur[id] {
			gone = append(gone, t.known[id])
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		if gone[i].Type != gone[j].Type {
			return gone[i].Type < gone[j].Type
		}
		return gone[i].ID < gone[j].ID
	})
	for _, n := range gone {
		delete(t.listed, n.ID)
		delete(t.known, n.ID)
		out = append(out, Change{Kind: "leave", Node: n})
	}
	return out
}
