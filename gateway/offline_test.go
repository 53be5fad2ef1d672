package gateway_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/service"
)

// pushCmd is the cmd the tests' node messages to players carry.
const pushCmd = uint64(echoType)*1000 + 1

func push(t *testing.T, n *gameNode, account, data string) {
	t.Helper()
	if err := n.SendClientMsgByRelay(account, pushCmd, []byte(data)); err != nil {
		t.Fatalf("push to %s: %v", account, err)
	}
}

// push reads frames until a data frame and returns its payload.
func (c *client) push() string {
	c.tb.Helper()
	for {
		k, p := c.read()
		if k != wire.KindClientData {
			continue
		}
		_, data, err := wire.DecodeData(p)
		if err != nil {
			c.tb.Fatal(err)
		}
		return string(data)
	}
}

// warmOffline makes n subscribe to the login announcements (a first
// offline answer starts the subscription) and then caches account as
// offline.
func warmOffline(t *testing.T, n *gameNode, account string) {
	t.Helper()
	push(t, n, account, "warm")
	waitFor(t, 10*time.Second, "the logins subscription", func() bool { return n.OfflineCache().Subscribed })
	cached := n.OfflineCache().Cached
	push(t, n, account, "warm")
	waitFor(t, 10*time.Second, account+" cached as offline", func() bool { return n.OfflineCache().Cached > cached })
}

// gate blocks a hook until released; release is safe twice and runs at
// cleanup, so a failed test never leaves a worker blocked.
type gate struct {
	reached, open chan struct{}
	once, rel     sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{reached: make(chan struct{}), open: make(chan struct{})}
	t.Cleanup(g.release)
	return g
}

func (g *gate) block() {
	g.once.Do(func() {
		close(g.reached)
		<-g.open
	})
}

func (g *gate) release() { g.rel.Do(func() { close(g.open) }) }

func (g *gate) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(minWait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Messages to a player with no session cost one Redis lookup, not one
// each: the answer is cached while the node is subscribed to the login
// announcements, and the player's login removes it.
func TestOfflinePlayerCachedUntilItLogsIn(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	var lookups atomic.Int64
	pusher.hook.SetAfterLookup(func(account string, _ bool) {
		if account == "ghost" {
			lookups.Add(1)
		}
	})
	warmOffline(t, pusher, "ghost")
	n0, u0 := lookups.Load(), pusher.undelivered.Load()
	for i := 0; i < 20; i++ {
		push(t, pusher, "ghost", "x")
	}
	waitFor(t, 10*time.Second, "20 messages undeliverable", func() bool { return pusher.undelivered.Load() == u0+20 })
	if n := lookups.Load() - n0; n != 0 {
		t.Fatalf("%d lookups for 20 messages to a cached offline player", n)
	}
	c := e.connect("ghost")
	waitFor(t, 10*time.Second, "the login announced", func() bool { return pusher.OfflineCache().Invalidations == 1 })
	push(t, pusher, "ghost", "hello")
	if got := c.push(); got != "hello" {
		t.Fatalf("got %q", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(pusher.Metrics())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		vals[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if vals["xserver_node_offline_cache_hits_total"] < 20 || vals["xserver_node_logins_subscribed"] != 1 || vals["xserver_node_offline_cache_invalidations_total"] != 1 {
		t.Fatalf("metrics %v", vals)
	}
}

// The race: a lookup reads Redis before the player's login, and the
// login's announcement reaches the node before the lookup's answer. The
// stale "offline" must not be cached (no later event would remove it); the
// node looks the holder up again and delivers.
func TestOfflineAnswerOlderThanLoginAnnouncement(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	warmOffline(t, pusher, "ghost")
	g := newGate(t)
	pusher.hook.SetAfterLookup(func(account string, online bool) {
		if account == "late" && !online {
			g.block()
		}
	})
	push(t, pusher, "late", "one")
	g.wait(t, "the lookup of late")
	ann := pusher.OfflineCache().Announcements
	c := e.connect("late")
	waitFor(t, 10*time.Second, "the login announced to the node", func() bool { return pusher.OfflineCache().Announcements > ann })
	g.release() // now the answer read before the login
	if got := c.push(); got != "one" {
		t.Fatalf("got %q", got)
	}
	push(t, pusher, "late", "two")
	if got := c.push(); got != "two" {
		t.Fatalf("got %q", got)
	}
	if st := pusher.OfflineCache(); st.Relooked != 1 || pusher.undelivered.Load() != 2 { // the two warm-ups
		t.Fatalf("stats %+v, %d undeliverable", st, pusher.undelivered.Load())
	}
}

// A lost Pub/Sub connection may have lost announcements: every cached
// entry goes, and nothing is cached until the subscription is back. Here
// the player logs in while the node is not subscribed.
func TestOfflineCacheDroppedWhenSubscriptionDrops(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	warmOffline(t, pusher, "ghost")
	g := newGate(t)
	pusher.hook.SetBeforeResubscribe(g.block)
	if err := e.rdb.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	g.wait(t, "the node to resubscribe")
	if st := pusher.OfflineCache(); st.Subscribed || st.Entries != 0 {
		t.Fatalf("after the subscription dropped: %+v", st)
	}
	c := e.connect("ghost") // announced while the node is not subscribed
	g.release()
	waitFor(t, 10*time.Second, "the subscription back", func() bool { return pusher.OfflineCache().Subscribed })
	push(t, pusher, "ghost", "back")
	if got := c.push(); got != "back" {
		t.Fatalf("got %q", got)
	}
}

// Redis restarts empty: session records are gone until each gateway
// writes back its own. A node that finds a live player offline meanwhile
// (no login will be announced for it) forgets that when the gateway
// announces the restore.
func TestOfflineCacheAfterRedisRestartsEmpty(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) {
		c.SessionRefresh = time.Hour // only the marker check restores here
	})
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	c := e.connect("alive")
	warmOffline(t, pusher, "ghost")
	g := newGate(t)
	e.gws[0].SetBeforeRestore(g.block)
	flushes := pusher.OfflineCache().Flushes
	e.redis.Restart()
	g.wait(t, "the gateway to find Redis empty")
	waitFor(t, 10*time.Second, "the subscription renewed", func() bool {
		st := pusher.OfflineCache()
		return st.Subscribed && st.Flushes >= flushes+2 && st.Entries == 0
	})
	cached, u := pusher.OfflineCache().Cached, pusher.undelivered.Load()
	push(t, pusher, "alive", "lost") // no record now: undeliverable, as without a cache
	waitFor(t, 10*time.Second, "alive found offline", func() bool {
		return pusher.undelivered.Load() > u && pusher.OfflineCache().Cached > cached
	})
	flushes = pusher.OfflineCache().Flushes
	g.release()
	waitFor(t, 10*time.Second, "the restore announced", func() bool { return pusher.OfflineCache().Flushes > flushes })
	push(t, pusher, "alive", "after")
	if got := c.push(); got != "after" {
		t.Fatalf("got %q", got)
	}
}

// failPublish makes the Redis client fail the publication of one
// account's login announcement, as a Redis hiccup would.
type failPublish struct{ suffix string }

func (failPublish) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f failPublish) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) == 3 && cmd.Name() == "publish" {
			if p, _ := a[2].(string); strings.HasSuffix(p, f.suffix) {
				err := errors.New("test: publish refused")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}
func (failPublish) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A login whose announcement could not be published: the gateway tells
// the nodes to forget every offline player instead, once Redis takes it.
func TestOfflineCacheFlushedWhenLoginNotAnnounced(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	warmOffline(t, pusher, "mute")
	e.rdb.AddHook(failPublish{" mute"})
	c := e.connect("mute")
	waitFor(t, 10*time.Second, "the flush announced", func() bool { return pusher.OfflineCache().Entries == 0 })
	push(t, pusher, "mute", "heard")
	if got := c.push(); got != "heard" {
		t.Fatalf("got %q", got)
	}
}

// A Sentinel failover: the subscription breaks with the old master, every
// offline answer is forgotten, and the renewed subscription (on the new
// master) carries the next login's announcement.
func TestOfflineCacheAcrossSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 5-process Sentinel deployment")
	}
	d := redistest.StartSentinel(t, 1)
	rdb := failoverClient(t, service.RedisConfig{Addr: strings.Join(d.Addrs(), ","), MasterName: redistest.SentinelMaster})
	e := newEnvOn(t, nil, rdb, 1, nil, nil)
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	warmOffline(t, pusher, "ghost")
	flushes := pusher.OfflineCache().Flushes
	old := d.MasterAddr()
	d.ServerAt(old).Stop()
	d.WaitMasterChange(old)
	waitFor(t, 20*time.Second, "the subscription renewed", func() bool {
		st := pusher.OfflineCache()
		return st.Subscribed && st.Flushes >= flushes+2 && st.Entries == 0
	})
	// Found offline again, through the new master, and cached.
	cached := pusher.OfflineCache().Cached
	push(t, pusher, "ghost", "x")
	waitFor(t, 10*time.Second, "ghost cached again", func() bool { return pusher.OfflineCache().Cached > cached })
	var tk *login.Ticket
	waitFor(t, 20*time.Second, "a login after the failover", func() bool {
		var err error
		tk, err = e.login.Login(context.Background(), "ghost", "pw")
		return err == nil
	})
	c, code := dial(t, tk.Gateway, tk)
	if code != wire.CodeOK {
		t.Fatalf("login: %s", wire.CodeText(code))
	}
	waitFor(t, 10*time.Second, "the login announced", func() bool { return pusher.OfflineCache().Entries == 0 })
	push(t, pusher, "ghost", "after")
	if got := c.push(); got != "after" {
		t.Fatalf("got %q", got)
	}
}
