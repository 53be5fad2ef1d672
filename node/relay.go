package node

import (
	"fmt"

	"github.com/gogo/protobuf/proto"

	"github.com/xserver/xserver/common"
)

// EnableMessageRelay turns gateway message relay on or off.
func (n *Node) EnableMessageRelay(v bool) {
	n.mu.Lock()
	n.relay = v
	n.mu.Unlock()
}

// RegisterFuncOnRelayMsg sets the handler of relayed messages.
func (n *Node) RegisterFuncOnRelayMsg(f common.FuncTypeOnRelayMsg) {
	n.mu.Lock()
	n.onRelay = f
	n.mu.Unlock()
}

// RegisterFuncOnLoseAccount sets the lose-account handler.
func (n *Node) RegisterFuncOnLoseAccount(f common.FuncTypeOnLoseAccount) {
	n.mu.Lock()
	n.onLose = f
	n.mu.Unlock()
}

func (n *Node) relayReady() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return common.ErrClosed
	}
	if !n.relay {
		return common.ErrRelayDisabled
	}
	return fmt.Errorf("%w: gateway links are not established", common.ErrNoGateway)
}

// SendOne sends to one member of type t chosen by the selector.
func (n *Node) SendOne(t common.NodeType, cmd uint64, msg proto.Message) error {
	return n.relayReady()
}

// SendByType sends to every member of type t.
func (n *Node) SendByType(t common.NodeType, cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.relayReady()
}

// SendByID sends to one member.
func (n *Node) SendByID(id common.NodeID, cmd uint64, msg proto.Message) error {
	return n.relayReady()
}

// SendAll sends to every member.
func (n *Node) SendAll(cmd uint64, msg proto.Message, excludeSelf bool) error {
	return n.relayReady()
}

// SendClientMsgByRelay sends to a player's client through its gateway.
func (n *Node) SendClientMsgByRelay(account string, cmd uint64, data []byte) error {
	return n.relayReady()
}
