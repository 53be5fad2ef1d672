package login

import (
	"sync"

	"github.com/gogo/protobuf/proto"

	"github.com/xserver/xserver/common"
)

// fakeMember is an immutable common.Member.
type fakeMember struct {
	id    common.NodeID
	typ   common.NodeType
	ip    string
	ports [2]int32
	load  uint32
	state uint32 // overload slot GatewayLoadState
	ver   string // "" means "test"
}

var _ common.Member = fakeMember{}

func (m fakeMember) GetID() common.NodeID     { return m.id }
func (m fakeMember) GetType() common.NodeType { return m.typ }
func (m fakeMember) GetIP(i common.IPType) string {
	if i == common.IPOuter {
		return m.ip
	}
	return ""
}
func (m fakeMember) GetPort(i int) int32 {
	if i < 0 || i >= len(m.ports) {
		return 0
	}
	return m.ports[i]
}
func (m fakeMember) GetOverload(i int) uint32 {
	switch i {
	case GatewayLoadSessions:
		return m.load
	case GatewayLoadState:
		return m.state
	}
	return 0
}
func (m fakeMember) GetVersion() string {
	if m.ver == "" {
		return "test"
	}
	return m.ver
}
func (m fakeMember) SendMsg(uint64, proto.Message) error { return common.ErrRelayDisabled }

// idN returns a recognisable NodeID: n in the last byte.
func idN(n byte) common.NodeID {
	var id common.NodeID
	id[0] = 0xab
	id[15] = n
	return id
}

func gateway(n byte, ip string, tcp, ws int32, load uint32) fakeMember {
	return fakeMember{id: idN(n), typ: common.Gateway, ip: ip, ports: [2]int32{tcp, ws}, load: load}
}

func instance(n byte, t common.NodeType, load uint32) fakeMember {
	return fakeMember{id: idN(n), typ: t, load: load}
}

// fakeSource is a MemberSource the test changes as it goes.
type fakeSource struct {
	mu      sync.Mutex // guards members
	members map[common.NodeType][]common.Member
}

func newSource(ms ...fakeMember) *fakeSource {
	s := &fakeSource{}
	s.set(ms...)
	return s
}

// set replaces the whole membership.
func (s *fakeSource) set(ms ...fakeMember) {
	by := make(map[common.NodeType][]common.Member)
	for _, m := range ms {
		by[m.typ] = append(by[m.typ], m)
	}
	s.mu.Lock()
	s.members = by
	s.mu.Unlock()
}

func (s *fakeSource) GetNodeList(t common.NodeType) []common.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]common.Member(nil), s.members[t]...)
}
