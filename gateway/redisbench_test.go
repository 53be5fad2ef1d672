package gateway_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRedisPerPush counts the Redis commands (INFO commandstats, the
// commands run inside scripts included) a node's messages to players cost:
// to a logged-in player who sends nothing, spread over 20 s (longer than
// any holder cache could last by time), and to an account with no session.
// Logins and the gateways' own refreshes run before and after, not during.
func BenchmarkRedisPerPush(b *testing.B) {
	e := newEnv(b, 1)
	e.startGame(lobbyType)
	pusher := e.startGame(echoType)
	e.ready()
	c := e.connect("listener")
	_ = c
	const pushes = 40
	count := func() int64 {
		s, err := e.rdb.Info(context.Background(), "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "cmdstat_") || strings.HasPrefix(l, "cmdstat_info:") {
				continue
			}
			_, rest, _ := strings.Cut(l, "calls=")
			v, _, _ := strings.Cut(rest, ",")
			k, _ := strconv.ParseInt(v, 10, 64)
			n += k
		}
		return n
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		// The same run's background: the cluster's own periodic commands
		// (leases, heartbeats, the cluster marker, session refreshes)
		// over a quiet window as long as the pushes' window.
		before := count()
		time.Sleep(pushes * 500 * time.Millisecond)
		quiet := count() - before
		before = count()
		for i := 0; i < pushes; i++ {
			if err := pusher.SendClientMsgByRelay("listener", uint64(echoType)*1000+1, []byte("x")); err != nil {
				b.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		online := count() - before - quiet
		before = count()
		for i := 0; i < pushes; i++ {
			_ = pusher.SendClientMsgByRelay("nobody", uint64(echoType)*1000+1, []byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
		offline := count() - before - quiet/10
		b.ReportMetric(float64(online)/pushes, "cmds/push-online")
		b.ReportMetric(float64(offline)/pushes, "cmds/push-offline")
		b.ReportMetric(float64(quiet)/(pushes*0.5), "cmds/s-background")
		b.ReportMetric(0, "ns/op")
	}
}
