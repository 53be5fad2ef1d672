package common

import (
	"context"

	"github.com/gogo/protobuf/proto"
)

// FuncTypeOnRelayMsg handles a message relayed by a gateway. source is
// Client for a player's message (account set, cmd without the type offset)
// or the sending node's type (from is then the sender). data is owned by
// the callee only for the duration of the call: copy it to keep it.
type FuncTypeOnRelayMsg func(source NodeType, from Member, account string, cmd uint64, data []byte)

// FuncTypeOnLoseAccount is called once when an account stops being bound
// to the node: its session ended (logout, kick, idle timeout, the resume
// window passed without a resume) or it was rebound to another instance.
// It is never called for a session that resumed, nor when a new login of
// the account is bound to the same node again.
type FuncTypeOnLoseAccount func(account string)

// FuncTypeOnAccount is called with an account (disconnected and may
// resume, or resumed).
type FuncTypeOnAccount func(account string)

// Undeliverable describes a message that could not be delivered: to a
// player (Account set: offline, or its session ended before it got the
// message) or to a node (To set: the gateway could not forward it). Code is
// a wire code (wire.CodeNoNode, wire.CodeExpired, wire.CodeSlow).
type Undeliverable struct {
	Account string
	To      NodeID
	Cmd     uint64
	Code    uint16
}

// FuncTypeOnCall answers a call from another node: ctx carries the
// caller's deadline and ends when the caller gives up; the returned bytes
// are the reply, an error goes back to the caller instead.
type FuncTypeOnCall func(ctx context.Context, from Member, cmd uint64, data []byte) ([]byte, error)

// FuncTypeOnUndeliverable is called for every message that could not be
// delivered after it was accepted for sending.
type FuncTypeOnUndeliverable func(u Undeliverable)

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
	GetID() NodeID
	GetType() NodeType
	GetIP(i IPType) string    // "" when the slot is unset
	GetPort(i int) int32      // 0 when the slot is unset
	GetOverload(i int) uint32 // 0 when the slot is unset
	GetVersion() string
	// SendMsg sends msg to this member through a gateway. It does not
	// wait for delivery; an error means the message was not handed to a
	// gateway (relay disabled, no gateway, connection closed).
	SendMsg(cmd uint64, msg proto.Message) error
}

// INode is the node a game service embeds: go-xserver's INode with Go
// idioms (errors instead of bools, Member for remote nodes). All methods
// are safe for concurrent use and none blocks on the network except where
// stated; Send* enqueue and return.
type INode interface {
	Member

	// Lifecycle.
	Start(ctx context.Context) error     // returns at once; joins in the background
	WaitReady(ctx context.Context) error // blocks until registered with a member list, or ctx ends
	Close() error                        // leaves gracefully; safe twice

	// Members.
	GetNodeOne(t NodeType) Member               // one member by the configured selector, nil if none
	GetNodeByKey(t NodeType, key string) Member // the member key maps to on a consistent-hash ring, nil if none
	GetNodeList(t NodeType) []Member            // all members of a type (a fresh slice)
	GetNodeAll() []Member                       // every member, self included
	GetNode(id NodeID) Member                   // nil if unknown
	HaveNode(id NodeID) bool
	PrintNodeInfo(log ILogger, t NodeType)
	PrintAllNodeInfo(log ILogger)
	RegisterFuncOnJoin(f FuncTypeOnMember)
	RegisterFuncOnLeave(f FuncTypeOnMember)
	RegisterFuncOnUpdate(f FuncTypeOnMember)

	// Messages to other nodes, through a gateway.
	SendOne(t NodeType, cmd uint64, msg proto.Message) error                      // one member chosen by the selector
	SendOneByKey(t NodeType, key string, cmd uint64, msg proto.Message) error     // the member key maps to, as GetNodeByKey
	SendByType(t NodeType, cmd uint64, msg proto.Message, excludeSelf bool) error // every member of a type
	SendByID(id NodeID, cmd uint64, msg proto.Message) error                      // exactly that member
	SendAll(cmd uint64, msg proto.Message, excludeSelf bool) error                // every member

	// Calls to other nodes, through a gateway: a request and its reply
	// (decoded into reply; nil ignores it). They block until the reply,
	// an error or the end of ctx, whose deadline travels with the call.
	// Errors: ErrNoNode (no such member), ErrUndeliverable (it did not
	// reach the member), ErrTimeout (no reply by the deadline), ctx's
	// error when cancelled, and *RemoteError (the callee's answer; a call
	// handler returns one to choose the code).
	RegisterFuncOnCall(f FuncTypeOnCall)
	Call(ctx context.Context, id NodeID, cmd uint64, req, reply proto.Message) error                   // exactly that member
	CallOne(ctx context.Context, t NodeType, cmd uint64, req, reply proto.Message) error               // one member chosen by the selector
	CallByKey(ctx context.Context, t NodeType, key string, cmd uint64, req, reply proto.Message) error // the member key maps to on the hash ring
	// BroadcastCall calls every member of type t but this node at once;
	// collect gets each reply, one at a time; the first error cancels
	// the rest and is returned.
	BroadcastCall(ctx context.Context, t NodeType, cmd uint64, req proto.Message, collect func(from Member, data []byte) error) error

	// Players' messages, relayed by the gateways.
	EnableMessageRelay(v bool) // connect to gateways
	RegisterFuncOnRelayMsg(f FuncTypeOnRelayMsg)
	SendClientMsgByRelay(account string, cmd uint64, data []byte) error // queues; exactly once, in order, across resumes
	BroadcastClientMsg(cmd uint64, data []byte) error                   // to every player on every gateway
	Kick(account, reason string) error                                  // ends the player's session
	RegisterFuncOnUndeliverable(f FuncTypeOnUndeliverable)

	// Groups of players (rooms, channels, guilds): named sets of accounts,
	// cluster-wide. A membership belongs to the account's session: kept
	// while the client is away, carried to another gateway on a resume,
	// ended with the session. A group broadcast crosses each gateway once.
	JoinGroup(group, account string) error                            // queues; group: 1–64 bytes of printable UTF-8
	LeaveGroup(group, account string) error                           // queues
	BroadcastGroup(group string, cmd uint64, data []byte) error       // queues; to every member's client
	GroupMembers(ctx context.Context, group string) ([]string, error) // blocks: asks every gateway

	// Players' sessions.
	RegisterFuncOnLoseAccount(f FuncTypeOnLoseAccount) // no longer bound here; once per ownership
	RegisterFuncOnDisconnect(f FuncTypeOnAccount)      // the client is away and may resume
	RegisterFuncOnResume(f FuncTypeOnAccount)          // the client is back

	SetOverload(i int, v uint32) // propagated to every member through the mgrserver
	SetVersion(v string)         // propagated to every member through the mgrserver
}
