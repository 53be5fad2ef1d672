package login

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/internal/redistest"
)

const testCluster = "test"

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// env is one test's Redis, membership and Service.
type env struct {
	srv *redistest.Server
	rdb redis.UniversalClient
	src *fakeSource
	svc *Service
}

// newEnv starts a redis-server and a Service with stateful types lobby and
// battle; mutate adjusts the config before New.
func newEnv(t *testing.T, mutate func(*Config), members ...fakeMember) *env {
	t.Helper()
	srv := redistest.Start(t)
	e := &env{srv: srv, rdb: srv.Client(t), src: newSource(members...)}
	c := DefaultConfig()
	c.Redis = e.rdb
	c.Cluster = testCluster
	c.Members = e.src
	c.Checker = okChecker()
	c.StatefulTypes = []common.NodeType{typeLobby, typeBattle}
	c.Rand = rand.New(rand.NewPCG(1, 1))
	c.Now = func() time.Time { return testNow }
	if mutate != nil {
		mutate(&c)
	}
	svc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

func (e *env) login(t *testing.T, account string) *Ticket {
	t.Helper()
	tk, err := e.svc.Login(context.Background(), account, "pw")
	if err != nil {
		t.Fatalf("Login(%q): %v", account, err)
	}
	return tk
}

// eventually polls cond until it holds or 5 s pass. It waits for a
// condition, not for a guessed duration.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func sameBindings(a, b map[common.NodeType]common.NodeID) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func wantBindings(t *testing.T, got, want map[common.NodeType]common.NodeID) {
	t.Helper()
	if !sameBindings(got, want) {
		t.Fatalf("bindings = %v, want %v", got, want)
	}
}

func TestLoginHappyPath(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil,
		gateway(1, "203.0.113.1", 7000, 0, 10),
		gateway(2, "203.0.113.2", 7000, 7001, 3),
		gateway(3, "203.0.113.3", 7000, 0, 8),
		instance(10, typeLobby, 5), instance(11, typeLobby, 1),
		instance(20, typeBattle, 0),
	)
	tk := e.login(t, "alice")

	if tk.Account != "alice" || tk.Gateway != "203.0.113.2:7000" || tk.WebSocket != "203.0.113.2:7001" || tk.GatewayID != idN(2) {
		t.Fatalf("ticket = %+v, want the least-loaded gateway 2", tk)
	}
	if !tk.ExpiresAt.Equal(testNow.Add(DefaultTokenTTL)) {
		t.Errorf("ExpiresAt = %v, want now + TokenTTL", tk.ExpiresAt)
	}
	want := map[common.NodeType]common.NodeID{typeLobby: idN(11), typeBattle: idN(20)}
	wantBindings(t, tk.Bindings, want)

	// The documented key layout, in Redis.
	tok, err := e.rdb.Get(ctx, "xserver:test:{alice}:token").Result()
	if err != nil || tok != tk.Token {
		t.Fatalf("token key = %q, %v; want the ticket's token", tok, err)
	}
	h, err := e.rdb.HGetAll(ctx, "xserver:test:{alice}:bind").Result()
	if err != nil || len(h) != 2 || h["4"] != idN(11).String() || h["5"] != idN(20).String() {
		t.Fatalf("bind hash = %v, %v", h, err)
	}
	if ttl := e.rdb.PTTL(ctx, "xserver:test:{alice}:token").Val(); ttl <= 0 || ttl > DefaultTokenTTL {
		t.Errorf("token PTTL = %v, want in (0, %v]", ttl, DefaultTokenTTL)
	}
	if ttl := e.rdb.PTTL(ctx, "xserver:test:{alice}:bind").Val(); ttl <= DefaultAffinity-time.Minute || ttl > DefaultAffinity {
		t.Errorf("bind PTTL = %v, want about %v", ttl, DefaultAffinity)
	}

	// Gateway side.
	if err := VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token); err != nil {
		t.Fatalf("VerifyToken(right token) = %v", err)
	}
	bad := []struct{ name, cluster, account, token string }{
		{"wrong token", testCluster, "alice", tk.Token[:42] + "x"},
		{"truncated token", testCluster, "alice", tk.Token[:10]},
		{"other account", testCluster, "bob", tk.Token},
		{"other cluster", "other", "alice", tk.Token},
	}
	for _, b := range bad {
		if err := VerifyToken(ctx, e.rdb, b.cluster, b.account, b.token); !errors.Is(err, ErrBadToken) {
			t.Errorf("VerifyToken(%s) = %v, want ErrBadToken", b.name, err)
		}
	}
	got, err := LoadBindings(ctx, e.rdb, testCluster, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantBindings(t, got, want)

	// A second login issues a new token; the old one stops working.
	tk2 := e.login(t, "alice")
	if tk2.Token == tk.Token {
		t.Fatal("second login reused the token")
	}
	if err := VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token); !errors.Is(err, ErrBadToken) {
		t.Errorf("old token after re-login: %v, want ErrBadToken", err)
	}
	if err := VerifyToken(ctx, e.rdb, testCluster, "alice", tk2.Token); err != nil {
		t.Errorf("new token: %v", err)
	}

	// Revoke.
	if err := e.svc.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := VerifyToken(ctx, e.rdb, testCluster, "alice", tk2.Token); !errors.Is(err, ErrBadToken) {
		t.Errorf("revoked token: %v, want ErrBadToken", err)
	}
}

func TestLoginGatewayAddressForms(t *testing.T) {
	tests := []struct {
		name          string
		gw            fakeMember
		wantTCP, want string
	}{
		{"ipv4 no websocket", gateway(1, "198.51.100.7", 9000, 0, 0), "198.51.100.7:9000", ""},
		{"ipv6 with websocket", gateway(1, "2001:db8::1", 9000, 9001, 0), "[2001:db8::1]:9000", "[2001:db8::1]:9001"},
		{"hostname", gateway(1, "gw1.example.com", 443, 8443, 0), "gw1.example.com:443", "gw1.example.com:8443"},
	}
	e := newEnv(t, func(c *Config) { c.StatefulTypes = nil })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.src.set(tt.gw)
			tk := e.login(t, "alice")
			if tk.Gateway != tt.wantTCP || tk.WebSocket != tt.want {
				t.Fatalf("addresses = %q, %q; want %q, %q", tk.Gateway, tk.WebSocket, tt.wantTCP, tt.want)
			}
			if len(tk.Bindings) != 0 {
				t.Fatalf("bindings = %v with no stateful types", tk.Bindings)
			}
		})
	}
}

func TestTokenExpires(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *Config) { c.TokenTTL = 20 * time.Millisecond },
		gateway(1, "203.0.113.1", 7000, 0, 0), instance(10, typeLobby, 0), instance(20, typeBattle, 0))
	tk := e.login(t, "alice")
	eventually(t, "the token to expire", func() bool {
		return errors.Is(VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token), ErrBadToken)
	})
	// Bindings outlive the token.
	got, err := LoadBindings(ctx, e.rdb, testCluster, "alice")
	if err != nil || len(got) != 2 {
		t.Fatalf("bindings after token expiry = %v, %v", got, err)
	}
}

func TestReloginKeepsBindingsWithinAffinity(t *testing.T) {
	e := newEnv(t, nil,
		gateway(1, "203.0.113.1", 7000, 0, 0),
		instance(10, typeLobby, 5), instance(11, typeLobby, 1),
		instance(20, typeBattle, 2), instance(21, typeBattle, 0),
	)
	first := e.login(t, "alice")
	wantBindings(t, first.Bindings, map[common.NodeType]common.NodeID{typeLobby: idN(11), typeBattle: idN(21)})

	// Loads flip: the other instances are now less loaded.
	e.src.set(
		gateway(1, "203.0.113.1", 7000, 0, 0),
		instance(10, typeLobby, 0), instance(11, typeLobby, 50),
		instance(20, typeBattle, 0), instance(21, typeBattle, 50),
	)
	second := e.login(t, "alice")
	wantBindings(t, second.Bindings, first.Bindings)

	// Another account gets the now least-loaded instances.
	bob := e.login(t, "bob")
	wantBindings(t, bob.Bindings, map[common.NodeType]common.NodeID{typeLobby: idN(10), typeBattle: idN(20)})
}

func TestBoundInstanceGoneRebinds(t *testing.T) {
	e := newEnv(t, nil,
		gateway(1, "203.0.113.1", 7000, 0, 0),
		instance(10, typeLobby, 0), instance(11, typeLobby, 9),
		instance(20, typeBattle, 0),
	)
	first := e.login(t, "alice")
	wantBindings(t, first.Bindings, map[common.NodeType]common.NodeID{typeLobby: idN(10), typeBattle: idN(20)})

	// Lobby 10 leaves; 12 joins less loaded than 11. Battle 20 stays.
	e.src.set(
		gateway(1, "203.0.113.1", 7000, 0, 0),
		instance(11, typeLobby, 9), instance(12, typeLobby, 4),
		instance(20, typeBattle, 7), instance(21, typeBattle, 0),
	)
	second := e.login(t, "alice")
	wantBindings(t, second.Bindings, map[common.NodeType]common.NodeID{typeLobby: idN(12), typeBattle: idN(20)})
	got, err := LoadBindings(context.Background(), e.rdb, testCluster, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantBindings(t, got, second.Bindings)
}

func TestAffinityExpiredFreshChoice(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *Config) { c.Affinity = 20 * time.Millisecond },
		gateway(1, "203.0.113.1", 7000, 0, 0),
		instance(10, typeLobby, 0), instance(11, typeLobby, 5),
		instance(20, typeBattle, 0),
	)
	first := e.login(t, "alice")
	if first.Bindings[typeLobby] != idN(10) {
		t.Fatalf("first lobby = %v", first.Bindings[typeLobby])
	}
	e.src.set(
		gateway(1, "203.0.113.1", 7000, 0, 0),
		instance(10, typeLobby, 5), instance(11, typeLobby, 0),
		instance(20, typeBattle, 0),
	)
	key := KeysFor(testCluster, "alice").Bind
	eventually(t, "the bindings to expire", func() bool { return e.rdb.Exists(ctx, key).Val() == 0 })
	second := e.login(t, "alice")
	wantBindings(t, second.Bindings, map[common.NodeType]common.NodeID{typeLobby: idN(11), typeBattle: idN(20)})
}

func TestTouchBindings(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *Config) { c.Affinity = time.Minute },
		gateway(1, "203.0.113.1", 7000, 0, 0), instance(10, typeLobby, 0), instance(20, typeBattle, 0))
	e.login(t, "alice")
	key := KeysFor(testCluster, "alice").Bind
	if err := TouchBindings(ctx, e.rdb, testCluster, "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := e.rdb.PTTL(ctx, key).Val(); ttl <= time.Hour-time.Minute {
		t.Fatalf("PTTL after touch = %v, want about 1h", ttl)
	}
	// No bindings: not an error, nothing created.
	if err := TouchBindings(ctx, e.rdb, testCluster, "nobody", time.Hour); err != nil {
		t.Fatalf("TouchBindings(no bindings) = %v", err)
	}
	if n := e.rdb.Exists(ctx, KeysFor(testCluster, "nobody").Bind).Val(); n != 0 {
		t.Fatal("TouchBindings created a key")
	}
}

func TestConcurrentLoginsAgree(t *testing.T) {
	const n = 50
	var members []fakeMember
	members = append(members, gateway(1, "203.0.113.1", 7000, 0, 0), gateway(2, "203.0.113.2", 7000, 0, 0))
	for i := byte(0); i < 8; i++ { // all equally loaded: every login picks at random
		members = append(members, instance(10+i, typeLobby, 0), instance(30+i, typeBattle, 0))
	}
	e := newEnv(t, nil, members...)

	// n login services sharing Redis and membership, each with its own
	// tie-break source, so their own choices differ.
	svcs := make([]*Service, n)
	for i := range svcs {
		c := e.svc.Config()
		c.Rand = rand.New(rand.NewPCG(uint64(i), 99))
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		svcs[i] = s
	}
	// Not vacuous: left alone, the services would choose differently.
	choices := map[any]bool{}
	for _, s := range svcs {
		args, err := s.bindArgs("a")
		if err != nil {
			t.Fatal(err)
		}
		choices[args[5]] = true // the chosen lobby instance
	}
	if len(choices) < 2 {
		t.Fatalf("all services would choose the same lobby instance; the test proves nothing")
	}

	tickets := make([]*Ticket, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tickets[i], errs[i] = svcs[i].Login(context.Background(), "alice", "pw")
		}()
	}
	close(start)
	wg.Wait()

	tokens := map[string]bool{}
	for i := range tickets {
		if errs[i] != nil {
			t.Fatalf("login %d: %v", i, errs[i])
		}
		wantBindings(t, tickets[i].Bindings, tickets[0].Bindings)
		tokens[tickets[i].Token] = true
	}
	if len(tokens) != n {
		t.Errorf("%d distinct tokens from %d logins", len(tokens), n)
	}
	stored, err := LoadBindings(context.Background(), e.rdb, testCluster, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantBindings(t, stored, tickets[0].Bindings)
	// Exactly one token is in force: the last writer's.
	tok := e.rdb.Get(context.Background(), KeysFor(testCluster, "alice").Token).Val()
	if !tokens[tok] {
		t.Errorf("stored token is none of the issued ones")
	}
}

func TestRebindCAS(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	key := KeysFor(testCluster, "alice").Bind
	a, b, c := idN(1), idN(2), idN(3)
	tests := []struct {
		name        string
		stored      string // "" = field absent
		old, repl   common.NodeID
		want        common.NodeID
		wantStoreAs common.NodeID
	}{
		{name: "absent field is set", old: a, repl: b, want: b},
		{name: "absent field, no old", repl: b, want: b},
		{name: "old matches: replaced", stored: a.String(), old: a, repl: b, want: b},
		{name: "stale old: current kept", stored: c.String(), old: a, repl: b, want: c},
		{name: "zero old, field present: current kept", stored: c.String(), repl: b, want: c},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.rdb.Del(ctx, key)
			if tt.stored != "" {
				e.rdb.HSet(ctx, key, "4", tt.stored)
			}
			e.rdb.HSet(ctx, key, "5", c.String()) // another type, untouched
			got, err := Rebind(ctx, e.rdb, testCluster, "alice", typeLobby, tt.old, tt.repl, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Rebind = %v, want %v", got, tt.want)
			}
			m, err := LoadBindings(ctx, e.rdb, testCluster, "alice")
			if err != nil {
				t.Fatal(err)
			}
			wantBindings(t, m, map[common.NodeType]common.NodeID{typeLobby: tt.want, typeBattle: c})
			if ttl := e.rdb.PTTL(ctx, key).Val(); ttl <= time.Hour-time.Minute {
				t.Errorf("PTTL = %v, want the affinity refreshed to about 1h", ttl)
			}
		})
	}

	t.Run("racing gateways agree", func(t *testing.T) {
		e.rdb.Del(ctx, key)
		e.rdb.HSet(ctx, key, "4", a.String())
		const n = 20
		got := make([]common.NodeID, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = Rebind(ctx, e.rdb, testCluster, "alice", typeLobby, a, idN(byte(100+i)), time.Hour)
			}()
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if got[i] != got[0] {
				t.Fatalf("gateway %d got %v, gateway 0 got %v", i, got[i], got[0])
			}
		}
		if got[0] == a {
			t.Fatal("the dead instance stayed bound")
		}
	})
}

func TestLoadBindings(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	key := KeysFor(testCluster, "alice").Bind

	m, err := LoadBindings(ctx, e.rdb, testCluster, "alice")
	if err != nil || m == nil || len(m) != 0 {
		t.Fatalf("LoadBindings(none) = %v, %v; want an empty map", m, err)
	}
	for _, bad := range []struct{ field, value string }{{"4", "not-a-uuid"}, {"lobby", idN(1).String()}} {
		e.rdb.Del(ctx, key)
		e.rdb.HSet(ctx, key, bad.field, bad.value)
		if _, err := LoadBindings(ctx, e.rdb, testCluster, "alice"); !errors.Is(err, common.ErrBadInput) {
			t.Errorf("LoadBindings(%v) = %v, want ErrBadInput", bad, err)
		}
	}
}

func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil, gateway(1, "203.0.113.1", 7000, 0, 0), instance(10, typeLobby, 0), instance(20, typeBattle, 0))
	e.useFastFailClient(t)
	tk := e.login(t, "alice")
	e.srv.Stop()

	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadToken) {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable and not ErrBadToken", what, err)
		}
	}
	_, err := e.svc.Login(ctx, "alice", "pw")
	check("Login", err)
	check("VerifyToken", VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token))
	_, err = LoadBindings(ctx, e.rdb, testCluster, "alice")
	check("LoadBindings", err)
	_, err = Rebind(ctx, e.rdb, testCluster, "alice", typeLobby, idN(10), idN(11), time.Minute)
	check("Rebind", err)
	check("TouchBindings", TouchBindings(ctx, e.rdb, testCluster, "alice", time.Minute))
	check("RevokeToken", RevokeToken(ctx, e.rdb, testCluster, "alice"))

	// Back up, empty and with no cached scripts: logins work again once
	// the client's pool has noticed (go-redis re-dials in the background).
	e.srv.Restart()
	eventually(t, "a login after the restart", func() bool {
		tk, err = e.svc.Login(ctx, "alice", "pw")
		return err == nil
	})
	if err := VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token); err != nil {
		t.Fatalf("VerifyToken after restart: %v", err)
	}
	if got, err := Rebind(ctx, e.rdb, testCluster, "alice", typeLobby, idN(10), idN(11), time.Minute); err != nil || got != idN(11) {
		t.Fatalf("Rebind after restart = %v, %v", got, err)
	}
}

// useFastFailClient replaces e's client with one that reports failures at
// once (no command retries, one dial attempt) and honours ctx deadlines.
func (e *env) useFastFailClient(t *testing.T) {
	t.Helper()
	e.rdb = redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 []string{e.srv.Addr()},
		MaxRetries:            -1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = e.rdb.Close() })
	c := e.svc.Config()
	c.Redis = e.rdb
	svc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
}

// TestRedisHung: a Redis that accepts but never answers costs the caller
// its ctx deadline (with ContextTimeoutEnabled), reported as ErrUnavailable,
// never as ErrBadToken.
func TestRedisHung(t *testing.T) {
	e := newEnv(t, nil, gateway(1, "203.0.113.1", 7000, 0, 0), instance(10, typeLobby, 0), instance(20, typeBattle, 0))
	e.useFastFailClient(t)
	tk := e.login(t, "alice")
	e.srv.Pause()
	defer e.srv.Resume()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadToken) {
		t.Fatalf("VerifyToken with Redis hung = %v, want ErrUnavailable and not ErrBadToken", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := e.svc.Login(ctx2, "alice", "pw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Login with Redis hung = %v, want ErrUnavailable", err)
	}
}

func TestLoginContextCanceled(t *testing.T) {
	e := newEnv(t, nil, gateway(1, "203.0.113.1", 7000, 0, 0), instance(10, typeLobby, 0), instance(20, typeBattle, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.svc.Login(ctx, "alice", "pw")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Login(canceled) = %v", err)
	}
	if n := e.rdb.Exists(context.Background(), KeysFor(testCluster, "alice").Token).Val(); n != 0 {
		t.Fatal("a canceled login stored a token")
	}
}

// TestErrorsDoNotLeakSecrets: no error from a failing path carries the
// credential or a token.
func TestErrorsDoNotLeakSecrets(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *Config) {
		c.Checker = CheckerFunc(func(_ context.Context, _, cred string) error {
			if cred != "right" {
				return errors.New("password mismatch")
			}
			return nil
		})
	}, gateway(1, "203.0.113.1", 7000, 0, 0), instance(10, typeLobby, 0), instance(20, typeBattle, 0))
	_, err := e.svc.Login(ctx, "alice", "hunter2")
	if !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Login(wrong) = %v", err)
	}
	tk, err2 := e.svc.Login(ctx, "alice", "right")
	if err2 != nil {
		t.Fatal(err2)
	}
	err3 := VerifyToken(ctx, e.rdb, testCluster, "alice", tk.Token+"x")
	for _, err := range []error{err, err3} {
		s := fmt.Sprint(err)
		if strings.Contains(s, "hunter2") || strings.Contains(s, tk.Token) {
			t.Errorf("error %q leaks a secret", s)
		}
	}
}
