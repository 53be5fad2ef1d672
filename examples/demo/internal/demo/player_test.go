package demo

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/login"
)

const testToken = "tok-secret-0123456789"

// fakeGame is a gateway and a lobby in one: it accepts clients, checks
// their login and plays the example game's lobby for them: Enter, world
// chat (an Ack, then a push to every other player who entered), and
// queueing (two queued players are matched). Each behaviour can be broken
// for a test.
type fakeGame struct {
	t   *testing.T
	ln  net.Listener
	wg  sync.WaitGroup
	cfg fakeConfig

	mu      sync.Mutex // guards players and queued
	players map[string]net.Conn
	queued  []string
}

type fakeConfig struct {
	refuseEnter bool   // EnterReply ok=false
	noNode      bool   // answer Enter with ClientError NoNode
	kick        bool   // answer Enter with a kick
	silentChat  bool   // ack world chat but push it to nobody
	noise       bool   // push a presence and another chat line before each answer
	loginCode   uint16 // gateway login answer (CodeOK by default)
}

func newFakeGame(t *testing.T, cfg fakeConfig) *fakeGame {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGame{t: t, ln: ln, cfg: cfg, players: make(map[string]net.Conn)}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		for _, c := range g.players {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *fakeGame) addr() string { return g.ln.Addr().String() }

func (g *fakeGame) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer c.Close()
			g.serve(c)
		}()
	}
}

func (g *fakeGame) push(c net.Conn, cmd uint64, body any) {
	b, err := game.Encode(body)
	if err != nil {
		g.t.Error(err)
		return
	}
	_, _ = c.Write(wire.AppendData(nil, cmd, b))
}

func (g *fakeGame) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(c, 0, 0)
	k, p, err := r.ReadFrame()
	if err != nil || k != wire.KindClientLogin {
		return
	}
	lg, err := wire.DecodeLogin(p)
	if err != nil || lg.Token != testToken {
		_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeBadToken, "bad token"))
		return
	}
	_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientLoginAck, g.cfg.loginCode, wire.CodeText(g.cfg.loginCode)))
	if g.cfg.loginCode != wire.CodeOK {
		return
	}
	account := lg.Account
	for {
		k, p, err := r.ReadFrame()
		if err != nil || k != wire.KindClientData {
			return
		}
		cmd, data, err := wire.DecodeData(p)
		if err != nil {
			return
		}
		if g.cfg.noise {
			g.push(c, game.PushPresence, game.Presence{Player: game.Player{Account: "someone"}, Online: true})
			g.push(c, game.PushWorld, game.ChatLine{From: "someone", Text: "noise"})
			g.push(c, cmd+100, game.Ack{OK: true}) // another cmd entirely
		}
		switch cmd {
		case game.CmdEnter:
			switch {
			case g.cfg.noNode:
				_, _ = c.Write(wire.AppendClientError(nil, wire.CodeNoNode, cmd))
				continue
			case g.cfg.kick:
				_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientKick, wire.CodeKicked, "go away"))
				return
			case g.cfg.refuseEnter:
				g.push(c, cmd, game.EnterReply{Error: "lobby full"})
				continue
			}
			g.mu.Lock()
			g.players[account] = c
			g.mu.Unlock()
			g.push(c, cmd, game.EnterReply{OK: true, Account: account})
		case game.CmdWorld:
			var w game.WorldChat
			if game.Decode(data, &w) != nil {
				return
			}
			g.push(c, cmd, game.Ack{OK: true})
			if g.cfg.silentChat {
				continue
			}
			g.mu.Lock()
			for acc, other := range g.players {
				if acc != account {
					g.push(other, game.PushWorld, game.ChatLine{From: account, Text: w.Text, TS: 1})
				}
			}
			g.mu.Unlock()
		case game.CmdQueue:
			var q game.Queue
			if game.Decode(data, &q) != nil || q.Mode == "" {
				g.push(c, cmd, game.Ack{Error: "bad mode"})
				continue
			}
			g.push(c, cmd, game.Ack{OK: true})
			g.mu.Lock()
			g.queued = append(g.queued, account)
			if len(g.queued) == 2 {
				a, b := g.queued[0], g.queued[1]
				g.queued = nil
				g.push(g.players[a], game.PushMatched, game.Matched{MatchID: "m-1", Account: a, Mode: q.Mode, Opponent: game.Player{Account: b}})
				g.push(g.players[b], game.PushMatched, game.Matched{MatchID: "m-1", Account: b, Mode: q.Mode, Opponent: game.Player{Account: a}})
			}
			g.mu.Unlock()
		}
	}
}

// fakeLogin answers POST /login with status and, for 200, a ticket for
// the gateway at gw binding the account to the lobby named in lobbies (or
// none).
func fakeLogin(t *testing.T, status int, gw string, lobbies map[string]common.NodeID) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Account, Password string }
		if r.Method != http.MethodPost || r.URL.Path != "/login" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Password != "pw" {
			http.Error(w, `{"error": "bad request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no game server available; try again later"})
			return
		}
		_ = json.NewEncoder(w).Encode(login.Ticket{
			Account: req.Account, Gateway: gw, GatewayID: common.NewNodeID(), Token: testToken,
			Bindings: map[common.NodeType]common.NodeID{game.LobbyType: lobbies[req.Account]},
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/login"
}

func players(url string) (*Player, *Player) {
	return &Player{Account: "demo-1", Password: "pw", Name: "One", LoginURL: url},
		&Player{Account: "demo-2", Password: "pw", Name: "Two", LoginURL: url}
}

func TestRoundTrip(t *testing.T) {
	l1, l2 := common.NewNodeID(), common.NewNodeID()
	for _, noise := range []bool{false, true} {
		g := newFakeGame(t, fakeConfig{noise: noise})
		a, b := players(fakeLogin(t, 200, g.addr(), map[string]common.NodeID{"demo-1": l1, "demo-2": l2}))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		chat, err := RoundTrip(ctx, a, b, "hi there")
		if err != nil {
			t.Fatalf("noise %t: %v", noise, err)
		}
		if chat.Line.From != "demo-1" || chat.Line.Text != "hi there" || chat.Latency <= 0 {
			t.Errorf("noise %t: chat %+v", noise, chat)
		}
		if a.Gateway() != g.addr() || a.Lobby() != l1 || b.Lobby() != l2 {
			t.Errorf("noise %t: gateway %q, lobbies %v %v", noise, a.Gateway(), a.Lobby(), b.Lobby())
		}

		for _, p := range []*Player{a, b} {
			if err := p.Queue(ctx, "duel"); err != nil {
				t.Fatalf("noise %t: queue: %v", noise, err)
			}
		}
		for p, opp := range map[*Player]string{a: "demo-2", b: "demo-1"} {
			m, err := p.Matched(ctx)
			if err != nil || m.Opponent.Account != opp || m.Mode != "duel" || m.Account != p.Account {
				t.Errorf("noise %t: %s matched %+v, %v", noise, p.Account, m, err)
			}
		}
		if err := a.Queue(ctx, ""); err == nil || !strings.Contains(err.Error(), "bad mode") {
			t.Errorf("noise %t: queue with no mode: %v", noise, err)
		}
		a.Close()
		a.Close()
		b.Close()
		cancel()
	}
}

func TestRoundTripFailures(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		cfg     fakeConfig
		wantErr string
	}{
		{"login refused", 503, fakeConfig{}, "demo-1: login: 503 Service Unavailable: no game server available"},
		{"gateway refuses the token", 200, fakeConfig{loginCode: wire.CodeUnavailable}, "gateway login"},
		{"lobby refuses", 200, fakeConfig{refuseEnter: true}, "the lobby refused to let in: lobby full"},
		{"no lobby linked", 200, fakeConfig{noNode: true}, "could not deliver cmd 4001: no node available"},
		{"kicked", 200, fakeConfig{kick: true}, "kicked: kicked (go away)"},
		{"chat lost", 200, fakeConfig{silentChat: true}, "demo-2: waiting for cmd 4011"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGame(t, tt.cfg)
			a, b := players(fakeLogin(t, tt.status, g.addr(), nil))
			defer a.Close()
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := RoundTrip(ctx, a, b, "hi")
			if !errors.Is(err, ErrPlayer) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want ErrPlayer mentioning %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Error("the error holds the token")
			}
		})
	}
}

// TestPlayerHonoursContext: a gateway that never answers does not hold the
// player past its context.
func TestPlayerHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan struct{})
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			<-hold
		}
	}()
	defer func() { close(hold); <-accepted }()
	a, _ := players(fakeLogin(t, 200, ln.Addr().String(), nil))
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := a.Connect(ctx); !errors.Is(err, ErrPlayer) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Connect took %v after its context ended", d)
	}
	if err := a.Send(context.Background(), game.CmdWorld, game.WorldChat{}); err == nil {
		t.Error("Send after a failed Connect succeeded")
	}
}

func TestNotConnected(t *testing.T) {
	p := &Player{Account: "demo-1"}
	if _, err := Await[game.Ack](context.Background(), p, game.CmdWorld, nil); !errors.Is(err, ErrPlayer) {
		t.Errorf("Await = %v", err)
	}
	if err := p.Send(context.Background(), game.CmdWorld, game.WorldChat{}); !errors.Is(err, ErrPlayer) {
		t.Errorf("Send = %v", err)
	}
	if p.Gateway() != "" || !p.Lobby().IsZero() {
		t.Error("a player that never connected has a gateway or a lobby")
	}
	p.Close()
}
