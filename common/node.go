package common

import (
	"github.com/gogo/protobuf/proto"
)

// FuncTypeOnRelayMsg handles a message relayed by a gateway. source is
// Client for a player's message (account set, cmd without the type offset)
// or the sending node's type (from is then the sender). data is owned by
// the callee only for the duration of the call: copy it to keep it.
type FuncTypeOnRelayMsg func(source NodeType, from Member, account string, cmd uint64, data []byte)

// FuncTypeOnLoseAccount is called once when a player's session ends on a
// gateway (disconnect, idle timeout, kick, drain) for every node the account
// was bound to. It is not called when the session was replaced by a new
// login of the same account.
type FuncTypeOnLoseAccount func(account string)

// FuncTypeOnMember is called on membership changes (join, leave, update).
type FuncTypeOnMember func(m Member)

// ILogger is the printing interface PrintNodeInfo writes to; *logrus.Logger
// and *logrus.Entry satisfy it.
type ILogger interface {
	Infof(format string, args ...interface{})
}

// Member is what a node knows of a cluster member, itself included. Getters
// never block and are safe for concurrent use; a Member is an immutable
// snapshot of the member at the time it was obtained.
type Member interface {
	GetID() NodeID            // 【1】
	GetType() NodeType        // 【1】
	GetIP(i IPType) string    // 【1】 "" when the slot is unset
	GetPort(i int) int32      // 【1】 0 when the slot is unset
	GetOverload(i int) uint32 // 【1】 0 when the slot is unset
	GetVersion() string       // 【1】
	// SendMsg sends msg to this member through a gateway (【3】). It does not
	// wait for delivery; an error means the message was not handed to a
	// gateway (relay disabled, no gateway, connection closed).
	SendMsg(cmd uint64, msg proto.Message) error
}

// INode is the node a game service embeds (seed 004's interface with Go
// idioms: errors instead of bools, Member for remote nodes). All methods
// are safe for concurrent use and none blocks on the network except where
// stated; Send* enqueue and return.
type INode interface {
	Member

	GetNodeOne(t NodeType) Member          // 【2】 one member by the configured selector, nil if none
	GetNodeList(t NodeType) []Member       // 【2】 all members of a type (a fresh slice)
	GetNodeAll() []Member                  // 【2】 every member, self included
	GetNode(id NodeID) Member              // 【2】 nil if unknown
	HaveNode(id NodeID) bool               // 【2】
	PrintNodeInfo(log ILogger, t NodeType) // 【2】
	PrintAllNodeInfo(log ILogger)          // 【2】

	SendOne(t NodeType, cmd uint64, msg proto.Message) error                      // 【3】 one member chosen by the selector
	SendByType(t NodeType, cmd uint64, msg proto.Message, excludeSelf bool) error // 【3】 every member of a type
	SendByID(id NodeID, cmd uint64, msg proto.Message) error                      // 【3】 exactly that member
	SendAll(cmd uint64, msg proto.Message, excludeSelf bool) error                // 【3】 every member

	EnableMessageRelay(v bool)                                          // 【4】 connect to gateways
	RegisterFuncOnRelayMsg(f FuncTypeOnRelayMsg)                        // 【4】
	SendClientMsgByRelay(account string, cmd uint64, data []byte) error // 【4】
	RegisterFuncOnLoseAccount(f FuncTypeOnLoseAccount)                  // 【5】

	SetOverload(i int, v uint32) // propagated to every member through the mgrserver
	SetVersion(v string)         // propagated to every member through the mgrserver
}
