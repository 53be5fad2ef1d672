package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/xserver/xserver/login"
)

// When a player's bound instance dies, its next message goes to a live
// instance of the type, and the new binding is recorded in Redis so every
// gateway and the login service agree.
func TestRebindWhenBoundInstanceDies(t *testing.T) {
	e := newEnv(t, 1)
	var lobbies []*gameNode
	for i := 0; i < 2; i++ {
		lobbies = append(lobbies, e.startGame(lobbyType))
	}
	e.ready()
	c := e.connect("survivor")
	bound := lobbyOf(lobbies, c)
	var other *gameNode
	for _, l := range lobbies {
		if l != bound {
			other = l
		}
	}
	bound.Crash()
	waitFor(t, 10*time.Second, "gateway drops the dead lobby's link", func() bool { return !e.gws[0].HasLink(bound.GetID()) })

	c.send(uint64(lobbyType)*1000+1, 1)
	if _, _, from := c.reply(); from != other.GetID().String() {
		t.Fatalf("reply from %s, want the live lobby %s", from, other.GetID())
	}
	// Recorded in the background: the client's message did not wait for it.
	waitFor(t, 5*time.Second, "new binding recorded in Redis", func() bool {
		b, err := login.LoadBindings(context.Background(), e.rdb, "xserver", "survivor")
		return err == nil && b[lobbyType] == other.GetID()
	})
}

// A node that never heard from a player finds its gateway through Redis.
func TestSendToPlayerViaRedisHolder(t *testing.T) {
	e := newEnv(t, 2)
	e.startGame(lobbyType)
	stranger := e.startGame(echoType) // stateless: never told about the player
	e.ready()
	c := e.connect("faraway")
	if err := stranger.SendClientMsgByRelay("faraway", 5555, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_, p := c.read()
	if string(p[8:]) != "hi" {
		t.Fatalf("got %q", p[8:])
	}
	if err := stranger.SendClientMsgByRelay("nobody-here", 1, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "undeliverable reported", func() bool { return stranger.undelivered.Load() == 1 })
}
