package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/node"
)

const (
	// loadEvery is how often the player count is published as overload
	// slot 0 (when it changed), so the login service binds new players to
	// the least crowded lobby without an update per enter.
	loadEvery = 250 * time.Millisecond
	// awayAfter is how long a player's connection must stay lost before
	// the others see it "reconnecting": a blip shows nothing.
	awayAfter = time.Second
	// linkPoll is how often start checks for a first gateway link before
	// asking the other lobbies who is online.
	linkPoll = 20 * time.Millisecond
)

// app is a lobby node: the Lobby state behind a mutex, the node doing the
// IO, and the admin server.
//
// Concurrency: relay and lose-account callbacks run on the gateway link
// goroutines (several at once with several gateways), membership
// callbacks on the node's dispatcher. Each takes mu for the state change
// only and sends the resulting Outs after releasing it. One background
// goroutine (started by start, awaited by close) says hello and publishes
// the load.
type app struct {
	n       *node.Node
	log     logrus.FieldLogger
	reg     *prometheus.Registry
	now     func() time.Time
	failed  prometheus.Counter
	lost    prometheus.Counter // lose-account callbacks
	undeliv prometheus.Counter

	mu    sync.Mutex // guards st, awayT
	st    *Lobby
	awayT map[string]*time.Timer // players disconnected less than awayAfter ago

	admin     *admin.Server // nil when -admin is off
	adminAddr string        // bound admin address, set by start
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newApp builds the lobby node; cfg.Type is set to game.LobbyType.
func newApp(cfg node.Config, log logrus.FieldLogger) (*app, error) {
	cfg.Type = game.LobbyType
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	a := &app{
		n: n, log: log.WithField("component", "lobby"), reg: prometheus.NewRegistry(), now: time.Now,
		st: NewLobby(n.GetID()), awayT: make(map[string]*time.Timer),
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
	n.RegisterFuncOnRelayMsg(a.onRelay)
	n.RegisterFuncOnLoseAccount(a.onLose)
	n.RegisterFuncOnDisconnect(func(account string) { a.away(account, true) })
	n.RegisterFuncOnResume(func(account string) { a.away(account, false) })
	n.RegisterFuncOnUndeliverable(func(u common.Undeliverable) {
		a.undeliv.Inc()
		a.log.WithFields(logrus.Fields{"account": u.Account, "cmd": u.Cmd, "why": u.Code}).Debug("message not delivered")
	})
	n.RegisterFuncOnJoin(func(m common.Member) {
		a.logMember("member joined", m)
		if m.GetType() == game.LobbyType {
			a.mu.Lock()
			a.st.LobbyJoined(m.GetID())
			a.mu.Unlock()
		}
	})
	n.RegisterFuncOnLeave(func(m common.Member) {
		a.logMember("member left", m)
		if m.GetType() != game.LobbyType {
			return
		}
		a.mu.Lock()
		outs := a.st.LobbyLeft(m.GetID(), a.now())
		a.mu.Unlock()
		a.send(nil, outs)
	})
	n.EnableMessageRelay(true)

	a.reg.MustRegister(
		admin.WatchRedis(cfg.Redis), admin.LeaderEpoch(n.LeaderEpoch),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xserver_node_members",
			Help: "Cluster members this node knows of, itself included.",
		}, func() float64 { return float64(n.NumMembers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xserver_lobby_players",
			Help: "Players in this lobby.",
		}, func() float64 { return float64(a.players()) }),
		a.linesCounter("world", game.PushWorld),
		a.linesCounter("private", game.PushPrivate),
		a.failed, a.lost, a.undeliv,
	)
	return a, nil
}

func (a *app) linesCounter(kind string, push uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "xserver_lobby_chat_lines_total",
		Help:        "Chat lines this lobby's players sent, by kind (world or private).",
		ConstLabels: prometheus.Labels{"kind": kind},
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(a.st.Lines(push))
	})
}

func (a *app) players() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Players()
}

// onRelay handles a player's request or another node's message.
func (a *app) onRelay(src common.NodeType, from common.Member, account string, cmd uint64, data []byte) {
	var (
		outs []Out
		err  error
	)
	a.mu.Lock()
	switch src {
	case common.Client:
		outs = a.st.Request(account, cmd, data, a.now())
	case game.LobbyType:
		outs, err = a.st.FromLobby(from.GetID(), cmd, data)
	case game.MatchType:
		outs, err = a.st.FromMatch(cmd, data)
	default:
		err = fmt.Errorf("%w: cmd %d from a node of type %s", ErrBadMessage, cmd, src)
	}
	a.mu.Unlock()
	if err != nil {
		a.log.WithError(err).WithFields(logrus.Fields{"from": from.GetID().String(), "from_type": src}).Warn("node message dropped")
	}
	if src == common.Client && clientCmd(cmd) == game.CmdEnter && len(outs) > 0 {
		if r, ok := outs[0].Body.(game.EnterReply); ok && r.OK {
			a.log.WithFields(logrus.Fields{"account": account, "online": len(r.Online)}).Info("player entered")
		}
	}
	a.send(from, outs)
}

// away shows a player as reconnecting (once its connection stayed lost
// for awayAfter), or back: its state is kept while its session may
// resume.
func (a *app) away(account string, away bool) {
	a.mu.Lock()
	if t := a.awayT[account]; t != nil {
		t.Stop()
		delete(a.awayT, account)
	}
	if away {
		a.awayT[account] = time.AfterFunc(awayAfter, func() { a.showAway(account) })
		a.mu.Unlock()
		return
	}
	outs, ok := a.st.Away(account, false)
	a.mu.Unlock()
	if ok {
		a.log.WithField("account", account).Info("player back")
		a.send(nil, outs)
	}
}

// showAway tells everyone a player is reconnecting, if it still is.
func (a *app) showAway(account string) {
	a.mu.Lock()
	if a.awayT[account] == nil {
		a.mu.Unlock()
		return // back meanwhile
	}
	delete(a.awayT, account)
	outs, ok := a.st.Away(account, true)
	a.mu.Unlock()
	if ok {
		a.log.WithField("account", account).Info("player reconnecting")
		a.send(nil, outs)
	}
}

// onLose forgets a player whose session ended.
func (a *app) onLose(account string) {
	a.lost.Inc()
	a.mu.Lock()
	if t := a.awayT[account]; t != nil {
		t.Stop()
		delete(a.awayT, account)
	}
	name, at, _ := a.st.Entered(account)
	outs, ok := a.st.Lose(account)
	a.mu.Unlock()
	if !ok {
		a.log.WithField("account", account).Debug("session ended before the player entered")
		return
	}
	a.log.WithFields(logrus.Fields{
		"account": account, "name": name, "stayed": a.now().Sub(at).Round(time.Millisecond).String(),
	}).Info("player left")
	a.send(nil, outs)
}

// send hands outs to the node in order; from is the node whose message
// produced them (for ToSender). See Out for Fail.
func (a *app) send(from common.Member, outs []Out) {
	for _, o := range outs {
		err := a.sendOut(from, o)
		if err == nil {
			continue
		}
		fields := logrus.Fields{"to": o.To.String(), "cmd": o.Cmd}
		if o.Account != "" {
			fields["account"] = o.Account
		}
		if o.To == ToLobbies && errors.Is(err, common.ErrNoNode) {
			a.log.WithFields(fields).Debug("no other lobby to tell")
			continue
		}
		a.failed.Inc()
		if o.Fail != nil {
			a.log.WithError(err).WithFields(fields).Info("not delivered; answering the failure")
			if err := a.sendOut(from, *o.Fail); err != nil {
				a.failed.Inc()
				a.log.WithError(err).WithField("account", o.Fail.Account).Warn("failure answer not delivered")
			}
			return
		}
		a.log.WithError(err).WithFields(fields).Warn("message not delivered")
	}
}

func (a *app) sendOut(from common.Member, o Out) error {
	b, err := game.Encode(o.Body)
	if err != nil {
		return err
	}
	switch o.To {
	case ToPlayer:
		return a.n.SendClientMsgByRelay(o.Account, o.Cmd, b)
	case ToPlayers:
		for _, acc := range o.Accounts {
			// A player just gone (its lose-account is on its way) is
			// normal: count it, and go on with the others.
			if err := a.n.SendClientMsgByRelay(acc, o.Cmd, b); err != nil {
				a.failed.Inc()
				a.log.WithError(err).WithFields(logrus.Fields{"account": acc, "cmd": o.Cmd}).Debug("push not delivered")
			}
		}
		return nil
	case ToLobbies:
		return a.n.SendByType(game.LobbyType, o.Cmd, (*common.Raw)(&b), true)
	case ToSender:
		if from == nil {
			return fmt.Errorf("%w: no sender to answer", common.ErrNoNode)
		}
		return from.SendMsg(o.Cmd, (*common.Raw)(&b))
	case ToMatch:
		m := a.n.GetNodeByKey(game.MatchType, o.Key)
		if m == nil {
			return fmt.Errorf("%w: no match instance", common.ErrNoNode)
		}
		return m.SendMsg(o.Cmd, (*common.Raw)(&b))
	}
	return fmt.Errorf("lobby: unknown destination %v", o.To)
}

// start serves the admin port (if adminAddr is set) and starts the node;
// in the background it waits for registration and a gateway link, asks
// the other lobbies who is online, then publishes the player count.
func (a *app) start(ctx context.Context, adminAddr string) error {
	if adminAddr != "" {
		a.admin = admin.New(a.reg, a.health, a.log)
		bound, err := a.admin.Start(adminAddr)
		if err != nil {
			return err
		}
		a.adminAddr = bound
	}
	if err := a.n.Start(ctx); err != nil {
		return err
	}
	a.log.WithField("id", a.n.GetID().String()).Info("lobby started; looking for the mgrserver")
	ctx, a.cancel = context.WithCancel(ctx)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.background(ctx)
	}()
	return nil
}

func (a *app) background(ctx context.Context) {
	if a.n.WaitReady(ctx) != nil {
		return
	}
	t := time.NewTicker(linkPoll)
	defer t.Stop()
	for a.n.GatewayLinks() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	a.log.WithField("epoch", a.n.LeaderEpoch()).Info("registered and linked to a gateway; asking the other lobbies who is online")
	a.send(nil, []Out{Who()})

	t.Reset(loadEvery)
	published := -1
	for {
		if p := a.players(); p != published {
			a.n.SetOverload(0, uint32(p))
			published = p
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// health is /healthz: healthy while registered with an mgrserver.
func (a *app) health() error {
	if !a.n.Connected() {
		return errors.New("not connected to an mgrserver")
	}
	return nil
}

func (a *app) logMember(what string, m common.Member) {
	a.log.WithFields(logrus.Fields{
		"member": m.GetID().String(), "member_type": m.GetType(), "ip": m.GetIP(common.IPInner),
	}).Info(what)
}

// close leaves the cluster (members see a leave, not a failure), stops the
// background goroutine and the admin server. Safe twice and after a failed
// start.
func (a *app) close() {
	if a.cancel != nil {
		a.cancel()
	}
	_ = a.n.Close()
	a.mu.Lock()
	for acct, t := range a.awayT {
		t.Stop()
		delete(a.awayT, acct)
	}
	a.mu.Unlock()
	a.wg.Wait()
	if a.admin != nil {
		_ = a.admin.Close()
	}
}
