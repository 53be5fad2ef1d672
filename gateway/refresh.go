package gateway

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/login"
)

// refreshBatch bounds one pipeline.
const refreshBatch = 512

// refreshLoop keeps every live session's Redis record and bindings from
// expiring, and treats the record as the authority on who holds the
// account: a session whose record names another gateway or session ends
// (replaced, or taken over by a resume elsewhere) within one period even
// when every Pub/Sub message was lost. It also watches for Redis losing its
// data (the cluster's marker key changes) and then restores every live
// session's keys at once, before logins may bind those accounts again.
func (g *Gateway) refreshLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.refreshEvery())
	defer t.Stop()
	m := time.NewTicker(time.Second)
	defer m.Stop()
	marker := g.firstMarker
	for {
		select {
		case <-t.C:
			g.refresh()
		case <-m.C:
			marker = g.checkMarker(marker)
			if g.flushOwed.Load() {
				g.announceFlush()
			}
		case <-g.stop:
			return
		}
	}
}

// checkMarker reads the cluster's Redis marker; when it is missing or
// changed since last seen, Redis lost its data (or this is the first
// look): the live sessions are restored and the gateway reports itself
// restored for the new marker.
func (g *Gateway) checkMarker(seen string) string {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
	defer cancel()
	cur, err := login.EnsureMarker(ctx, g.cfg.Redis, g.cfg.Cluster)
	if err != nil {
		g.redisLog.Warn(g.log.WithError(err), "cannot reach Redis to check the cluster marker")
		return seen
	}
	if cur == seen {
		return seen
	}
	if seen != "" {
		g.log.WithField("sessions", g.NumClients()).Warn("Redis lost its data: restoring this gateway's live sessions")
		if f := g.beforeRestore.Load(); f != nil {
			(*f)() // tests order events before the restore
		}
	}
	if !g.refresh() {
		return seen // try again next second
	}
	if err := login.MarkRestored(ctx, g.cfg.Redis, g.cfg.Cluster, cur, g.node.GetID()); err != nil {
		return seen
	}
	return cur
}

// refresh holds every live session once; false if Redis could not be
// reached for some of them. When it wrote back records Redis had lost, it
// says so on the logins channel: nodes may have found those players
// offline meanwhile (and cached it), and no login will be announced for
// them.
func (g *Gateway) refresh() (ok bool) {
	all := g.allSessions()
	ok = true
	defer func() {
		if g.flushOwed.Load() && !g.announceFlush() {
			ok = false
		}
	}()
	for len(all) > 0 {
		n := min(len(all), refreshBatch)
		batch := all[:n]
		all = all[n:]
		items := make([]login.HoldItem, 0, n)
		keep := batch[:0]
		for _, s := range batch {
			s.mu.Lock()
			if s.state != sessEnded {
				rec := s.record()
				rec.Bindings = copyBindings(s.bindings)
				items = append(items, login.HoldItem{Account: s.account, Record: rec})
				keep = append(keep, s)
			}
			s.mu.Unlock()
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
		res, err := g.sessions.Hold(ctx, items, g.recordTTLFor(true, g.cfg.ResumeWindow), g.cfg.Affinity)
		cancel()
		if err != nil {
			ok = false
			g.redisLog.Warn(g.log.WithError(err), "refreshing session records failed; will retry")
		}
		for i, r := range res {
			s := keep[i]
			switch r {
			case login.HoldKept:
				s.retrySaveGroups(false)
			case login.HoldRestored:
				g.met.restored.Inc()
				g.flushOwed.Store(true)
				s.retrySaveGroups(true)
			case login.HoldLost:
				g.met.holderLost.Inc()
				s.logger().Info("the session record names another holder; ending this one")
				s.replaced()
			case login.HoldMoved:
				g.met.holderLost.Inc()
				s.takenOver()
			}
		}
		select {
		case <-g.stop:
			return ok
		default:
		}
	}
	return ok
}

// announceFlush tells the nodes on the logins channel to forget the
// players they found offline: this gateway wrote session records back, or
// could not announce a login. Until it succeeds, it is tried again every
// second (refreshLoop) and at every refresh.
func (g *Gateway) announceFlush() bool {
	g.flushOwed.Store(false) // a failure from now on owes another
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
	defer cancel()
	err := g.cfg.Redis.Publish(ctx, g.kickCh, login.Announcement{Gateway: g.node.GetID(), Flush: true}.String()).Err()
	if err != nil {
		g.flushOwed.Store(true)
		g.redisLog.Warn(g.log.WithError(err), "cannot tell nodes to forget offline players (records restored or a login not announced); will retry")
		return false
	}
	return true
}

// kickLoop applies other gateways' login and resume announcements: a
// local session of the same account is replaced (a new login) or let go
// (the same session resumed there).
func (g *Gateway) kickLoop() {
	defer g.wg.Done()
	ch := g.sub.Channel()
	self := g.node.GetID()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Channel == g.probeCh {
				g.noteProbe()
				continue
			}
			gw, sid, account, ok := parseAnnounce(m.Payload)
			if !ok || gw == self {
				continue
			}
			s := g.session([]byte(account))
			switch {
			case s == nil:
			case s.sid == sid && g.stillHolds(s):
				// An earlier takeover's announcement, delivered after the
				// session was resumed here again: the record names this
				// gateway, which keeps it.
				g.met.staleAnnounce.Inc()
			case s.sid == sid:
				s.takenOver()
			case g.stillHolds(s):
				// An older login's announcement, delivered late (a
				// subscriber's reconnection, a Redis Cluster failover):
				// the record names this session, which stays.
				g.met.staleAnnounce.Inc()
			default:
				s.replaced()
			}
		case <-g.stop:
			return
		}
	}
}

// stillHolds reports whether the session record still names s: the record,
// not the order Pub/Sub messages arrive in, says which login is the newer.
// When Redis cannot answer, the announcement is trusted (it was published
// after its record was written).
func (g *Gateway) stillHolds(s *session) bool {
	ctx, cancel := context.WithTimeout(context.Background(), min(g.cfg.LoginTimeout, 2*time.Second))
	defer cancel()
	gw, sid, err := g.sessions.Lookup(ctx, s.account)
	return err == nil && gw == g.node.GetID() && sid == s.sid
}

func parseAnnounce(p string) (common.NodeID, uint64, string, bool) {
	a, ok := login.ParseAnnouncement(p)
	if !ok || a.Flush {
		return common.NodeID{}, 0, "", false
	}
	return a.Gateway, a.Sid, a.Account, true
}

var _ = redis.Nil
