package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func scrape(tb testing.TB, addr string) string {
	tb.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The gateway's /metrics shows the runtime, the process, the leader epoch
// its node follows, the Redis error age and whether its Pub/Sub
// subscription delivers; the last goes to 0 while Redis does not answer
// and back to 1 after.
func TestGatewayOperatorMetrics(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.Admin = "127.0.0.1:0" })
	e.startGame(lobbyType)
	e.ready()
	g := e.gws[0]
	addr := g.Addrs().Admin
	waitFor(t, 10*time.Second, "subscription reported live", func() bool {
		return strings.Contains(scrape(t, addr), "\nxserver_gateway_pubsub_subscribed 1\n")
	})
	body := scrape(t, addr)
	for _, want := range []string{
		fmt.Sprintf("\nxserver_leader_epoch %d\n", g.Node().LeaderEpoch()), "\nxserver_redis_last_error_age_seconds ",
		"\ngo_goroutines ", "\ngo_memstats_alloc_bytes ", "\nprocess_resident_memory_bytes ", "\nprocess_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if g.Node().LeaderEpoch() == 0 {
		t.Error("leader epoch 0 after joining")
	}

	e.redis.Pause()
	waitFor(t, 15*time.Second, "subscription reported down", func() bool {
		return strings.Contains(scrape(t, addr), "\nxserver_gateway_pubsub_subscribed 0\n")
	})
	e.redis.Resume()
	waitFor(t, 15*time.Second, "subscription reported live again", func() bool {
		return strings.Contains(scrape(t, addr), "\nxserver_gateway_pubsub_subscribed 1\n")
	})
	if strings.Contains(scrape(t, addr), "\nxserver_redis_last_error_age_seconds +Inf\n") {
		t.Error("no Redis error noted after a pause")
	}
}
