package mgrserver

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
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
		lastRenew    time.Time // send time of the last renewal Redis confirmed
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
				failing, lastRenew = false, sent
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
				if s.now().Sub(lastRenew) > s.cfg.LeaseTTL+s.cfg.RedisGrace {
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
					lastRenew, failing = sent, false
					s.becomeLeader(got)
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

func (s *Server) becomeLeader(rec lease.Record) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// Lost the race with Close: give the lease back.
		ctx, cancel := s.opCtx()
		_ = lease.Release(ctx, s.cfg.Redis, s.cfg.Cluster, rec)
		cancel()
		return
	}
	s.leading, s.rec, s.seq, s.warm = true, rec, 0, true
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

// endWarm closes the settle window: every member gets a complete snapshot,
// which removes from their views the members that did not re-register.
func (s *Server) endWarm(epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leading || s.rec.Epoch != epoch || !s.warm {
		return
	}
	s.warm = false
	frame := s.snapshotLocked()
	for _, m := range s.members {
		m.sess.out.Force(frame)
	}
	s.log.WithField("members", len(s.members)).Info("settle window over; complete snapshot sent")
}

// stepDown stops leading: every connection is closed with code.
func (s *Server) stepDown(reason string, code uint32) {
	s.mu.Lock()
	was := s.leading
	s.leading, s.warm = false, false
	if s.warmTimer != nil {
		s.warmTimer.Stop()
		s.warmTimer = nil
	}
	s.members = make(map[common.NodeID]*member)
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

// snapshotLocked encodes the member list; s.mu must be held. The frame is
// assembled from each member's pre-encoded entry, so a snapshot of n
// members costs n copies rather than n encodings while the lock is held.
func (s *Server) snapshotLocked() []byte {
	size := 0
	for _, m := range s.members {
		size += len(m.enc)
	}
	b := make([]byte, wire.HeaderSize, wire.HeaderSize+3*(1+binary.MaxVarintLen64)+size)
	// Snapshot fields: 1 epoch, 2 seq (varints), 3 complete (bool), 4 nodes.
	if s.rec.Epoch != 0 {
		b = binary.AppendUvarint(append(b, 1<<3), s.rec.Epoch)
	}
	if s.seq != 0 {
		b = binary.AppendUvarint(append(b, 2<<3), s.seq)
	}
	if !s.warm {
		b = append(b, 3<<3, 1)
	}
	for _, m := range s.members {
		b = append(b, m.enc...)
	}
	wire.AppendHeader(b[:0], wire.KindSnapshot, len(b)-wire.HeaderSize)
	return b
}

// snapshotEntry encodes info as one Snapshot.nodes field (number 4,
// length-delimited).
func snapshotEntry(info *pb.NodeInfo) []byte {
	n := info.Size()
	b := binary.AppendUvarint(append(make([]byte, 0, 1+binary.MaxVarintLen64+n), 4<<3|2), uint64(n))
	start := len(b)
	b = b[:start+n]
	_, _ = info.MarshalToSizedBuffer(b[start:])
	return b
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
		ping, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: s.now().UnixNano()})
		s.mu.Lock()
		for c := range s.conns {
			if !c.registered {
				continue
			}
			c.out.Append(ping)
			if c.needSync && c.out.Len() < s.cfg.QueueBytes/2 {
				c.needSync = false
				c.out.Force(s.snapshotLocked())
			}
		}
		s.mu.Unlock()
	}
}
