package mgrserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lease"
	pb "github.com/xserver/xserver/proto"
)

// campaignLoop campaigns while standing by and renews while leading.
func (s *Server) campaignLoop() {
	defer s.wg.Done()
	var (
		lastRedisErr time.Time // last time Redis did not answer
		failing      bool      // renewals are failing
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-s.stop:
			return
		}
		wait := s.cfg.CampaignInterval
		s.mu.Lock()
		leading, rec, floor := s.leading, s.rec, s.maxEpoch
		s.mu.Unlock()

		if leading {
			sent := s.now()
			ctx, cancel := s.opCtx()
			err := lease.Renew(ctx, s.cfg.Redis, s.cfg.Cluster, rec, s.cfg.LeaseTTL)
			cancel()
			switch {
			case err == nil:
				if failing {
					s.log.Info("lease renewals confirmed again")
				}
				failing = false
				s.mu.Lock()
				s.lease.Confirmed(sent)
				s.mu.Unlock()
				s.kickFlush() // events held while the lease was unconfirmed
				wait = s.cfg.LeaseTTL / 3
			case errors.Is(err, lease.ErrHeld):
				s.log.Warn("lease taken by another mgrserver; stepping down")
				s.stepDown("lease lost", intranet.CodeNotLeader)
			case errors.Is(err, lease.ErrSuperseded):
				s.log.Warn("a newer epoch has been seen in the cluster; released the lease to campaign above it")
				s.stepDown("epoch superseded", intranet.CodeNotLeader)
			default:
				s.met.renewFailures.Inc()
				s.warnRedis(err, "lease renewal failed")
				failing = true
				s.mu.Lock()
				giveUp := s.lease.GiveUp(s.now())
				s.mu.Unlock()
				if giveUp {
					s.log.Warn("lease unconfirmed for longer than TTL + grace; stepping down")
					s.stepDown("lease unconfirmed", intranet.CodeNotLeader)
				}
			}
		} else {
			ctx, cancel := s.opCtx()
			cur, err := lease.Read(ctx, s.cfg.Redis, s.cfg.Cluster)
			switch {
			case err == nil:
				s.seeEpoch(cur.Epoch)
			case errors.Is(err, lease.ErrNoLeader):
				// After a Redis outage, give the incumbent one TTL to
				// re-assert its lease before competing for it.
				if s.now().Sub(lastRedisErr) < s.cfg.LeaseTTL {
					break
				}
				sent := s.now()
				got, err := lease.Acquire(ctx, s.cfg.Redis, s.cfg.Cluster, s.addr, newToken(), s.cfg.LeaseTTL, floor)
				if err == nil {
					failing = false
					s.becomeLeader(got, sent)
					wait = s.cfg.LeaseTTL / 3
				} else if !errors.Is(err, lease.ErrHeld) {
					lastRedisErr = s.now()
					s.warnRedis(err, "cannot campaign for the lease")
				}
			default:
				lastRedisErr = s.now()
				s.warnRedis(err, "cannot read the leader record")
			}
			cancel()
		}
		timer.Reset(wait)
	}
}

// warnRedis says, at most every 10 s, that Redis does not answer.
func (s *Server) warnRedis(err error, what string) {
	s.warnLog.Log(s.log.WithError(err), logrus.WarnLevel, "redis",
		"cannot reach Redis at "+lease.Where(s.cfg.Redis)+": "+what+"; is it running and reachable from this mgrserver?")
}

// opCtx bounds one Redis operation by a third of the lease TTL.
func (s *Server) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.LeaseTTL/3)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) seeEpoch(e uint64) {
	s.mu.Lock()
	if e > s.maxEpoch {
		s.maxEpoch = e
	}
	s.mu.Unlock()
}

// becomeLeader starts leading under rec, acquired by a request sent at
// sent.
func (s *Server) becomeLeader(rec lease.Record, sent time.Time) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// Lost the race with Close: give the lease back.
		ctx, cancel := s.opCtx()
		_ = lease.Release(ctx, s.cfg.Redis, s.cfg.Cluster, rec)
		cancel()
		return
	}
	s.leading, s.rec, s.warm = true, rec, true
	s.lease.Confirmed(sent)
	s.fan.reset(rec.Epoch)
	if rec.Epoch > s.maxEpoch {
		s.maxEpoch = rec.Epoch
	}
	epoch := rec.Epoch
	s.warmTimer = time.AfterFunc(s.cfg.SettleWindow, func() { s.endWarm(epoch) })
	s.mu.Unlock()
	s.met.leader.Set(1)
	s.met.epoch.Set(float64(epoch))
	s.met.leaderChanges.Inc()
	s.log.WithField("epoch", epoch).Info("leading")
}

// servingLocked reports whether this server may accept registrations and
// send membership changes now: it leads and its lease is provably valid
// (see lease.Holder). A leader whose renewals go unconfirmed keeps its
// connections (so a Redis blip does not churn the cluster) but serves
// nothing until a renewal is confirmed again; it steps down after TTL +
// RedisGrace. s.mu must be held.
func (s *Server) servingLocked() bool {
	return s.leading && !s.closed && s.lease.Valid(s.now())
}

// endWarm closes the settle window: every member gets a complete snapshot,
// which removes from their views the members that did not re-register.
func (s *Server) endWarm(epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leading || s.rec.Epoch != epoch || !s.warm {
		return
	}
	s.warm = false
	s.fan.setComplete()
	s.kickFlush()
	s.log.WithField("members", s.fan.len()).Info("settle window over; complete snapshot sent")
}

// stepDown stops leading: every connection is closed with code.
func (s *Server) stepDown(reason string, code uint32) {
	s.mu.Lock()
	was := s.leading
	s.leading, s.warm = false, false
	s.lease.Drop()
	if s.warmTimer != nil {
		s.warmTimer.Stop()
		s.warmTimer = nil
	}
	s.fan.reset(0)
	conns := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if !was {
		return
	}
	s.met.leader.Set(0)
	s.met.members.Set(0)
	s.met.leaderChanges.Inc()
	s.log.WithField("reason", reason).Warn("no longer leading")
	for _, c := range conns {
		c.closeWith(code, "mgrserver "+reason)
	}
}

// heartbeatLoop pings every connection each interval, and resyncs peers
// whose queue overflowed once it has drained.
func (s *Server) heartbeatLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
		// One frame shared by every queue; pings jump the event backlog.
		ping, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: s.now().UnixNano()})
		s.mu.Lock()
		for c := range s.conns {
			if !c.registered || !c.synced.Load() {
				continue
			}
			c.out.Urgent(ping)
			if c.needSync && !c.gone && c.out.Len() < s.cfg.QueueBytes/2 {
				c.needSync = false
				s.fan.want(c)
				s.kickFlush()
			}
		}
		s.mu.Unlock()
	}
}
