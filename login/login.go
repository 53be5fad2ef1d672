package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/discovery"
)

// Errors. Callers test with errors.Is; returned errors wrap them with detail.
var (
	// ErrBadAccount: the account name is empty, too long, not printable or
	// contains '{' or '}'.
	ErrBadAccount = errors.New("login: bad account name")
	// ErrBadCredentials: the Checker rejected the account's credential. The
	// returned error also wraps the Checker's own error.
	ErrBadCredentials = errors.New("login: bad credentials")
	// ErrBadToken: the token a client presented is missing, expired or wrong.
	ErrBadToken = errors.New("login: bad token")
	// ErrNoInstance: a stateful node type has no live instance to bind to.
	// The returned error names the type and also wraps common.ErrNoNode.
	ErrNoInstance = errors.New("login: no live instance")
	// ErrUnavailable: Redis did not answer (down, timeout, context done). It
	// is never reported as ErrBadToken; the Redis error is wrapped too.
	ErrUnavailable = errors.New("login: redis unavailable")
)

// Defaults.
const (
	DefaultTokenTTL = 60 * time.Second
	DefaultAffinity = 5 * time.Minute // go-xserver's window
)

// TokenBytes is the number of random bytes in a token; its text form is
// their unpadded base64url encoding (43 characters).
const TokenBytes = 32

// MemberSource is the live membership Login picks from; *node.Node
// satisfies it. GetNodeList must not block, must be safe for concurrent use
// and returns a slice the caller may keep.
type MemberSource interface {
	GetNodeList(t common.NodeType) []common.Member
}

// Checker decides whether credential proves account. It returns nil to
// accept; any error rejects the login (Login wraps it with
// ErrBadCredentials, except context errors, which are passed on as they
// are). It may block (a database, a platform SDK), must honour ctx and must
// be safe for concurrent use. Its errors must not contain the credential.
type Checker interface {
	CheckAccount(ctx context.Context, account, credential string) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context, account, credential string) error

// CheckAccount calls f.
func (f CheckerFunc) CheckAccount(ctx context.Context, account, credential string) error {
	return f(ctx, account, credential)
}

// Config configures a Service. Start from DefaultConfig.
type Config struct {
	// Redis holds tokens and bindings. Required.
	Redis redis.UniversalClient
	// Cluster names the cluster in Redis keys ("" = DefaultCluster). It must
	// match the gateways' cluster name.
	Cluster string
	// Members reports live gateways and stateful instances. Required.
	Members MemberSource
	// Checker verifies credentials. Required.
	Checker Checker
	// StatefulTypes are the node types an account is bound to; each must be
	// common.FirstGameType or above and appear once. May be empty.
	StatefulTypes []common.NodeType
	// TokenTTL is how long a token is accepted (default 60 s, at least 1 ms).
	TokenTTL time.Duration
	// Affinity is how long bindings outlive the last login or session touch
	// (default 5 min, at least 1 ms). Gateways must use the same value.
	Affinity time.Duration
	// Rollouts are gray releases: a new binding of an account to a type
	// with a rollout goes to the instances of the rollout's version when
	// the account is on its side, to the others otherwise. Bindings that
	// exist are kept. Gateways must use the same rollouts.
	Rollouts discovery.Rollouts
	// Rand breaks ties between equally loaded gateways or instances. nil
	// uses an automatically seeded source; tests pass a seeded one. It is
	// never used for tokens, which always come from crypto/rand.
	Rand *mrand.Rand
	// Now is the clock for Ticket.ExpiresAt (nil = time.Now). Expiry itself
	// is Redis's.
	Now func() time.Time
}

// DefaultConfig returns a Config with every default filled in; the caller
// sets Redis, Members, Checker and StatefulTypes.
func DefaultConfig() Config {
	return Config{
		Cluster:  DefaultCluster,
		TokenTTL: DefaultTokenTTL,
		Affinity: DefaultAffinity,
		Now:      time.Now,
	}
}

// validate fills defaults and rejects bad combinations.
func (c *Config) validate() error {
	if c.Redis == nil {
		return errors.New("login: config: Redis is required")
	}
	if c.Members == nil {
		return errors.New("login: config: Members is required")
	}
	if c.Checker == nil {
		return errors.New("login: config: Checker is required")
	}
	if f, ok := c.Checker.(CheckerFunc); ok && f == nil {
		return errors.New("login: config: Checker is a nil CheckerFunc")
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if err := ValidateCluster(c.Cluster); err != nil {
		return fmt.Errorf("login: config: %w", err)
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.TokenTTL < time.Millisecond {
		return fmt.Errorf("login: config: TokenTTL %v is below 1ms", c.TokenTTL)
	}
	if c.Affinity == 0 {
		c.Affinity = DefaultAffinity
	}
	if c.Affinity < time.Millisecond {
		return fmt.Errorf("login: config: Affinity %v is below 1ms", c.Affinity)
	}
	seen := make(map[common.NodeType]bool, len(c.StatefulTypes))
	for _, t := range c.StatefulTypes {
		if t < common.FirstGameType {
			return fmt.Errorf("login: config: stateful type %v is reserved", t)
		}
		if seen[t] {
			return fmt.Errorf("login: config: stateful type %v listed twice", t)
		}
		seen[t] = true
	}
	c.StatefulTypes = append([]common.NodeType(nil), c.StatefulTypes...)
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Ticket is what a successful login returns to the client: where to
// connect and what to present. It marshals to JSON as documented by its
// tags (node IDs as UUID strings, binding keys as decimal node types).
type Ticket struct {
	Account   string                            `json:"account"`
	Gateway   string                            `json:"gateway"`             // host:port, client TCP
	WebSocket string                            `json:"websocket,omitempty"` // host:port, "" when the gateway has none
	GatewayID common.NodeID                     `json:"gateway_id"`
	Token     string                            `json:"token"`
	Bindings  map[common.NodeType]common.NodeID `json:"bindings"`
	ExpiresAt time.Time                         `json:"expires_at"` // by the login service's clock
}

// Service performs logins. Its configuration is immutable after New; the
// only mutable state is the tie-break source, guarded by mu. All methods are
// safe for concurrent use.
type Service struct {
	cfg Config

	mu  sync.Mutex // guards rnd
	rnd *mrand.Rand
}

// New validates cfg, fills its defaults and returns a Service. It does not
// contact Redis.
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, rnd: cfg.Rand}, nil
}

// Login admits account: it validates the name, asks the Checker, picks the
// least-loaded gateway (ties at random), binds the account to one live
// instance of every stateful type and stores a fresh token, then returns
// the Ticket. The new token replaces any earlier one of the account.
//
// Binding is one Lua script: an existing binding is kept when it names a
// live instance, otherwise the least-loaded live instance of that type is
// bound; the affinity window restarts. Concurrent logins of one account, on
// any number of login services, therefore all see the same bindings.
//
// Errors wrap ErrBadAccount, ErrBadCredentials (and the Checker's error),
// common.ErrNoGateway, ErrNoInstance (and common.ErrNoNode) or
// ErrUnavailable; a context error from the Checker is returned as is,
// wrapped. Nothing is written to Redis unless Login succeeds. It blocks on
// the Checker and one Redis round trip.
func (s *Service) Login(ctx context.Context, account, credential string) (*Ticket, error) {
	if err := ValidateAccount(account); err != nil {
		return nil, err
	}
	if err := s.cfg.Checker.CheckAccount(ctx, account, credential); err != nil {
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("login: check account: %w", err)
		case errors.Is(err, ErrBadCredentials):
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}

	gw, err := s.pickGateway()
	if err != nil {
		return nil, err
	}
	args, err := s.bindArgs(account)
	if err != nil {
		return nil, err
	}
	if err := s.checkRestored(ctx, s.cfg.Now()); err != nil {
		return nil, err
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	args[1] = token

	k := KeysFor(s.cfg.Cluster, account)
	res, err := bindScript.Run(ctx, s.cfg.Redis, []string{k.Bind, k.Token}, args...).StringSlice()
	if err != nil {
		return nil, unavailable("bind", err)
	}
	bindings, err := parseBindings(res, len(s.cfg.StatefulTypes))
	if err != nil {
		return nil, err
	}

	a := addrOf(gw)
	t := &Ticket{
		Account:   account,
		Gateway:   a.Gateway,
		WebSocket: a.WebSocket,
		GatewayID: gw.GetID(),
		Token:     token,
		Bindings:  bindings,
		ExpiresAt: s.cfg.Now().Add(s.cfg.TokenTTL),
	}
	return t, nil
}

// GatewayAddr is where a client connects: a gateway's TCP and WebSocket
// addresses.
type GatewayAddr struct {
	Gateway   string        `json:"gateway"`             // host:port, client TCP
	WebSocket string        `json:"websocket,omitempty"` // host:port, "" when the gateway has none
	GatewayID common.NodeID `json:"gateway_id"`
}

func addrOf(gw common.Member) GatewayAddr {
	a := GatewayAddr{
		Gateway:   net.JoinHostPort(gw.GetIP(common.IPOuter), strconv.Itoa(int(gw.GetPort(0)))),
		GatewayID: gw.GetID(),
	}
	if p := gw.GetPort(1); validPort(p) {
		a.WebSocket = net.JoinHostPort(gw.GetIP(common.IPOuter), strconv.Itoa(int(p)))
	}
	return a
}

// Gateway picks a gateway the way Login does, without logging in: a
// client whose resumable session lost its gateway asks for one to resume
// at (the session's resume secret is its credential there). It errors
// with common.ErrNoGateway when none is usable. It does not block.
func (s *Service) Gateway() (GatewayAddr, error) {
	gw, err := s.pickGateway()
	if err != nil {
		return GatewayAddr{}, err
	}
	return addrOf(gw), nil
}

// Revoke deletes account's token (see RevokeToken).
func (s *Service) Revoke(ctx context.Context, account string) error {
	return RevokeToken(ctx, s.cfg.Redis, s.cfg.Cluster, account)
}

// Config returns the validated configuration, defaults filled in (the
// StatefulTypes slice is a copy).
func (s *Service) Config() Config {
	c := s.cfg
	c.StatefulTypes = append([]common.NodeType(nil), c.StatefulTypes...)
	return c
}

// The overload slots a gateway publishes (see the package doc).
const (
	GatewayLoadSessions    = 0 // logged-in sessions: the load logins are spread by
	GatewayLoadConnections = 1 // open client connections, not yet logged-in ones included
	GatewayLoadState       = 2 // GatewayAccepting, GatewayFull or GatewayDraining
)

// Values of a gateway's overload slot GatewayLoadState. A gateway that
// publishes no such slot reads as accepting.
const (
	GatewayAccepting uint32 = 0 // takes new connections
	GatewayFull      uint32 = 1 // at its connection or pre-login limit: would refuse with code 12
	GatewayDraining  uint32 = 2 // shutting down: would refuse with code 11
)

// pickGateway returns the least-loaded gateway that takes new
// connections: full and draining gateways are never handed out.
func (s *Service) pickGateway() (common.Member, error) {
	var usable []common.Member
	for _, m := range s.cfg.Members.GetNodeList(common.Gateway) {
		if live(m, common.Gateway) && m.GetIP(common.IPOuter) != "" && validPort(m.GetPort(0)) &&
			m.GetOverload(GatewayLoadState) == GatewayAccepting {
			usable = append(usable, m)
		}
	}
	gw := pickLeast(usable, s.intn)
	if gw == nil {
		return nil, fmt.Errorf("login: %w", common.ErrNoGateway)
	}
	return gw, nil
}

// bindArgs builds bindScript's ARGV; ARGV[2] (index 1), the token, is left
// for the caller.
func (s *Service) bindArgs(account string) ([]any, error) {
	args := []any{pxMillis(s.cfg.Affinity), "", pxMillis(s.cfg.TokenTTL), len(s.cfg.StatefulTypes)}
	for _, t := range s.cfg.StatefulTypes {
		var ids []any
		var ms []common.Member
		for _, m := range s.cfg.Members.GetNodeList(t) {
			if live(m, t) {
				ms = append(ms, m)
				ids = append(ids, m.GetID().String())
			}
		}
		if r := s.cfg.Rollouts.For(t); r != nil {
			ms = discovery.Narrow(r, r.In(account), ms, common.Member.GetVersion)
		}
		chosen := pickLeast(ms, s.intn)
		if chosen == nil {
			return nil, fmt.Errorf("%w of %v: %w", ErrNoInstance, t, common.ErrNoNode)
		}
		args = append(args, strconv.FormatUint(uint64(t), 10), chosen.GetID().String(), len(ids))
		args = append(args, ids...)
	}
	return args, nil
}

// parseBindings reads bindScript's {type, id, …} reply.
func parseBindings(res []string, n int) (map[common.NodeType]common.NodeID, error) {
	if len(res) != 2*n {
		return nil, fmt.Errorf("login: bind: %w: %d reply elements for %d types", common.ErrBadInput, len(res), n)
	}
	out := make(map[common.NodeType]common.NodeID, n)
	for i := 0; i < len(res); i += 2 {
		t, err := strconv.ParseUint(res[i], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("login: bind: %w: type %q", common.ErrBadInput, res[i])
		}
		id, err := common.ParseNodeID(res[i+1])
		if err != nil {
			return nil, fmt.Errorf("login: bind: %w: %w", common.ErrBadInput, err)
		}
		out[common.NodeType(t)] = id
	}
	return out, nil
}

// intn returns a uniform int in [0, n) from the tie-break source.
func (s *Service) intn(n int) int {
	if s.rnd == nil {
		return mrand.IntN(n) // safe for concurrent use, randomly seeded
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rnd.IntN(n)
}

// live reports whether m is a usable member of type t.
func live(m common.Member, t common.NodeType) bool {
	return m != nil && m.GetType() == t && !m.GetID().IsZero()
}

func validPort(p int32) bool { return p > 0 && p <= 65535 }

// pickLeast returns the member with the smallest GetOverload(0), choosing
// uniformly among ties with intn (reservoir sampling), or nil if ms is
// empty. It is pure apart from intn.
func pickLeast(ms []common.Member, intn func(n int) int) common.Member {
	var best common.Member
	var bestLoad uint32
	ties := 0
	for _, m := range ms {
		l := m.GetOverload(0)
		switch {
		case best == nil || l < bestLoad:
			best, bestLoad, ties = m, l, 1
		case l == bestLoad:
			ties++
			if intn(ties) == 0 {
				best = m
			}
		}
	}
	return best
}

// newToken returns TokenBytes from crypto/rand, base64url without padding.
func newToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("login: token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
