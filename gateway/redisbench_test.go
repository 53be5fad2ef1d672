package gateway_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/node"
)

// BenchmarkRedisPerPush counts the Redis commands (INFO commandstats, the
// commands run inside scripts included) that players cost:
//   - a login: the login service's ticket and the gateway's login, apart;
//   - an idle session, per second: 100 sessions more over a window of two
//     session refreshes;
//   - a node's message to a logged-in player who sends nothing, spread
//     over 20 s (longer than any holder cache could last by time);
//   - messages to an account with no session: 40 to one account, 40 to
//     40 accounts never seen; and, the same-run baseline, 40 to one
//     account from a node whose offline cache is off.
//
// Every window is net of the cluster's own background (leases,
// heartbeats, the marker, refreshes, Pub/Sub pings) measured over a quiet
// window with the same sessions and subscriptions.
func BenchmarkRedisPerPush(b *testing.B) {
	e := newEnv(b, 1)
	e.startGame(lobbyType)
	// The pushing nodes have Redis clients of their own, whose commands
	// are counted as sent: a push costs the gateway no Redis command, and
	// the server's count is too noisy over a short window (every refresh
	// is a burst of one script per session).
	var pushCmds, nocacheCmds cmdCounter
	e.nodeOpt = func(c *node.Config) {
		r := e.redis.Client(b)
		r.AddHook(&pushCmds)
		c.Redis = r
	}
	pusher := e.startGame(echoType)
	e.nodeOpt = func(c *node.Config) {
		r := e.redis.Client(b)
		r.AddHook(&nocacheCmds)
		c.Redis, c.OfflineCache = r, -1
	}
	nocache := e.startGame(echoType)
	e.nodeOpt = nil
	e.ready()
	// countOf counts the calls of the commands whose stat line starts
	// with prefix ("cmdstat_" for all).
	countOf := func(prefix string) int64 {
		s, err := e.rdb.Info(context.Background(), "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, prefix) || strings.HasPrefix(l, "cmdstat_info:") {
				continue
			}
			_, rest, _ := strings.Cut(l, "calls=")
			v, _, _ := strings.Cut(rest, ",")
			k, _ := strconv.ParseInt(v, 10, 64)
			n += k
		}
		return n
	}
	count := func() int64 { return countOf("cmdstat_") }
	const pushes = 40
	const idle = 100
	refresh := gateway.DefaultConfig().SessionRefresh
	cmd := uint64(echoType)*1000 + 1
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		// Logins: tickets, then the gateways' side.
		before := count()
		var tickets []*login.Ticket
		for i := 0; i < pushes; i++ {
			tickets = append(tickets, e.loginTicket(fmt.Sprintf("bench-%d-%d", it, i)))
		}
		ticketCmds := count() - before
		before = count()
		var clients []*client
		for _, t := range tickets {
			c, code := dial(b, t.Gateway, t)
			if code != wire.CodeOK {
				b.Fatalf("login: %s", wire.CodeText(code))
			}
			clients = append(clients, c)
		}
		gatewayCmds := count() - before

		// The pusher subscribes to the login announcements at its first
		// offline answer: before the quiet window, so its pings count as
		// background.
		pre := countOf("cmdstat_ping:")
		time.Sleep(refresh)
		prePings := float64(countOf("cmdstat_ping:")-pre) / refresh.Seconds()
		_ = pusher.SendClientMsgByRelay("warm", cmd, []byte("x"))
		waitFor(b, 10*time.Second, "the logins subscription", func() bool { return pusher.OfflineCache().Subscribed })

		// Background with these sessions, over two refreshes.
		window := 2 * refresh
		before, pings := count(), countOf("cmdstat_ping:")
		time.Sleep(window)
		quiet := count() - before
		pings = countOf("cmdstat_ping:") - pings
		// 100 idle sessions more, over as long.
		for i := 0; i < idle; i++ {
			clients = append(clients, e.connect(fmt.Sprintf("idle-%d-%d", it, i)))
		}
		time.Sleep(refresh / 2) // the logins' own commands are done
		before = count()
		time.Sleep(window)
		idleCmds := count() - before - quiet

		// The pushing nodes' own background: leader checks, the
		// subscription's pings.
		p0, n0 := pushCmds.n.Load(), nocacheCmds.n.Load()
		time.Sleep(window)
		pushBg := float64(pushCmds.n.Load()-p0) / window.Seconds()
		nocacheBg := float64(nocacheCmds.n.Load()-n0) / window.Seconds()
		run := func(n *gameNode, c *cmdCounter, bg float64, gap time.Duration, name func(int) string) float64 {
			before, t0 := c.n.Load(), time.Now()
			for i := 0; i < pushes; i++ {
				_ = n.SendClientMsgByRelay(name(i), cmd, []byte("x"))
				time.Sleep(gap)
			}
			time.Sleep(100 * time.Millisecond) // the last lookup
			return (float64(c.n.Load()-before) - bg*time.Since(t0).Seconds()) / pushes
		}
		listener := tickets[0].Account
		online := run(pusher, &pushCmds, pushBg, 500*time.Millisecond, func(int) string { return listener })
		gap := 50 * time.Millisecond
		repeat := run(pusher, &pushCmds, pushBg, gap, func(int) string { return fmt.Sprintf("nobody-%d", it) })
		distinct := run(pusher, &pushCmds, pushBg, gap, func(i int) string { return fmt.Sprintf("nobody-%d-%d", it, i) })
		baseline := run(nocache, &nocacheCmds, nocacheBg, gap, func(int) string { return fmt.Sprintf("nobody-nc-%d", it) })
		b.ReportMetric(float64(ticketCmds)/pushes, "cmds/login-ticket")
		b.ReportMetric(float64(gatewayCmds)/pushes, "cmds/login-gateway")
		b.ReportMetric(float64(idleCmds)/idle/window.Seconds(), "cmds/s-idle-session")
		b.ReportMetric(online, "cmds/push-online")
		b.ReportMetric(repeat, "cmds/push-offline")
		b.ReportMetric(distinct, "cmds/push-offline-distinct")
		b.ReportMetric(baseline, "cmds/push-offline-nocache")
		b.ReportMetric(float64(quiet)/window.Seconds(), "cmds/s-background")
		b.ReportMetric(pushBg, "cmds/s-pusher-background")
		b.ReportMetric(float64(pings)/window.Seconds()-prePings, "pings/s-subscriber")
		b.ReportMetric(0, "ns/op")
		for _, c := range clients {
			c.conn.Close()
		}
	}
}

// cmdCounter is a go-redis hook counting the commands a client sends
// (each command of a pipeline).
type cmdCounter struct{ n atomic.Int64 }

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
