package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// probeInterval is how often the gateway checks its own Pub/Sub
// subscription by publishing to a channel only it listens on.
const probeInterval = 2 * time.Second

// registerObservers adds the gauges that need the running gateway: the
// leader epoch its node has seen and the state of its Pub/Sub
// subscription. Called once, from Start.
func (g *Gateway) registerObservers() {
	n := g.node
	g.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xserver_leader_epoch",
			Help: "Highest mgrserver leader epoch this process has seen.",
		}, func() float64 { return float64(n.LeaderEpoch()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xserver_gateway_pubsub_subscribed",
			Help: "1 while the gateway's Redis Pub/Sub subscription (cross-gateway duplicate-login kicks) delivers: its own probe came back within 3 probe intervals.",
		}, func() float64 {
			last := g.probeEcho.Load()
			if last != 0 && time.Since(time.Unix(0, last)) < 3*probeInterval {
				return 1
			}
			return 0
		}),
	)
}

// probeLoop publishes a probe to the gateway's own probe channel; kickLoop
// notes its echo. A subscription that Redis dropped, or that go-redis is
// still re-establishing, stops echoing.
func (g *Gateway) probeLoop() {
	defer g.wg.Done()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	payload := g.node.GetID().String() + " probe"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), probeInterval)
		_ = g.cfg.Redis.Publish(ctx, g.probeCh, payload).Err()
		cancel()
		select {
		case <-t.C:
		case <-g.stop:
			return
		}
	}
}

// noteProbe records that a probe came back.
func (g *Gateway) noteProbe() { g.probeEcho.Store(time.Now().UnixNano()) }
