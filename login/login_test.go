package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
)

// noRedis satisfies redis.UniversalClient but panics on any call, proving a
// code path never reaches Redis.
type noRedis struct{ redis.UniversalClient }

const (
	typeLobby common.NodeType = common.FirstGameType + iota
	typeBattle
	typeChat
)

func okChecker() Checker {
	return CheckerFunc(func(context.Context, string, string) error { return nil })
}

func TestValidateAccount(t *testing.T) {
	tests := []struct {
		name    string
		account string
		ok      bool
	}{
		{"simple", "alice", true},
		{"digits and punctuation", "player_01.eu-west:7", true},
		{"space inside", "big bob", true},
		{"unicode letters", "玩家一号", true},
		{"max length", strings.Repeat("a", MaxAccountLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxAccountLen+1), false},
		{"too long in bytes", strings.Repeat("玩", 22), false}, // 66 bytes
		{"open brace", "a{b", false},
		{"close brace", "a}b", false},
		{"hash tag", "{x}", false},
		{"newline", "a\nb", false},
		{"tab", "a\tb", false},
		{"nul", "a\x00b", false},
		{"del", "a\x7fb", false},
		{"invalid utf8", "a\xffb", false},
		{"zero width space", "a\u200bb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAccount(tt.account)
			if tt.ok && err != nil {
				t.Fatalf("ValidateAccount(%q) = %v, want nil", tt.account, err)
			}
			if !tt.ok && !errors.Is(err, ErrBadAccount) {
				t.Fatalf("ValidateAccount(%q) = %v, want ErrBadAccount", tt.account, err)
			}
		})
	}
}

func TestValidateCluster(t *testing.T) {
	tests := []struct {
		cluster string
		ok      bool
	}{
		{"", true},
		{"xserver", true},
		{"prod-eu:1", true},
		{"a{b}", false},
		{"a}", false},
		{"a b", false},
		{"a\n", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		if err := ValidateCluster(tt.cluster); (err == nil) != tt.ok {
			t.Errorf("ValidateCluster(%q) = %v, want ok=%v", tt.cluster, err, tt.ok)
		}
	}
}

func TestKeysFor(t *testing.T) {
	tests := []struct {
		cluster, account string
		want             Keys
	}{
		{"prod", "alice", Keys{Token: "xserver:prod:{alice}:token", Bind: "xserver:prod:{alice}:bind", Sess: "xserver:prod:{alice}:sess"}},
		{"", "bob", Keys{Token: "xserver:xserver:{bob}:token", Bind: "xserver:xserver:{bob}:bind", Sess: "xserver:xserver:{bob}:sess"}},
	}
	for _, tt := range tests {
		if got := KeysFor(tt.cluster, tt.account); got != tt.want {
			t.Errorf("KeysFor(%q, %q) = %+v, want %+v", tt.cluster, tt.account, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Redis = noRedis{}
		c.Members = newSource()
		c.Checker = okChecker()
		c.StatefulTypes = []common.NodeType{typeLobby, typeBattle}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
		check  func(*testing.T, Config)
	}{
		{name: "default", mutate: func(*Config) {}, ok: true, check: func(t *testing.T, c Config) {
			if c.Cluster != DefaultCluster || c.TokenTTL != DefaultTokenTTL || c.Affinity != DefaultAffinity || c.Now == nil {
				t.Errorf("defaults not kept: %+v", c)
			}
		}},
		{name: "zero values filled", mutate: func(c *Config) {
			c.Cluster, c.TokenTTL, c.Affinity, c.Now = "", 0, 0, nil
		}, ok: true, check: func(t *testing.T, c Config) {
			if c.Cluster != DefaultCluster || c.TokenTTL != DefaultTokenTTL || c.Affinity != DefaultAffinity || c.Now == nil {
				t.Errorf("defaults not filled: %+v", c)
			}
		}},
		{name: "no stateful types", mutate: func(c *Config) { c.StatefulTypes = nil }, ok: true},
		{name: "no redis", mutate: func(c *Config) { c.Redis = nil }},
		{name: "no members", mutate: func(c *Config) { c.Members = nil }},
		{name: "no checker", mutate: func(c *Config) { c.Checker = nil }},
		{name: "nil checker func", mutate: func(c *Config) { c.Checker = CheckerFunc(nil) }},
		{name: "bad cluster", mutate: func(c *Config) { c.Cluster = "{x}" }},
		{name: "negative ttl", mutate: func(c *Config) { c.TokenTTL = -time.Second }},
		{name: "sub-ms ttl", mutate: func(c *Config) { c.TokenTTL = time.Microsecond }},
		{name: "negative affinity", mutate: func(c *Config) { c.Affinity = -1 }},
		{name: "reserved stateful type", mutate: func(c *Config) { c.StatefulTypes = []common.NodeType{common.Gateway} }},
		{name: "duplicate stateful type", mutate: func(c *Config) { c.StatefulTypes = []common.NodeType{typeLobby, typeLobby} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			s, err := New(c)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "login: config: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if tt.check != nil {
				tt.check(t, s.Config())
			}
		})
	}
}

func TestConfigCopiesStatefulTypes(t *testing.T) {
	c := DefaultConfig()
	c.Redis, c.Members, c.Checker = noRedis{}, newSource(), okChecker()
	c.StatefulTypes = []common.NodeType{typeLobby}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	c.StatefulTypes[0] = typeChat
	if got := s.Config().StatefulTypes; got[0] != typeLobby {
		t.Fatalf("caller's slice leaked into the service: %v", got)
	}
}

// seqIntn returns scripted answers, recording the n it was asked for.
type seqIntn struct {
	answers []int
	asked   []int
}

func (s *seqIntn) intn(n int) int {
	s.asked = append(s.asked, n)
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a
}

func TestPickLeast(t *testing.T) {
	a, b, c, d := instance(1, typeLobby, 5), instance(2, typeLobby, 3), instance(3, typeLobby, 3), instance(4, typeLobby, 9)
	tests := []struct {
		name    string
		ms      []common.Member
		answers []int
		want    common.Member
		asked   []int
	}{
		{name: "empty", want: nil},
		{name: "single", ms: []common.Member{a}, want: a},
		{name: "smallest wins", ms: []common.Member{a, b, d}, want: b},
		{name: "tie keeps first when intn says so", ms: []common.Member{a, b, c, d}, answers: []int{1}, want: b, asked: []int{2}},
		{name: "tie takes later when intn returns 0", ms: []common.Member{a, b, c, d}, answers: []int{0}, want: c, asked: []int{2}},
		{name: "lower load resets ties", ms: []common.Member{a, instance(5, typeLobby, 5), b}, answers: []int{1}, want: b, asked: []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &seqIntn{answers: tt.answers}
			got := pickLeast(tt.ms, r.intn)
			if got != tt.want {
				t.Fatalf("pickLeast = %v, want %v", got, tt.want)
			}
			if len(r.asked) != len(tt.asked) {
				t.Fatalf("intn asked %v, want %v", r.asked, tt.asked)
			}
			for i := range r.asked {
				if r.asked[i] != tt.asked[i] {
					t.Fatalf("intn asked %v, want %v", r.asked, tt.asked)
				}
			}
		})
	}
}

// A full or draining gateway is never handed out, however few players it
// has; with none accepting, there is no gateway.
func TestPickGatewaySkipsFullAndDraining(t *testing.T) {
	full, draining, busy := gateway(1, "10.0.0.1", 7400, 0, 0), gateway(2, "10.0.0.2", 7400, 0, 1), gateway(3, "10.0.0.3", 7400, 0, 900)
	full.state, draining.state = GatewayFull, GatewayDraining
	s := &Service{cfg: Config{Members: newSource(full, draining, busy)}}
	for range 20 {
		gw, err := s.pickGateway()
		if err != nil || gw.GetID() != busy.id {
			t.Fatalf("pickGateway = %v, %v; want the only accepting gateway %v", gw, err, busy.id)
		}
	}
	s = &Service{cfg: Config{Members: newSource(full, draining)}}
	if gw, err := s.pickGateway(); !errors.Is(err, common.ErrNoGateway) {
		t.Fatalf("pickGateway with none accepting = %v, %v; want ErrNoGateway", gw, err)
	}
}

func TestPickLeastTiesUniform(t *testing.T) {
	ms := []common.Member{instance(1, typeLobby, 2), instance(2, typeLobby, 2), instance(3, typeLobby, 2), instance(4, typeLobby, 7)}
	rnd := rand.New(rand.NewPCG(1, 2))
	counts := map[common.NodeID]int{}
	const n = 30000
	for i := 0; i < n; i++ {
		counts[pickLeast(ms, rnd.IntN).GetID()]++
	}
	if counts[idN(4)] != 0 {
		t.Fatalf("the loaded member was picked %d times", counts[idN(4)])
	}
	for _, id := range []common.NodeID{idN(1), idN(2), idN(3)} {
		if c := counts[id]; c < n/3-n/30 || c > n/3+n/30 {
			t.Errorf("member %v picked %d of %d times, want about a third", id, c, n)
		}
	}
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, err := newToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
			t.Fatalf("token %q is not 43 chars of unpadded base64url", tok)
		}
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) != TokenBytes {
			t.Fatalf("token decodes to %d bytes, %v", len(b), err)
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
	}
}

func TestParseBindings(t *testing.T) {
	id := idN(7)
	tests := []struct {
		name string
		res  []string
		n    int
		want map[common.NodeType]common.NodeID
	}{
		{name: "none", res: []string{}, n: 0, want: map[common.NodeType]common.NodeID{}},
		{name: "one", res: []string{"4", id.String()}, n: 1, want: map[common.NodeType]common.NodeID{4: id}},
		{name: "short", res: []string{"4"}, n: 1},
		{name: "bad type", res: []string{"x", id.String()}, n: 1},
		{name: "bad id", res: []string{"4", "nope"}, n: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBindings(tt.res, tt.n)
			if tt.want == nil {
				if !errors.Is(err, common.ErrBadInput) {
					t.Fatalf("err = %v, want ErrBadInput", err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// TestLoginRejectsBeforeRedis covers every error Login decides without Redis:
// the noRedis client panics if touched.
func TestLoginRejectsBeforeRedis(t *testing.T) {
	errDB := errors.New("wrong password for this account")
	gw := gateway(1, "203.0.113.1", 7000, 0, 0)
	lobby := instance(10, typeLobby, 0)
	tests := []struct {
		name    string
		account string
		checker Checker
		members []fakeMember
		want    []error // every one must match errors.Is
		notWant []error
	}{
		{name: "bad account", account: "a{b}", members: []fakeMember{gw, lobby}, want: []error{ErrBadAccount}},
		{name: "empty account", account: "", members: []fakeMember{gw, lobby}, want: []error{ErrBadAccount}},
		{name: "checker rejects", account: "alice", members: []fakeMember{gw, lobby},
			checker: CheckerFunc(func(context.Context, string, string) error { return errDB }),
			want:    []error{ErrBadCredentials, errDB}},
		{name: "checker returns ErrBadCredentials", account: "alice", members: []fakeMember{gw, lobby},
			checker: CheckerFunc(func(context.Context, string, string) error { return ErrBadCredentials }),
			want:    []error{ErrBadCredentials}},
		{name: "checker context error is not bad credentials", account: "alice", members: []fakeMember{gw, lobby},
			checker: CheckerFunc(func(context.Context, string, string) error { return context.DeadlineExceeded }),
			want:    []error{context.DeadlineExceeded}, notWant: []error{ErrBadCredentials}},
		{name: "no gateway", account: "alice", members: []fakeMember{lobby}, want: []error{common.ErrNoGateway}},
		{name: "gateway without outer ip", account: "alice", members: []fakeMember{gateway(1, "", 7000, 0, 0), lobby},
			want: []error{common.ErrNoGateway}},
		{name: "gateway without tcp port", account: "alice", members: []fakeMember{gateway(1, "203.0.113.1", 0, 7001, 0), lobby},
			want: []error{common.ErrNoGateway}},
		{name: "no instance", account: "alice", members: []fakeMember{gw}, want: []error{ErrNoInstance, common.ErrNoNode}},
		{name: "wrong-typed member is not an instance", account: "alice", members: []fakeMember{gw, instance(10, typeChat, 0)},
			want: []error{ErrNoInstance, common.ErrNoNode}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Redis = noRedis{}
			c.Members = newSource(tt.members...)
			c.Checker = tt.checker
			if c.Checker == nil {
				c.Checker = okChecker()
			}
			c.StatefulTypes = []common.NodeType{typeLobby}
			s, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := s.Login(context.Background(), tt.account, "secret-credential")
			if tk != nil || err == nil {
				t.Fatalf("Login = %+v, %v; want an error", tk, err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("err %q does not wrap %q", err, w)
				}
			}
			for _, w := range tt.notWant {
				if errors.Is(err, w) {
					t.Errorf("err %q wraps %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-credential") {
				t.Errorf("err %q contains the credential", err)
			}
			if errors.Is(err, ErrNoInstance) && !strings.Contains(err.Error(), typeLobby.String()) {
				t.Errorf("err %q does not name the type", err)
			}
		})
	}
}

func TestGatewayHelpersRejectBadNames(t *testing.T) {
	ctx := context.Background()
	rdb := noRedis{}
	if err := VerifyToken(ctx, rdb, "c", "a{b}", "tok"); !errors.Is(err, ErrBadToken) || !errors.Is(err, ErrBadAccount) {
		t.Errorf("VerifyToken(bad account) = %v", err)
	}
	if err := VerifyToken(ctx, rdb, "c", "alice", ""); !errors.Is(err, ErrBadToken) {
		t.Errorf("VerifyToken(empty token) = %v", err)
	}
	if err := VerifyToken(ctx, rdb, "{c}", "alice", "tok"); err == nil || errors.Is(err, ErrBadToken) {
		t.Errorf("VerifyToken(bad cluster) = %v, want a config error", err)
	}
	if _, err := LoadBindings(ctx, rdb, "c", ""); !errors.Is(err, ErrBadAccount) {
		t.Errorf("LoadBindings(empty) = %v", err)
	}
	if _, err := Rebind(ctx, rdb, "c", "a}", typeLobby, idN(1), idN(2), time.Minute); !errors.Is(err, ErrBadAccount) {
		t.Errorf("Rebind(bad account) = %v", err)
	}
	if _, err := Rebind(ctx, rdb, "c", "alice", typeLobby, idN(1), common.NodeID{}, time.Minute); !errors.Is(err, common.ErrBadInput) {
		t.Errorf("Rebind(zero replacement) = %v", err)
	}
	if _, err := Rebind(ctx, rdb, "c", "alice", typeLobby, idN(1), idN(2), 0); !errors.Is(err, common.ErrBadInput) {
		t.Errorf("Rebind(zero affinity) = %v", err)
	}
	if err := TouchBindings(ctx, rdb, "c", "a\nb", time.Minute); !errors.Is(err, ErrBadAccount) {
		t.Errorf("TouchBindings(bad account) = %v", err)
	}
	if err := TouchBindings(ctx, rdb, "c", "alice", -time.Second); !errors.Is(err, common.ErrBadInput) {
		t.Errorf("TouchBindings(negative affinity) = %v", err)
	}
	if err := RevokeToken(ctx, rdb, "c", ""); !errors.Is(err, ErrBadAccount) {
		t.Errorf("RevokeToken(empty) = %v", err)
	}
}

func TestTicketJSON(t *testing.T) {
	tk := Ticket{
		Account:   "alice",
		Gateway:   "203.0.113.1:7000",
		GatewayID: idN(1),
		Token:     "tok",
		Bindings:  map[common.NodeType]common.NodeID{typeLobby: idN(10)},
		ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	b, err := json.Marshal(tk)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"account":"alice","gateway":"203.0.113.1:7000","gateway_id":"` + idN(1).String() +
		`","token":"tok","bindings":{"4":"` + idN(10).String() + `"},"expires_at":"2030-01-02T03:04:05Z"}`
	if string(b) != want {
		t.Fatalf("json\n got %s\nwant %s", b, want)
	}
}
