package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// resumeAnswer presents r on a new connection to addr and returns the
// answer's code; the gateway must close the connection after a refusal.
func resumeAnswer(t *testing.T, addr string, r *wire.Resume) uint16 {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Error(err)
		return 0xffff
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(wire.AppendResume(nil, r)); err != nil {
		t.Error(err)
		return 0xffff
	}
	rd := wire.NewReader(c, 1<<16, 0)
	k, p, err := rd.ReadFrame()
	if err != nil || k != wire.KindClientResumed {
		t.Errorf("answer %s %v", k, err)
		return 0xffff
	}
	res, _ := wire.DecodeResumed(p)
	if _, _, err := rd.ReadFrame(); !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Errorf("connection still open after a refused resume: %v", err)
	}
	return res.Code
}

// Against the gateway process: resumes with a wrong secret, an unknown or
// expired session, another account's session, and a flood of them, each
// get a code and a close, while the players next to them lose nothing.
func TestResumeRefused(t *testing.T) {
	c := startCluster(t, 1, 30*time.Second)
	const bots = 20
	p := c.startBots("honest", bots, 8*time.Second, "-chat-every", "500ms", "-drop-every", "1s")
	waitPlayers(t, c, bots)
	sidHex, err := c.redis.Client(t).HGet(context.Background(), "xserver:"+c.name+":{honest-1}:sess", "sid").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sid uint64
	fmt.Sscanf(sidHex, "%x", &sid)
	addr := c.gws[0].client
	for _, tc := range []struct {
		name string
		r    wire.Resume
		want uint16
	}{
		{"unknown session", wire.Resume{Account: "honest-1", ID: sid + 1, Attempt: 1}, wire.CodeExpired},
		{"wrong secret", wire.Resume{Account: "honest-1", ID: sid, Attempt: 1000}, wire.CodeBadResume},
		{"another account's session", wire.Resume{Account: "honest-2", ID: sid, Attempt: 1000}, wire.CodeExpired},
		{"no such account", wire.Resume{Account: "nobody", ID: sid, Attempt: 1}, wire.CodeExpired},
	} {
		if got := resumeAnswer(t, addr, &tc.r); got != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got, tc.want)
		}
	}
	// A flood of bad resumes from 8 connections at once.
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				r := wire.Resume{Account: fmt.Sprintf("honest-%d", 1+(w*40+i)%bots), ID: sid + uint64(i), Attempt: 1 << 20}
				if got := resumeAnswer(t, addr, &r); got != wire.CodeExpired && got != wire.CodeBadResume {
					t.Errorf("flood: code %d", got)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	r := c.waitBots(p, 40*time.Second)
	if r.lost != 0 || r.duplicated != 0 || r.relogins != 0 {
		t.Fatalf("players disturbed: lost %d, duplicated %d, relogins %d", r.lost, r.duplicated, r.relogins)
	}
	if n := metric(t, c.lobbyAdm, "lobby_lose_account_total"); n != 0 {
		t.Fatalf("lobby lost %v accounts", n)
	}
}

func waitPlayers(t *testing.T, c *cluster, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for metric(t, c.lobbyAdm, "xserver_lobby_players") != float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d players never entered", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
