package matchmaker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

// Service runs a Queue on a match node: tickets and dequeues from lobbies
// in, NodeMatched out; a lobby's leave drops its tickets. See the package
// doc for its concurrency.
type Service struct {
	n   common.INode
	log logrus.FieldLogger
	now func() time.Time

	mu sync.Mutex // guards q
	q  *Queue

	queued  prometheus.Gauge
	matches prometheus.Counter
	failed  prometheus.Counter
}

// New attaches a matchmaker to n, a node of type game.MatchType that has
// not started (package node's Node, or a nodetest cluster's in unit
// tests): it registers n's relay, join and leave callbacks and enables
// relay. The caller starts and closes n.
func New(n common.INode, log logrus.FieldLogger) (*Service, error) {
	if n.GetType() != game.MatchType {
		return nil, fmt.Errorf("matchmaker: node type %s, want %s", n.GetType(), game.MatchType)
	}
	s := &Service{
		n: n, log: log.WithField("component", "match"), now: time.Now,
		q: NewQueue(n.GetID().String()[:8]),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xserver_match_queued",
			Help: "Players waiting for a match on this instance.",
		}),
		matches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xserver_match_matches_total",
			Help: "Matches made by this instance.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xserver_match_notify_failures_total",
			Help: "Matched notices the other player's lobby did not take (call failed or refused).",
		}),
	}
	n.RegisterFuncOnRelayMsg(s.onRelay)
	n.RegisterFuncOnCall(s.onCall)
	n.RegisterFuncOnJoin(func(m common.Member) {
		s.log.WithFields(logrus.Fields{"member": m.GetID().String(), "member_type": m.GetType()}).Info("member joined")
		if m.GetType() == game.LobbyType {
			s.mu.Lock()
			s.q.LobbyJoined(m.GetID())
			s.mu.Unlock()
		}
	})
	n.RegisterFuncOnLeave(s.onLeave)
	n.EnableMessageRelay(true)
	return s, nil
}

// Collectors are the service's metrics, for the caller's registry.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.queued, s.matches, s.failed}
}

// Len is the number of waiting tickets.
func (s *Service) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.Len()
}

// notifyTimeout bounds the call telling the other player's lobby.
const notifyTimeout = 2 * time.Second

// onRelay drops one-way messages: lobbies reach the match by calls.
func (s *Service) onRelay(src common.NodeType, from common.Member, _ string, cmd uint64, _ []byte) {
	s.log.WithFields(logrus.Fields{"from": from.GetID().String(), "from_type": src, "cmd": cmd}).Warn("unexpected message dropped")
}

// onCall answers a lobby's NodeEnqueue (with Enqueued) or NodeDequeue
// (with Dequeued). When a ticket completes a match, the reply carries the
// calling lobby's notice, and the other player's lobby gets its notice by
// a NodeMatched call before the reply goes back.
func (s *Service) onCall(ctx context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
	fields := logrus.Fields{"from": from.GetID().String(), "from_type": from.GetType(), "cmd": cmd}
	if from.GetType() != game.LobbyType || (cmd != game.NodeEnqueue && cmd != game.NodeDequeue) {
		s.log.WithFields(fields).Warn("unexpected call refused")
		return nil, fmt.Errorf("matchmaker: unexpected call %d from a node of type %s", cmd, from.GetType())
	}
	var t game.Ticket
	if err := game.Decode(data, &t); err != nil {
		s.log.WithError(err).WithFields(fields).Warn("bad ticket refused")
		return nil, fmt.Errorf("matchmaker: bad ticket: %w", err)
	}
	fields["account"], fields["mode"] = t.Account, t.Mode
	s.mu.Lock()
	var (
		m   *Match
		err error
		out bool
	)
	if cmd == game.NodeEnqueue {
		m, err = s.q.Enqueue(t)
	} else {
		out = s.q.Dequeue(t)
	}
	s.queued.Set(float64(s.q.Len()))
	s.mu.Unlock()

	switch {
	case cmd == game.NodeDequeue:
		s.log.WithFields(fields).WithField("withdrawn", out).Debug("dequeue")
		return game.Encode(game.Dequeued{Withdrawn: out})
	case err != nil:
		// A duplicate or a ticket of a lobby that left: the ticket that
		// waits (if any) stands.
		s.log.WithError(err).WithFields(fields).Debug("ticket ignored")
		return game.Encode(game.Enqueued{})
	case m == nil:
		s.log.WithFields(fields).Debug("queued")
		return game.Encode(game.Enqueued{})
	}
	s.matches.Inc()
	s.log.WithField("mode", m.Mode).Infof("match %s: %s vs %s", m.ID, m.A.Account, m.B.Account)
	var mine game.Enqueued
	for _, no := range m.Notices() {
		if no.Matched.Account == t.Account {
			mine.Matched = &no.Matched
			continue
		}
		s.notify(ctx, no)
	}
	return game.Encode(mine)
}

// notify tells the lobby of a player waiting before that it was matched.
func (s *Service) notify(ctx context.Context, no Notice) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	b, err := game.Encode(no.Matched)
	if err == nil {
		err = s.n.Call(ctx, no.Lobby, game.NodeMatched, (*common.Raw)(&b), nil)
	}
	if err != nil {
		s.failed.Inc()
		s.log.WithError(err).WithFields(logrus.Fields{
			"match": no.Matched.MatchID, "account": no.Matched.Account, "lobby": no.Lobby.String(),
		}).Warn("matched notice not delivered")
	}
}

func (s *Service) onLeave(m common.Member) {
	s.log.WithFields(logrus.Fields{"member": m.GetID().String(), "member_type": m.GetType()}).Info("member left")
	if m.GetType() != game.LobbyType {
		return
	}
	s.mu.Lock()
	dropped := s.q.LobbyLeft(m.GetID(), s.now())
	s.queued.Set(float64(s.q.Len()))
	s.mu.Unlock()
	if len(dropped) > 0 {
		s.log.WithFields(logrus.Fields{"lobby": m.GetID().String(), "accounts": dropped}).Info("lobby left: its tickets dropped")
	}
}
