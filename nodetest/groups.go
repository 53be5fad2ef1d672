package nodetest

import (
	"context"
	"fmt"
	"sort"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// JoinGroup makes the account's session a member of group, after this
// node's earlier messages, as the gateway holding it would: the
// membership lasts as long as the session (kept while the player is away,
// carried to a new login of the account, gone when the session ends). An
// account without a session is not added.
func (n *Node) JoinGroup(group, account string) error {
	if err := checkGroup(group, account); err != nil {
		return err
	}
	return n.toGateway(func() { n.c.gatewayGroup(group, account, true) })
}

// LeaveGroup removes the account's session from group, after this node's
// earlier messages.
func (n *Node) LeaveGroup(group, account string) error {
	if err := checkGroup(group, account); err != nil {
		return err
	}
	return n.toGateway(func() { n.c.gatewayGroup(group, account, false) })
}

// BroadcastGroup sends data to every member of group (Kind KindGroup,
// Group set); members away get it when they resume.
func (n *Node) BroadcastGroup(group string, cmd uint64, data []byte) error {
	if err := wire.ValidGroup(group); err != nil {
		return err
	}
	data = append([]byte(nil), data...)
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.nodeSendCheckLocked(); err != nil {
		return err
	}
	n.c.postLocked(func() { n.c.gatewayGroupBroadcast(n, group, cmd, data) })
	return nil
}

// GroupMembers returns the accounts in group, sorted, as the gateway has
// them now: joins and leaves still queued (not yet run) do not count.
func (n *Node) GroupMembers(ctx context.Context, group string) ([]string, error) {
	if err := wire.ValidGroup(group); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if err := n.nodeSendCheckLocked(); err != nil {
		return nil, err
	}
	var out []string
	for account, s := range n.c.sessions {
		if s.groups[group] {
			out = append(out, account)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Members returns the accounts in group, sorted, as the gateway has them
// now (for tests).
func (c *Cluster) Members(group string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for account, s := range c.sessions {
		if s.groups[group] {
			out = append(out, account)
		}
	}
	sort.Strings(out)
	return out
}

func checkGroup(group, account string) error {
	if err := wire.ValidGroup(group); err != nil {
		return err
	}
	if len(account) == 0 || len(account) > wire.MaxAccount {
		return fmt.Errorf("%w: account %q", common.ErrBadInput, account)
	}
	return nil
}

// gatewayGroup applies a join or a leave to the account's session.
func (c *Cluster) gatewayGroup(group, account string, join bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[account]
	if s == nil {
		return
	}
	if !join {
		delete(s.groups, group)
		return
	}
	if s.groups == nil {
		s.groups = make(map[string]bool)
	}
	s.groups[group] = true
}

// gatewayGroupBroadcast delivers a node's message to the group's members.
func (c *Cluster) gatewayGroupBroadcast(from *Node, group string, cmd uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		if s.groups[group] {
			s.deliverLocked(heldMsg{msg: Message{Kind: KindGroup, Group: group, Cmd: cmd, Data: data, From: from.id}})
		}
	}
}
