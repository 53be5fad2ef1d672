package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

const (
	// loadEvery is how often the player count is published as overload
	// slot 0 (when it changed), so the login service binds new players to
	// the least crowded lobby without an update per enter.
	loadEvery = 250 * time.Millisecond
	// awayAfter is how long a player's connection must stay lost before
	// the others see it "reconnecting": a blip shows nothing.
	awayAfter = time.Second
	// linkPoll is how often ready asks the other lobbies who is online
	// again while no gateway link takes the question.
	linkPoll = 20 * time.Millisecond
	// matchCallTimeout bounds a call to the match: past it the player
	// hears "matchmaking unavailable".
	matchCallTimeout = 5 * time.Second
)

// clock is the time the lobby reads and its timers: the wall clock in the
// binary, a nodetest cluster's in unit tests.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) stopper
}

// stopper cancels a timer (*time.Timer, *nodetest.Timer).
type stopper interface{ Stop() bool }

type wallClock struct{}

func (wallClock) Now() time.Time                              { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

// lobbyService is the lobby on a node: the Lobby state behind a mutex, fed by
// the node's callbacks and timers, its decisions sent through the node.
// It needs only common.INode, so unit tests run it on a nodetest cluster.
//
// Concurrency: on a real node, relay and session callbacks run on the
// gateway link goroutines (several at once with several gateways),
// membership callbacks on the node's dispatcher and timers on their own
// goroutines. Each takes mu for the state change only and sends the
// resulting Outs after releasing it.
type lobbyService struct {
	n       common.INode
	clk     clock
	log     logrus.FieldLogger
	failed  prometheus.Counter
	lost    prometheus.Counter // lose-account callbacks
	undeliv prometheus.Counter

	mu        sync.Mutex // guards every field below
	st        *Lobby
	awayT     map[string]stopper // players disconnected less than awayAfter ago
	published int                // the player count last published, -1 before the first
	loadT     stopper            // the next publication
	helloT    stopper            // the next "who is online" attempt
	readied   bool
	stopped   bool
}

// newService attaches a lobby to n, a node of type game.LobbyType that
// has not started: it registers n's callbacks and enables relay. Call
// ready once n is registered, stop before closing n.
func newService(n common.INode, clk clock, log logrus.FieldLogger) (*lobbyService, error) {
	if n.GetType() != game.LobbyType {
		return nil, fmt.Errorf("lobby: node type %s, want %s", n.GetType(), game.LobbyType)
	}
	s := &lobbyService{
		n: n, clk: clk, log: log.WithField("component", "lobby"),
		st: NewLobby(n.GetID()), awayT: make(map[string]stopper), published: -1,
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xserver_lobby_send_failures_total",
			Help: "Messages the lobby could not hand to a gateway.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lobby_lose_account_total",
			Help: "Lose-account callbacks: players whose session ended or moved to another lobby.",
		}),
		undeliv: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xserver_lobby_undeliverable_total",
			Help: "Messages to players that could not be delivered (offline, or their session ended first).",
		}),
	}
	n.RegisterFuncOnRelayMsg(s.onRelay)
	n.RegisterFuncOnCall(s.onCall)
	n.RegisterFuncOnLoseAccount(s.onLose)
	n.RegisterFuncOnDisconnect(func(account string) { s.away(account, true) })
	n.RegisterFuncOnResume(func(account string) { s.away(account, false) })
	n.RegisterFuncOnUndeliverable(func(u common.Undeliverable) {
		s.undeliv.Inc()
		s.log.WithFields(logrus.Fields{"account": u.Account, "cmd": u.Cmd, "why": u.Code}).Debug("message not delivered")
	})
	n.RegisterFuncOnJoin(func(m common.Member) {
		s.logMember("member joined", m)
		if m.GetType() == game.LobbyType {
			s.mu.Lock()
			s.st.LobbyJoined(m.GetID())
			s.mu.Unlock()
		}
	})
	n.RegisterFuncOnLeave(func(m common.Member) {
		s.logMember("member left", m)
		if m.GetType() != game.LobbyType {
			return
		}
		s.mu.Lock()
		outs := s.st.LobbyLeft(m.GetID(), s.clk.Now())
		s.mu.Unlock()
		s.send(nil, outs)
	})
	n.EnableMessageRelay(true)
	return s, nil
}

// collectors are the lobby's metrics, for the caller's registry.
func (s *lobbyService) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xserver_lobby_players",
			Help: "Players in this lobby.",
		}, func() float64 { return float64(s.players()) }),
		s.linesCounter("world", game.PushWorld),
		s.linesCounter("private", game.PushPrivate),
		s.failed, s.lost, s.undeliv,
	}
}

func (s *lobbyService) linesCounter(kind string, push uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "xserver_lobby_chat_lines_total",
		Help:        "Chat lines this lobby's players sent, by kind (world or private).",
		ConstLabels: prometheus.Labels{"kind": kind},
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.st.Lines(push))
	})
}

func (s *lobbyService) players() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Players()
}

// ready starts the lobby's own work once its node is registered: it asks
// the other lobbies who is online (again every linkPoll while no gateway
// takes the question) and publishes the player count every loadEvery.
// Calls after the first, or after stop, do nothing.
func (s *lobbyService) ready() {
	s.mu.Lock()
	if s.readied || s.stopped {
		s.mu.Unlock()
		return
	}
	s.readied = true
	s.mu.Unlock()
	s.hello()
	s.publishLoad()
}

// hello asks the other lobbies who is online.
func (s *lobbyService) hello() {
	_, err := s.sendOut(nil, Who())
	switch {
	case err == nil:
		s.log.Info("asked the other lobbies who is online")
		return
	case errors.Is(err, common.ErrNoNode):
		s.log.Info("no other lobby to ask who is online")
		return
	}
	s.log.WithError(err).Debug("cannot ask the other lobbies yet; retrying")
	s.mu.Lock()
	if !s.stopped {
		s.helloT = s.clk.AfterFunc(linkPoll, s.hello)
	}
	s.mu.Unlock()
}

// publishLoad publishes the player count when it changed, and again in
// loadEvery.
func (s *lobbyService) publishLoad() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	p := s.st.Players()
	changed := p != s.published
	s.published = p
	s.loadT = s.clk.AfterFunc(loadEvery, s.publishLoad)
	s.mu.Unlock()
	if changed {
		s.n.SetOverload(0, uint32(p))
	}
}

// stop cancels the lobby's timers. Safe twice.
func (s *lobbyService) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, t := range []stopper{s.loadT, s.helloT} {
		if t != nil {
			t.Stop()
		}
	}
	for acct, t := range s.awayT {
		t.Stop()
		delete(s.awayT, acct)
	}
}

// onRelay handles a player's request or another node's message.
func (s *lobbyService) onRelay(src common.NodeType, from common.Member, account string, cmd uint64, data []byte) {
	var (
		outs []Out
		err  error
	)
	s.mu.Lock()
	switch src {
	case common.Client:
		// A message from the player: it is here, whatever session it
		// came in (a new login brings no resume callback).
		if t := s.awayT[account]; t != nil {
			t.Stop()
			delete(s.awayT, account)
		}
		outs = s.st.Request(account, cmd, data, s.clk.Now())
	case game.LobbyType:
		outs, err = s.st.FromLobby(from.GetID(), cmd, data)
	default:
		err = fmt.Errorf("%w: cmd %d from a node of type %s", ErrBadMessage, cmd, src)
	}
	s.mu.Unlock()
	if err != nil {
		s.log.WithError(err).WithFields(logrus.Fields{"from": from.GetID().String(), "from_type": src}).Warn("node message dropped")
	}
	if src == common.Client && clientCmd(cmd) == game.CmdEnter && len(outs) > 0 {
		if r, ok := enterReply(outs); ok && r.OK {
			s.log.WithFields(logrus.Fields{"account": account, "online": len(r.Online)}).Info("player entered")
		}
	}
	s.send(from, outs)
}

// onCall answers a match instance's NodeMatched: the player is told, and
// the match hears whether the player was still here.
func (s *lobbyService) onCall(_ context.Context, from common.Member, cmd uint64, data []byte) ([]byte, error) {
	if from.GetType() != game.MatchType {
		return nil, fmt.Errorf("%w: call %d from a node of type %s", ErrBadMessage, cmd, from.GetType())
	}
	s.mu.Lock()
	outs, err := s.st.FromMatch(cmd, data)
	s.mu.Unlock()
	if err != nil {
		s.log.WithError(err).WithField("from", from.GetID().String()).Info("match notice refused")
		return nil, err
	}
	s.send(from, outs)
	return []byte("{}"), nil
}

// away shows a player as reconnecting (once its connection stayed lost
// for awayAfter), or back: its state is kept while its session may
// resume.
func (s *lobbyService) away(account string, away bool) {
	s.mu.Lock()
	if t := s.awayT[account]; t != nil {
		t.Stop()
		delete(s.awayT, account)
	}
	if away {
		if !s.stopped {
			s.awayT[account] = s.clk.AfterFunc(awayAfter, func() { s.showAway(account) })
		}
		s.mu.Unlock()
		return
	}
	outs, ok := s.st.Away(account, false)
	s.mu.Unlock()
	if ok {
		s.log.WithField("account", account).Info("player back")
		s.send(nil, outs)
	}
}

// showAway tells everyone a player is reconnecting, if it still is.
func (s *lobbyService) showAway(account string) {
	s.mu.Lock()
	if s.awayT[account] == nil {
		s.mu.Unlock()
		return // back meanwhile
	}
	delete(s.awayT, account)
	outs, ok := s.st.Away(account, true)
	s.mu.Unlock()
	if ok {
		s.log.WithField("account", account).Info("player reconnecting")
		s.send(nil, outs)
	}
}

// onLose forgets a player whose session ended.
func (s *lobbyService) onLose(account string) {
	s.lost.Inc()
	s.mu.Lock()
	if t := s.awayT[account]; t != nil {
		t.Stop()
		delete(s.awayT, account)
	}
	name, at, _ := s.st.Entered(account)
	outs, ok := s.st.Lose(account)
	now := s.clk.Now()
	s.mu.Unlock()
	if !ok {
		s.log.WithField("account", account).Debug("session ended before the player entered")
		return
	}
	s.log.WithFields(logrus.Fields{
		"account": account, "name": name, "stayed": now.Sub(at).Round(time.Millisecond).String(),
	}).Info("player left")
	s.send(nil, outs)
}

// send hands outs to the node in order; from is the node whose message
// produced them (for ToSender). See Out for Fail.
func (s *lobbyService) send(from common.Member, outs []Out) {
	var replies []Out // what the answers to calls made the lobby send, after the batch
	defer func() {
		if len(replies) > 0 {
			s.send(nil, replies)
		}
	}()
	for _, o := range outs {
		more, err := s.sendOut(from, o)
		replies = append(replies, more...)
		if err == nil {
			continue
		}
		fields := logrus.Fields{"to": o.To.String(), "cmd": o.Cmd}
		if o.Account != "" {
			fields["account"] = o.Account
		}
		if o.To == ToLobbies && errors.Is(err, common.ErrNoNode) {
			s.log.WithFields(fields).Debug("no other lobby to tell")
			continue
		}
		s.failed.Inc()
		if o.Fail != nil {
			s.log.WithError(err).WithFields(fields).Info("not delivered; answering the failure")
			if _, err := s.sendOut(from, *o.Fail); err != nil {
				s.failed.Inc()
				s.log.WithError(err).WithField("account", o.Fail.Account).Warn("failure answer not delivered")
			}
			return
		}
		s.log.WithError(err).WithFields(fields).Warn("message not delivered")
	}
}

// sendOut sends one Out; a call's reply may make the lobby send more.
func (s *lobbyService) sendOut(from common.Member, o Out) ([]Out, error) {
	b, err := game.Encode(o.Body)
	if err != nil {
		return nil, err
	}
	if o.To == ToMatch {
		return s.callMatch(o, b)
	}
	return nil, s.sendOne(from, o, b)
}

// callMatch calls the match instance of the Out's mode and hands an
// enqueue's reply to the state.
func (s *lobbyService) callMatch(o Out, b []byte) ([]Out, error) {
	ctx, cancel := context.WithTimeout(context.Background(), matchCallTimeout)
	defer cancel()
	var reply common.Raw
	if err := s.n.CallByKey(ctx, game.MatchType, o.Key, o.Cmd, (*common.Raw)(&b), &reply); err != nil {
		return nil, err
	}
	if o.Cmd != game.NodeEnqueue {
		return nil, nil
	}
	s.mu.Lock()
	outs, err := s.st.Enqueued(reply)
	s.mu.Unlock()
	if err != nil {
		// Queued all the same: the player's ack stands.
		s.log.WithError(err).WithField("mode", o.Key).Warn("match reply not used")
	}
	return outs, nil
}

func (s *lobbyService) sendOne(from common.Member, o Out, b []byte) error {
	switch o.To {
	case ToPlayer:
		return s.n.SendClientMsgByRelay(o.Account, o.Cmd, b)
	case ToPlayers:
		for _, acc := range o.Accounts {
			// A player just gone (its lose-account is on its way) is
			// normal: count it, and go on with the others.
			if err := s.n.SendClientMsgByRelay(acc, o.Cmd, b); err != nil {
				s.failed.Inc()
				s.log.WithError(err).WithFields(logrus.Fields{"account": acc, "cmd": o.Cmd}).Debug("push not delivered")
			}
		}
		return nil
	case ToLobbies:
		return s.n.SendByType(game.LobbyType, o.Cmd, (*common.Raw)(&b), true)
	case ToSender:
		if from == nil {
			return fmt.Errorf("%w: no sender to answer", common.ErrNoNode)
		}
		return from.SendMsg(o.Cmd, (*common.Raw)(&b))
	case ToGroup:
		return s.n.BroadcastGroup(o.Group, o.Cmd, b)
	case JoinGroup:
		return s.n.JoinGroup(o.Group, o.Account)
	}
	return fmt.Errorf("lobby: unknown destination %v", o.To)
}

func (s *lobbyService) logMember(what string, m common.Member) {
	s.log.WithFields(logrus.Fields{
		"member": m.GetID().String(), "member_type": m.GetType(), "ip": m.GetIP(common.IPInner),
	}).Info(what)
}
