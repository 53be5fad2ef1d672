package gateway

import (
	"context"
	"sort"
	"sync"

	"github.com/xserver/xserver/common/wire"
)

// maxGroupsPerSession bounds one session's memberships (and its Redis
// record).
const maxGroupsPerSession = 256

// groupIndex lists, per group, the sessions held here that are members:
// a group broadcast visits only them. The memberships themselves live
// with each session (session.groups), which is the authority; the index
// follows it.
type groupIndex struct {
	mu sync.RWMutex // guards m; a leaf lock (taken under session.mu, never the other way)
	m  map[string]map[*session]struct{}
}

func newGroupIndex() *groupIndex { return &groupIndex{m: make(map[string]map[*session]struct{})} }

func (x *groupIndex) add(group string, s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	set := x.m[group]
	if set == nil {
		set = make(map[*session]struct{})
		x.m[group] = set
	}
	set[s] = struct{}{}
}

func (x *groupIndex) remove(group string, s *session) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if set := x.m[group]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(x.m, group)
		}
	}
}

// appendMembers appends the group's sessions here to dst.
func (x *groupIndex) appendMembers(dst []*session, group string) []*session {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for s := range x.m[group] {
		dst = append(dst, s)
	}
	return dst
}

// joinGroup adds the account's session here, if any, to group. A session
// that is away (waiting for a resume) is a member like any other.
func (g *Gateway) joinGroup(group, account []byte) {
	s := g.session(account)
	if s == nil {
		return // held elsewhere, or offline: joins go to every gateway
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == sessEnded {
		return
	}
	name := string(group)
	if _, ok := s.groups[name]; ok {
		return
	}
	if len(s.groups) >= maxGroupsPerSession {
		g.met.drops.WithLabelValues("group_limit").Inc()
		g.badLog.Warn(s.logger().WithField("group", name), "session is in too many groups; join ignored")
		return
	}
	s.addGroupLocked(name, g.bring.last())
	s.saveGroupsLocked()
}

// leaveGroup removes the account's session here, if any, from group.
func (g *Gateway) leaveGroup(group, account []byte) {
	s := g.session(account)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := string(group)
	if _, ok := s.groups[name]; !ok || s.state == sessEnded {
		return
	}
	delete(s.groups, name)
	g.groups.remove(name, s)
	s.saveGroupsLocked()
}

// addGroupLocked makes s a member of group from broadcast seq on (later
// broadcasts of the group are its).
func (s *session) addGroupLocked(group string, seq uint32) {
	if s.groups == nil {
		s.groups = make(map[string]uint32)
	}
	s.groups[group] = seq
	s.g.groups.add(group, s)
}

// inheritGroupsLocked makes s a member of groups: a session that takes
// over from another (a new login replacing it, a resume from another
// gateway) keeps its memberships.
func (s *session) inheritGroupsLocked(groups []string) {
	if len(groups) == 0 {
		return
	}
	last := s.g.bring.last()
	for _, name := range groups {
		if len(s.groups) >= maxGroupsPerSession {
			break
		}
		if wire.ValidGroup(name) == nil {
			s.addGroupLocked(name, last)
		}
	}
	s.saveGroupsLocked()
}

// groupNamesLocked lists s's groups, sorted.
func (s *session) groupNamesLocked() []string {
	out := make([]string, 0, len(s.groups))
	for name := range s.groups {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// dropGroupsLocked removes an ended session from the index.
func (s *session) dropGroupsLocked() {
	for name := range s.groups {
		s.g.groups.remove(name, s)
	}
}

// saveGroupsLocked writes s's groups to its Redis record in the
// background, so that they follow the session to another gateway. One
// write is in flight per session; it reads the groups when it runs, so
// the last one written is the current list.
func (s *session) saveGroupsLocked() {
	s.gdirty = true
	if s.gsaving {
		return
	}
	s.gsaving = true
	g := s.g
	if !g.store.enqueue(s.saveGroups) {
		s.gsaving = false // the refresh tries again
	}
}

func (s *session) saveGroups(ctx context.Context) {
	g := s.g
	for {
		s.mu.Lock()
		if !s.gdirty || s.state == sessEnded {
			s.gsaving = false
			s.mu.Unlock()
			return
		}
		s.gdirty = false
		names := s.groupNamesLocked()
		s.mu.Unlock()
		if err := g.sessions.UpdateGroups(ctx, s.account, s.sid, g.node.GetID(), names); err != nil {
			g.redisLog.Warn(s.logger().WithError(err), "could not record the session's groups in Redis; retrying at the next refresh")
			s.mu.Lock()
			s.gdirty, s.gsaving = true, false
			s.mu.Unlock()
			return
		}
	}
}

// retrySaveGroups writes groups whose last write failed or was skipped.
func (s *session) retrySaveGroups(restored bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == sessEnded || s.gsaving || !(s.gdirty || restored && len(s.groups) > 0) {
		return
	}
	s.saveGroupsLocked()
}

// groupBroadcast sends one message to every member of group held here.
func (g *Gateway) groupBroadcast(group []byte, cmd uint64, data []byte) {
	g.fanMu.Lock()
	defer g.fanMu.Unlock()
	e := g.bring.add(string(group), cmd, data)
	g.fanBuf = g.groups.appendMembers(g.fanBuf[:0], e.group)
	for _, s := range g.fanBuf {
		s.deliverBroadcast(&e)
	}
	clear(g.fanBuf)
	g.met.groupBroadcasts.Inc()
}

// groupQuery answers a node asking for the group's members held here, in
// parts of at most wire.MaxMembersPart accounts.
func (g *Gateway) groupQuery(l *link, id uint64, group []byte) {
	sess := g.groups.appendMembers(nil, string(group))
	accounts := make([]string, 0, len(sess))
	for _, s := range sess {
		s.mu.Lock()
		if s.state != sessEnded {
			accounts = append(accounts, s.account)
		}
		s.mu.Unlock()
	}
	sort.Strings(accounts)
	for {
		n := min(len(accounts), wire.MaxMembersPart)
		last := n == len(accounts)
		l.out.Force(wire.AppendGroupMembers(nil, id, last, accounts[:n]))
		accounts = accounts[n:]
		if last {
			return
		}
	}
}
