package main

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/node"
)

// app is a lobby binary: the lobby service on a real node, its metrics
// and the admin server.
//
// Concurrency: one background goroutine (started by start, awaited by
// close) waits for the node to register and then readies the service.
type app struct {
	n   *node.Node
	svc *lobbyService
	log logrus.FieldLogger
	reg *prometheus.Registry

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
	svc, err := newService(n, wallClock{}, log)
	if err != nil {
		return nil, err
	}
	a := &app{n: n, svc: svc, log: log.WithField("component", "lobby"), reg: prometheus.NewRegistry()}
	a.reg.MustRegister(admin.WatchRedis(cfg.Redis), admin.LeaderEpoch(n.LeaderEpoch), n.Metrics())
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xserver_node_members",
		Help: "Cluster members this node knows of, itself included.",
	}, func() float64 { return float64(n.NumMembers()) }))
	a.reg.MustRegister(svc.collectors()...)
	return a, nil
}

// start serves the admin port (if adminAddr is set) and starts the node;
// in the background it waits for registration and readies the service
// (which asks the other lobbies who is online and publishes the player
// count).
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
		if a.n.WaitReady(ctx) != nil {
			return
		}
		a.log.WithField("epoch", a.n.LeaderEpoch()).Info("registered")
		a.svc.ready()
	}()
	return nil
}

// health is /healthz: healthy while registered with an mgrserver.
func (a *app) health() error {
	if !a.n.Connected() {
		return errors.New("not connected to an mgrserver")
	}
	return nil
}

// close leaves the cluster (members see a leave, not a failure), stops the
// service's timers and the admin server. Safe twice and after a failed
// start.
func (a *app) close() {
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	a.svc.stop()
	_ = a.n.Close()
	if a.admin != nil {
		_ = a.admin.Close()
	}
}
