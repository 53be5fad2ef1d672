package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/xserver/xserver/login"
)

// A live session keeps its record and bindings: with an affinity of 3 s
// and records lasting 3 refreshes of 1 s the keys would lapse, but the
// gateway refreshes them, and restores the record after it is lost.
func TestSessionKeysRefreshed(t *testing.T) {
	e := newEnvWith(t, 1, func(c *gatewayConfig) {
		c.Affinity, c.SessionRefresh, c.ResumeWindow = 3*time.Second, time.Second, -1
	})
	e.startGame(lobbyType)
	e.ready()
	c := e.connect("stayer")
	defer c.conn.Close()
	ctx := context.Background()
	k := login.KeysFor("xserver", "stayer")
	if err := e.rdb.Del(ctx, k.Sess).Err(); err != nil { // as after a Redis restart
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "session record restored", func() bool { return e.rdb.Exists(ctx, k.Sess).Val() == 1 })
	deadline := time.Now().Add(6 * time.Second) // two affinity windows
	for time.Now().Before(deadline) {
		if e.rdb.Exists(ctx, k.Sess).Val() != 1 || e.rdb.Exists(ctx, k.Bind).Val() != 1 {
			t.Fatal("a live session's keys expired")
		}
		time.Sleep(100 * time.Millisecond) // sampling period of the check
	}
}
