package gateway

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/login"
)

// holdScript re-asserts that this gateway holds an account: it refreshes
// the key when it names us, and restores it when it is missing (Redis
// restarted); a key naming another gateway is left alone.
var holdScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// refreshBatch bounds one pipeline.
const refreshBatch = 512

// refreshLoop keeps every live session's Redis state from expiring: the
// holder key (how nodes find the account's gateway) and the bindings
// (whose affinity window should count from the end of the session, not
// its start). It runs every third of the affinity window.
func (g *Gateway) refreshLoop() {
	defer g.wg.Done()
	t := time.NewTicker(max(g.cfg.Affinity/3, time.Second))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-g.stop:
			return
		}
		g.refresh()
	}
}

func (g *Gateway) refresh() {
	g.mu.RLock()
	accounts := make([]string, 0, len(g.clients))
	for a := range g.clients {
		accounts = append(accounts, a)
	}
	g.mu.RUnlock()
	id := g.node.GetID().String()
	ms := g.cfg.Affinity.Milliseconds()
	for len(accounts) > 0 {
		n := min(len(accounts), refreshBatch)
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LoginTimeout)
		pipe := g.cfg.Redis.Pipeline()
		for _, a := range accounts[:n] {
			k := login.KeysFor(g.cfg.Cluster, a)
			holdScript.Eval(ctx, pipe, []string{k.Holder}, id, ms) // EVAL: a pipeline cannot fall back from EVALSHA
			pipe.PExpire(ctx, k.Bind, g.cfg.Affinity)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			g.log.WithError(err).Warn("refreshing session keys failed; will retry")
		}
		cancel()
		accounts = accounts[n:]
		select {
		case <-g.stop:
			return
		default:
		}
	}
}
