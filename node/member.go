package node

import (
	"github.com/gogo/protobuf/proto"

	"github.com/xserver/xserver/common"
	pb "github.com/xserver/xserver/proto"
)

// member is an immutable snapshot of one cluster member.
type member struct {
	n    *Node
	id   common.NodeID
	info *pb.NodeInfo
}

var _ common.Member = (*member)(nil)

func (m *member) GetID() common.NodeID     { return m.id }
func (m *member) GetType() common.NodeType { return common.NodeType(m.info.Type) }
func (m *member) GetVersion() string       { return m.info.Version }

func (m *member) GetIP(i common.IPType) string {
	if int(i) < 0 || int(i) >= len(m.info.Addrs) {
		return ""
	}
	return m.info.Addrs[i]
}

func (m *member) GetPort(i int) int32 {
	if i < 0 || i >= len(m.info.Ports) {
		return 0
	}
	return m.info.Ports[i]
}

func (m *member) GetOverload(i int) uint32 {
	if i < 0 || i >= len(m.info.Overload) {
		return 0
	}
	return m.info.Overload[i]
}

// SendMsg sends msg to this member through a gateway.
func (m *member) SendMsg(cmd uint64, msg proto.Message) error {
	return m.n.SendByID(m.id, cmd, msg)
}

// Key and Load make a member a discovery.Candidate.
func (m *member) Key() string  { return m.id.String() }
func (m *member) Load() uint32 { return m.GetOverload(0) }
