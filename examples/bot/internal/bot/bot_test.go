package bot

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

	"go.uber.org/goleak"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/login"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeLobby is a gateway with a lobby behind it, in one TCP listener: it
// accepts the tokens fakeLogin issues and plays game.go's lobby rules for
// Enter, World and Queue, pairing queued players two by two.
type fakeLobby struct {
	ln net.Listener
	// refuse is an account the lobby refuses; silent one it never answers.
	refuse, silent string
	wg             sync.WaitGroup

	mu      sync.Mutex // guards players, waiting and conns
	players map[string]*fakePlayer
	waiting *fakePlayer
	conns   map[net.Conn]bool
}

// fakePlayer is one session; wmu serialises writes to conn.
type fakePlayer struct {
	account string
	wmu     sync.Mutex
	conn    net.Conn
}

func (p *fakePlayer) push(cmd uint64, body any) {
	b, _ := json.Marshal(body)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, _ = p.conn.Write(wire.AppendData(nil, cmd, b))
}

func newFakeLobby(t *testing.T) *fakeLobby {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLobby{ln: ln, players: map[string]*fakePlayer{}, conns: map[net.Conn]bool{}}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeLobby) serve(c net.Conn) {
	defer c.Close()
	r := wire.NewReader(c, 1<<16, 0)
	k, p, err := r.ReadFrame()
	if err != nil || k != wire.KindClientLogin {
		return
	}
	lg, err := wire.DecodeLogin(p)
	if err != nil || lg.Token != "tok-"+lg.Account {
		_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeBadToken, "bad token"))
		return
	}
	_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeOK, "ok"))
	me := &fakePlayer{account: lg.Account, conn: c}
	defer func() {
		f.mu.Lock()
		delete(f.players, me.account)
		if f.waiting == me {
			f.waiting = nil
		}
		f.mu.Unlock()
	}()
	for {
		k, p, err := r.ReadFrame()
		if err != nil {
			return
		}
		if k == wire.KindClientPing {
			me.wmu.Lock()
			_, _ = c.Write(wire.AppendFrame(nil, wire.KindClientPong, p))
			me.wmu.Unlock()
			continue
		}
		cmd, data, err := wire.DecodeData(p)
		if err != nil || me.account == f.silent {
			continue
		}
		f.handle(me, cmd, data)
	}
}

func (f *fakeLobby) handle(me *fakePlayer, cmd uint64, data []byte) {
	switch cmd {
	case game.CmdEnter:
		if me.account == f.refuse {
			me.push(cmd, game.EnterReply{Error: "name taken"})
			return
		}
		f.mu.Lock()
		f.players[me.account] = me
		online := make([]game.Player, 0, len(f.players))
		for a := range f.players {
			online = append(online, game.Player{Account: a, Name: a})
		}
		f.mu.Unlock()
		me.push(cmd, game.EnterReply{OK: true, Account: me.account, Online: online})
	case game.CmdWorld:
		var w game.WorldChat
		_ = json.Unmarshal(data, &w)
		me.push(cmd, game.Ack{OK: true})
		f.mu.Lock()
		for _, p := range f.players {
			p.push(game.PushWorld, game.ChatLine{From: me.account, Name: me.account, Text: w.Text, TS: 1})
		}
		f.mu.Unlock()
	case game.CmdQueue:
		me.push(cmd, game.Ack{OK: true})
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.waiting == nil {
			f.waiting = me
			return
		}
		other := f.waiting
		f.waiting = nil
		other.push(game.PushMatched, game.Matched{MatchID: "m1", Account: other.account, Opponent: game.Player{Account: me.account}})
		me.push(game.PushMatched, game.Matched{MatchID: "m1", Account: me.account, Opponent: game.Player{Account: other.account}})
	}
}

// fakeLogin issues tickets for gateway to any account with password.
func fakeLogin(t *testing.T, gateway, password string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Account, Password string }
		if r.Method != http.MethodPost || r.URL.Path != "/login" || json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if req.Password != password {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"bad account or password"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(login.Ticket{Account: req.Account, Gateway: gateway, Token: "tok-" + req.Account})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testConfig(loginURL string) Config {
	cfg := DefaultConfig()
	cfg.LoginURL = loginURL
	cfg.Bots = 3
	cfg.Password = "pw"
	cfg.ChatEvery = 20 * time.Millisecond
	cfg.Ramp = 20 * time.Millisecond
	cfg.Timeout = 2 * time.Second
	cfg.NoResume = true // the fake lobby speaks protocol version 1
	return cfg
}

// run plays cfg for d and returns the final summary.
func run(t *testing.T, cfg Config, d time.Duration) Summary {
	t.Helper()
	st := NewStats(cfg.Bots, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := Run(ctx, cfg, st); err != nil {
		t.Fatal(err)
	}
	return st.Snapshot(time.Now())
}

func TestRunPlaysTheGame(t *testing.T) {
	lobby := newFakeLobby(t)
	srv := fakeLogin(t, lobby.ln.Addr().String(), "pw")
	cfg := testConfig(srv.URL)
	cfg.Bots = 4
	cfg.PingEvery = 50 * time.Millisecond
	s := run(t, cfg, 700*time.Millisecond)

	if s.Failed() || s.LoginOK != 4 || s.EnterOK != 4 {
		t.Errorf("logins %d/%d failed, enters %d/%d failed", s.LoginOK, s.LoginFailed, s.EnterOK, s.EnterFailed)
	}
	if s.Matches != 4 {
		t.Errorf("%d matches, want 4 (two pairs)", s.Matches)
	}
	if s.Online != 0 {
		t.Errorf("%d bots still online after Run", s.Online)
	}
	if h := s.Latency[LatencyEnter]; h == nil || h.Count() != 4 {
		t.Errorf("enter latencies %v", h)
	}
	chats := s.Latency[LatencyChat]
	if chats == nil || chats.Count() < 4*10 {
		t.Fatalf("chat acks %v, want at least 10 per bot", chats)
	}
	if s.ChatSeen < 3*chats.Count() {
		t.Errorf("chat lines seen %d for %d lines sent to 4 bots", s.ChatSeen, chats.Count())
	}
	// Enter + Queue + one World per ack, and at most one unanswered World per bot at the end.
	if s.Sent < 4*2+chats.Count() || s.Sent > 4*3+chats.Count() {
		t.Errorf("sent %d with %d chat acks", s.Sent, chats.Count())
	}
	if s.Received < s.ChatSeen+s.Matches+chats.Count() {
		t.Errorf("received %d < seen %d + matches %d + acks %d", s.Received, s.ChatSeen, s.Matches, chats.Count())
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors %v: %v", s.Errors, s.FirstError)
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name             string
		password         string // the bots'; the service wants "pw"
		badGateway       bool   // the ticket names a closed port
		refuse, silent   string
		wantLoginFailed  uint64
		wantEnterFailed  uint64
		wantError, wants string
	}{
		{"bad password", "guess", false, "", "", 3, 0, ErrLogin, "401 Unauthorized: bad account or password"},
		{"gateway down", "pw", true, "", "", 3, 0, ErrDial, "refused"},
		{"lobby refuses", "pw", false, "bot-2", "", 0, 1, ErrEnter, "bot-2: lobby refused: name taken"},
		{"lobby silent", "pw", false, "", "bot-3", 0, 1, ErrEnter, "bot-3: no EnterReply within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lobby := newFakeLobby(t)
			lobby.refuse, lobby.silent = tt.refuse, tt.silent
			addr := lobby.ln.Addr().String()
			if tt.badGateway {
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				addr = ln.Addr().String()
				ln.Close()
			}
			cfg := testConfig(fakeLogin(t, addr, "pw").URL)
			cfg.Password = tt.password
			cfg.Timeout = 300 * time.Millisecond
			s := run(t, cfg, 600*time.Millisecond)
			if !s.Failed() || s.LoginFailed != tt.wantLoginFailed || s.EnterFailed != tt.wantEnterFailed {
				t.Errorf("login failed %d, enter failed %d; want %d, %d", s.LoginFailed, s.EnterFailed, tt.wantLoginFailed, tt.wantEnterFailed)
			}
			if s.Errors[tt.wantError] == 0 || !strings.Contains(s.FirstError[tt.wantError], tt.wants) {
				t.Errorf("errors %v, first %v; want %s mentioning %q", s.Errors, s.FirstError, tt.wantError, tt.wants)
			}
		})
	}
}

func TestRunBadToken(t *testing.T) {
	lobby := newFakeLobby(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Account string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		_ = json.NewEncoder(w).Encode(login.Ticket{Account: req.Account, Gateway: lobby.ln.Addr().String(), Token: "stale"})
	}))
	defer srv.Close()
	s := run(t, testConfig(srv.URL), 500*time.Millisecond)
	if s.LoginFailed != 3 || !strings.Contains(s.FirstError[ErrLoginAck], "bad token") {
		t.Errorf("login failed %d, errors %v", s.LoginFailed, s.FirstError)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no bots", func(c *Config) { c.Bots = 0 }, "0 bots"},
		{"bad url", func(c *Config) { c.LoginURL = "127.0.0.1:8080" }, "login URL"},
		{"ftp url", func(c *Config) { c.LoginURL = "ftp://x/" }, "login URL"},
		{"empty prefix", func(c *Config) { c.Prefix = "" }, "prefix"},
		{"brace prefix", func(c *Config) { c.Prefix = "a{b" }, "prefix"},
		{"long prefix", func(c *Config) { c.Prefix = strings.Repeat("p", 62); c.Bots = 100 }, "over 64"},
		{"no password", func(c *Config) { c.Password = "" }, "password"},
		{"negative", func(c *Config) { c.ChatEvery = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validate = %v, want ErrConfig mentioning %q", err, tt.want)
			}
		})
	}
	c := Config{LoginURL: "http://h:1", Bots: 1, Prefix: "p", Password: "x"}
	if err := c.validate(); err != nil || c.Timeout == 0 || c.Now == nil || c.HTTP == nil || c.Mode == "" {
		t.Errorf("defaults not filled: %v %+v", err, c)
	}
}

func TestLoginEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":         "http://127.0.0.1:8080/login",
		"http://127.0.0.1:8080/":        "http://127.0.0.1:8080/login",
		"http://127.0.0.1:8080/login":   "http://127.0.0.1:8080/login",
		"https://example.com/game/":     "https://example.com/game/login",
		"https://example.com/api/login": "https://example.com/api/login",
	} {
		if got, err := LoginEndpoint(in); err != nil || got != want {
			t.Errorf("LoginEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
