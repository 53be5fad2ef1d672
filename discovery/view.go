package discovery

import (
	"errors"
	"fmt"

	"github.com/xserver/xserver/common"
	pb "github.com/xserver/xserver/proto"
)

// ErrStaleEpoch: a snapshot or event comes from a leader older than one
// already seen.
var ErrStaleEpoch = errors.New("discovery: stale leader epoch")

// ChangeKind says what happened to a member.
type ChangeKind int

// Kinds of membership change.
const (
	Joined ChangeKind = iota
	Left
	Updated
)

func (k ChangeKind) String() string {
	switch k {
	case Joined:
		return "join"
	case Left:
		return "leave"
	case Updated:
		return "update"
	}
	return fmt.Sprintf("change(%d)", int(k))
}

// Change is one membership change a View reports.
type Change struct {
	Kind   ChangeKind
	ID     common.NodeID
	Info   *pb.NodeInfo // the member as it is now (as it was, for Left)
	Failed bool         // Left through failure rather than a graceful leave
}

// View is a node's picture of the cluster, fed by the mgrserver's snapshots
// and events (the sync semantics of mgo's topology loop): a complete snapshot removes the
// members it does not list, a partial one only adds and updates; events
// carry sequence numbers and a gap asks for a full resync. It is pure and
// not safe for concurrent use: one goroutine owns it and publishes what
// readers need.
type View struct {
	members map[common.NodeID]*pb.NodeInfo
	epoch   uint64 // highest leader epoch seen
	seq     uint64 // last event sequence applied in epoch
	synced  bool   // a snapshot of epoch has been applied
}

// NewView returns an empty view.
func NewView() *View { return &View{members: make(map[common.NodeID]*pb.NodeInfo)} }

// Epoch is the highest leader epoch seen.
func (v *View) Epoch() uint64 { return v.epoch }

// Seq is the last event sequence number applied.
func (v *View) Seq() uint64 { return v.seq }

// Len is the number of members.
func (v *View) Len() int { return len(v.members) }

// Get returns a member's info (shared: do not modify).
func (v *View) Get(id common.NodeID) (*pb.NodeInfo, bool) {
	in, ok := v.members[id]
	return in, ok
}

// Each calls f for every member in no particular order.
func (v *View) Each(f func(id common.NodeID, in *pb.NodeInfo)) {
	for id, in := range v.members {
		f(id, in)
	}
}

// Accept reports whether a leader of epoch may be followed: never one older
// than the newest seen.
func (v *View) Accept(epoch uint64) bool { return epoch >= v.epoch }

// Begin starts following a leader of epoch: sequence numbers restart, and
// events are refused until its first snapshot. Members are kept.
func (v *View) Begin(epoch uint64) error {
	if !v.Accept(epoch) {
		return fmt.Errorf("%w: %d after %d", ErrStaleEpoch, epoch, v.epoch)
	}
	v.epoch, v.seq, v.synced = epoch, 0, false
	return nil
}

// Fence records that a leader of epoch exists (the node read it in Redis)
// while it may still follow an older one: from now on nothing from a
// leader older than epoch is applied (its events are ignored as if no
// snapshot had been applied, its snapshots are refused as stale) until a
// snapshot of epoch or newer arrives. It reports whether the epoch rose.
func (v *View) Fence(epoch uint64) bool {
	if epoch <= v.epoch {
		return false
	}
	v.epoch, v.seq, v.synced = epoch, 0, false
	return true
}

// ApplySnapshot merges a snapshot. Members it lists are added or updated;
// when it is complete, members it does not list are removed.
func (v *View) ApplySnapshot(s *pb.Snapshot) ([]Change, error) {
	if s.Epoch < v.epoch {
		return nil, fmt.Errorf("%w: snapshot of %d after %d", ErrStaleEpoch, s.Epoch, v.epoch)
	}
	v.epoch, v.seq, v.synced = s.Epoch, s.Seq, true
	if len(v.members) == 0 && len(s.Nodes) > 0 {
		v.members = make(map[common.NodeID]*pb.NodeInfo, len(s.Nodes))
	}
	var out []Change
	ids := make([]common.NodeID, len(s.Nodes))
	for i, in := range s.Nodes {
		id, err := common.NodeIDFromBytes(in.Id)
		if err != nil {
			return out, err
		}
		ids[i] = id
		if c, ok := v.put(id, in); ok {
			out = append(out, c)
		}
	}
	// A complete snapshot removes members it does not list. The count of
	// members cannot shortcut this: a snapshot that lists an ID twice has
	// as many entries as a view holding one member it does not list.
	if s.Complete {
		seen := make(map[common.NodeID]struct{}, len(ids))
		for _, id := range ids {
			seen[id] = struct{}{}
		}
		for id, in := range v.members {
			if _, ok := seen[id]; !ok {
				delete(v.members, id)
				out = append(out, Change{Kind: Left, ID: id, Info: in, Failed: true})
			}
		}
	}
	return out, nil
}

// ApplyEvent applies one event of the current epoch. gap reports that
// events were missed (or no snapshot was applied yet): the caller should
// request a full sync. Events already applied are ignored.
func (v *View) ApplyEvent(e *pb.MemberEvent) (ch []Change, gap bool, err error) {
	if !v.synced {
		return nil, true, nil
	}
	if e.Seq <= v.seq {
		return nil, false, nil
	}
	gap = e.Seq != v.seq+1
	v.seq = e.Seq
	if e.Info == nil {
		return nil, gap, fmt.Errorf("%w: event without node info", common.ErrBadInput)
	}
	id, err := common.NodeIDFromBytes(e.Info.Id)
	if err != nil {
		return nil, gap, err
	}
	switch e.Kind {
	case pb.MemberEvent_JOIN, pb.MemberEvent_UPDATE:
		if c, ok := v.put(id, e.Info); ok {
			ch = append(ch, c)
		}
	case pb.MemberEvent_LEAVE:
		if old, ok := v.members[id]; ok {
			delete(v.members, id)
			ch = append(ch, Change{Kind: Left, ID: id, Info: old, Failed: e.Failed})
		}
	default:
		return nil, gap, fmt.Errorf("%w: event kind %d", common.ErrBadInput, e.Kind)
	}
	return ch, gap, nil
}

// put adds or updates a member and reports the change, if any.
func (v *View) put(id common.NodeID, in *pb.NodeInfo) (Change, bool) {
	old, ok := v.members[id]
	v.members[id] = in
	if !ok {
		return Change{Kind: Joined, ID: id, Info: in}, true
	}
	if SameInfo(old, in) {
		return Change{}, false
	}
	return Change{Kind: Updated, ID: id, Info: in}, true
}

// SameInfo reports whether two descriptions are equal field by field.
func SameInfo(a, b *pb.NodeInfo) bool {
	if a.Type != b.Type || a.Version != b.Version || string(a.Id) != string(b.Id) ||
		len(a.Addrs) != len(b.Addrs) || len(a.Ports) != len(b.Ports) || len(a.Overload) != len(b.Overload) {
		return false
	}
	for i := range a.Addrs {
		if a.Addrs[i] != b.Addrs[i] {
			return false
		}
	}
	for i := range a.Ports {
		if a.Ports[i] != b.Ports[i] {
			return false
		}
	}
	for i := range a.Overload {
		if a.Overload[i] != b.Overload[i] {
			return false
		}
	}
	return true
}
