package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lograte"
	"github.com/xserver/xserver/internal/testhook"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/node"
)

// Gateway relays between clients and nodes. See the package doc.
type Gateway struct {
	cfg  Config
	log  logrus.FieldLogger
	reg  *prometheus.Registry
	met  *metrics
	node *node.Node
	// nodeHook lets this package's tests crash the node (export_test.go).
	nodeHook testhook.Node

	clientLn net.Listener
	wsLn     net.Listener
	wsSrv    *http.Server
	linkLn   net.Listener
	admin    *admin.Server
	addrs    Addrs
	kickCh   string // Redis channel announcing logins (cross-gateway kicks)
	probeCh  string // Redis channel only this gateway listens on (subscription probe)
	sub      *redis.PubSub
	sessions *login.Sessions
	store    *storeQueue
	bring    *bcastRing
	groups   *groupIndex
	fanMu    sync.Mutex // serializes broadcast fan-out, so every session sees broadcasts in order; guards fanBuf
	fanBuf   []*session // a group's members, reused by each group broadcast
	// incarnation numbers this process's broadcast stream (stream 0).
	incarnation uint32
	now         func() time.Time
	t0          time.Time        // the clock's origin (see clock)
	rateLimits  []rateLimit      // cfg.RateLimits with their counters
	rateLog     *lograte.Limiter // sessions over their rate limits
	grayTurn    atomic.Uint64    // round-robin position among a gray release's instances
	badLog      *lograte.Limiter // bad input and refusals
	slowLog     *lograte.Limiter // slow clients
	redisLog    *lograte.Limiter // Redis failures
	refuser     *intranet.Refuser
	firstMarker string // the Redis marker seen at start (refreshLoop's)

	mu      sync.RWMutex // guards sessMap, links, byType, conns, closed
	sessMap map[string]*session
	links   map[common.NodeID]*link
	byType  map[common.NodeType]*discovery.Selector[*link]
	conns   map[net.Conn]struct{} // every open client connection, logged in or not
	closed  bool

	dirtyMu   sync.Mutex // guards dirtyList, away
	dirtyList []*session
	away      map[*session]struct{} // detached sessions waiting for a resume

	pendMu  sync.Mutex // guards pending, linkDown
	pending map[common.NodeID]*pendingQueue
	// linkDown: nodes whose link dropped (not a leave), and when: a link
	// of theirs again means broadcasts may have been missed meanwhile.
	linkDown map[common.NodeID]time.Time

	// acctLocks order the logins and resumes of one account here (see
	// accountLock).
	acctLocks [accountLocks]sync.Mutex
	acctSeed  maphash.Seed

	started   atomic.Bool
	nclients  atomic.Int64
	sampler   atomic.Uint32
	probeEcho atomic.Int64 // unix ns of the last own probe received on sub
	// flushOwed: session records were written back, or a login could not
	// be announced, and the nodes have not been told to forget the
	// players they found offline yet.
	flushOwed atomic.Bool
	// beforeRestore runs before live sessions are restored after Redis
	// lost its data (set by this package's tests only).
	beforeRestore atomic.Pointer[func()]
	// afterTakeover runs in a resume once Redis answered the takeover
	// (set by this package's tests only).
	afterTakeover atomic.Pointer[func(attempt uint32)]
	// ignoreResumeStates drops the nodes' answers to resumes, as nodes
	// that do not answer would (set by this package's tests only).
	ignoreResumeStates atomic.Bool
	stop               chan struct{}
	wg                 sync.WaitGroup // accept loops and background loops
	connWG             sync.WaitGroup // client connections
	poll               *poller        // parks idle plain-TCP client connections; nil: each parks a goroutine
	linkWG             sync.WaitGroup // node links
	closeOne           sync.Once
	loadMu             sync.Mutex // orders overload publications (loadLoop, markDraining)
}

// accountLocks is how many locks the accounts' logins and resumes are
// spread over.
const accountLocks = 256

// accountLock is the lock that orders the logins and resumes of account
// on this gateway: each decides from the session record in Redis, then
// installs its session here, and two of them interleaved (a client that
// gave up on a connection and resumed again, a login beside a resume)
// would install in another order than Redis decided.
func (g *Gateway) accountLock(account string) *sync.Mutex {
	return &g.acctLocks[maphash.String(g.acctSeed, account)%accountLocks]
}

// Addrs are the bound listener addresses.
type Addrs struct {
	Client    string // TCP
	WebSocket string // host:port, "" when none (path /ws)
	Intranet  string
	Admin     string
}

// New validates cfg and builds a gateway. Nothing runs until Start.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	var inc [4]byte
	if _, err := rand.Read(inc[:]); err != nil {
		return nil, fmt.Errorf("gateway: random: %w", err)
	}
	reg.MustRegister(admin.WatchRedis(cfg.Redis))
	g := &Gateway{
		cfg: cfg, reg: reg, met: newMetrics(reg),
		sessMap:  make(map[string]*session),
		acctSeed: maphash.MakeSeed(),
		links:    make(map[common.NodeID]*link),
		byType:   make(map[common.NodeType]*discovery.Selector[*link]),
		conns:    make(map[net.Conn]struct{}),
		away:     make(map[*session]struct{}),
		pending:  make(map[common.NodeID]*pendingQueue),
		linkDown: make(map[common.NodeID]time.Time),
		stop:     make(chan struct{}),
		kickCh:   login.LoginsChannel(cfg.Cluster),
		sessions: &login.Sessions{Redis: cfg.Redis, Cluster: cfg.Cluster},
		bring:    newBcastRing(cfg.BroadcastHistory),
		groups:   newGroupIndex(),
		now:      time.Now,
		badLog:   lograte.New(10 * time.Second),
		slowLog:  lograte.New(10 * time.Second),
		redisLog: lograte.New(10 * time.Second),
		refuser:  intranet.NewRefuser(cfg.WriteTimeout, 64),
		rateLog:  lograte.New(10 * time.Second),
		t0:       time.Now(),
	}
	for _, r := range cfg.RateLimits {
		g.rateLimits = append(g.rateLimits, rateLimit{RateLimit: r,
			errors: g.met.rateLimited.WithLabelValues(r.Scope(), "error"),
			kicks:  g.met.rateLimited.WithLabelValues(r.Scope(), "kick")})
	}
	g.incarnation = binary.BigEndian.Uint32(inc[:]) | 1
	g.log = cfg.Logger.WithField("component", "gateway")
	g.store = newStoreQueue(g.log, cfg.LoginTimeout)
	return g, nil
}

// Start binds the listeners, joins the cluster and starts serving.
func (g *Gateway) Start(ctx context.Context) error {
	if !g.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	var lc net.ListenConfig
	var err error
	fail := func(e error) error { g.closeListeners(); return e }
	if g.clientLn, err = lc.Listen(ctx, "tcp", g.cfg.Listen); err != nil {
		return fmt.Errorf("gateway: listen %s: %w", g.cfg.Listen, err)
	}
	if g.linkLn, err = lc.Listen(ctx, "tcp", g.cfg.Intranet); err != nil {
		return fail(fmt.Errorf("gateway: intranet listen %s: %w", g.cfg.Intranet, err))
	}
	if g.cfg.WSListen != "" {
		if g.wsLn, err = lc.Listen(ctx, "tcp", g.cfg.WSListen); err != nil {
			return fail(fmt.Errorf("gateway: websocket listen %s: %w", g.cfg.WSListen, err))
		}
		g.addrs.WebSocket = g.wsLn.Addr().String()
	}
	g.addrs.Client, g.addrs.Intranet = g.clientLn.Addr().String(), g.linkLn.Addr().String()
	if g.cfg.ClientTLS != nil {
		g.clientLn = tls.NewListener(g.clientLn, g.cfg.ClientTLS)
		if g.wsLn != nil {
			g.wsLn = tls.NewListener(g.wsLn, g.cfg.ClientTLS)
		}
	}
	if g.cfg.IntranetTLS != nil {
		g.linkLn = tls.NewListener(g.linkLn, g.cfg.IntranetTLS)
	}

	ncfg := node.DefaultConfig()
	ncfg.Redis, ncfg.Cluster, ncfg.Secret = g.cfg.Redis, g.cfg.Cluster, g.cfg.Secret
	ncfg.Type, ncfg.InnerIP, ncfg.OuterIP, ncfg.Version = common.Gateway, g.cfg.InnerIP, g.cfg.OuterIP, g.cfg.Version
	ncfg.Ports = []int32{port(g.addrs.Client), port(g.addrs.WebSocket), port(g.addrs.Intranet)}
	ncfg.Overload = []uint32{0, 0, login.GatewayAccepting}
	ncfg.Logger = g.cfg.Logger
	ncfg.TLS = g.cfg.NodeTLS
	if g.node, err = node.New(ncfg); err != nil {
		return fail(err)
	}
	g.log = g.log.WithField("node", g.node.GetID().String())
	g.probeCh = g.kickCh + ":probe:" + g.node.GetID().String()
	g.registerObservers()

	if g.cfg.Admin != "" {
		g.admin = admin.New(g.reg, g.health, g.log)
		if g.addrs.Admin, err = g.admin.Start(g.cfg.Admin); err != nil {
			return fail(fmt.Errorf("gateway: admin: %w", err))
		}
	}
	g.sub = g.cfg.Redis.Subscribe(ctx, g.kickCh, g.probeCh)

	// Report this gateway restored (it holds no session yet) before it
	// joins: logins wait for every live gateway after Redis lost data.
	g.firstMarker = g.checkMarker("")
	if p, err := newPoller(g.cfg.Idle); err == nil {
		g.poll = p
	} else {
		g.log.WithError(err).Debug("idle client connections park a goroutine each")
	}
	g.wg.Add(8)
	go g.probeLoop()
	go g.acceptClients(g.clientLn)
	go g.acceptLinks()
	go g.kickLoop()
	go g.loadLoop()
	go g.refreshLoop()
	go g.tickLoop()
	go func() { defer g.wg.Done(); g.store.run(g.stop) }()
	if g.wsLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/ws", g.serveWS)
		g.wsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: g.cfg.LoginTimeout}
		g.wg.Add(1)
		go func() { defer g.wg.Done(); _ = g.wsSrv.Serve(g.wsLn) }()
	}
	if err := g.node.Start(testhook.WithNode(ctx, &g.nodeHook)); err != nil {
		_ = g.Close()
		return err
	}
	g.log.WithFields(logrus.Fields{"client": g.addrs.Client, "ws": g.addrs.WebSocket, "intranet": g.addrs.Intranet}).Info("gateway started")
	return nil
}

// setNoDelay disables Nagle on a TCP connection (plain or under TLS).
func setNoDelay(c net.Conn) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

func port(addr string) int32 {
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// Addrs returns the bound addresses.
func (g *Gateway) Addrs() Addrs { return g.addrs }

// Node is the gateway's own cluster membership.
func (g *Gateway) Node() *node.Node { return g.node }

// Registry exposes the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// NumClients is the number of live sessions, detached ones (waiting for
// a resume) included.
func (g *Gateway) NumClients() int { return int(g.nclients.Load()) }

// NumDetached is the number of sessions waiting for a resume.
func (g *Gateway) NumDetached() int {
	g.dirtyMu.Lock()
	defer g.dirtyMu.Unlock()
	return len(g.away)
}

// NumLinks is the number of node links.
func (g *Gateway) NumLinks() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.links)
}

// HasLink reports whether the node is linked.
func (g *Gateway) HasLink(id common.NodeID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.links[id]
	return ok
}

func (g *Gateway) health() error {
	if !g.node.Connected() {
		return errors.New("not registered with an mgrserver")
	}
	return nil
}

// Close drains the gateway: it stops accepting and closes every client
// connection with CodeShutdown. Sessions without resume end (their bound
// nodes get lose-account); resumable sessions are left for a resume on
// another gateway (the nodes wait for it, up to the session's window).
// Then it flushes and closes the node links and leaves the cluster. Safe
// twice.
func (g *Gateway) Close() error {
	g.closeOne.Do(func() {
		if !g.started.Load() {
			return
		}
		g.markDraining()
		close(g.stop)
		g.closeListeners()
		if g.wsSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = g.wsSrv.Shutdown(ctx)
			cancel()
		}
		if g.sub != nil {
			_ = g.sub.Close()
		}
		g.mu.Lock()
		g.closed = true
		var sess []*session
		for _, s := range g.sessMap {
			sess = append(sess, s)
		}
		var raw []net.Conn
		for c := range g.conns {
			raw = append(raw, c)
		}
		g.mu.Unlock()
		for _, s := range sess {
			s.mu.Lock()
			c, keep := s.conn, s.v2 && s.window > 0
			s.mu.Unlock()
			switch {
			case c != nil && keep:
				c.kickWith(wire.CodeShutdown, "gateway shutting down; resume on another gateway", fateKeep)
			case c != nil:
				c.kick(wire.CodeShutdown, "gateway shutting down")
			case !keep:
				s.end("shutdown", true)
			}
		}
		for _, c := range raw { // not logged in yet
			_ = c.SetReadDeadline(time.Now())
		}
		g.connWG.Wait()
		if g.poll != nil {
			g.poll.close()
		}
		g.mu.Lock()
		var links []*link
		for _, l := range g.links {
			links = append(links, l)
		}
		g.mu.Unlock()
		for _, l := range links {
			l.shutdown()
		}
		g.linkWG.Wait()
		g.wg.Wait()
		g.refuser.Wait()
		g.store.drain()
		if g.node != nil {
			_ = g.node.Close()
		}
		if g.admin != nil {
			_ = g.admin.Close()
		}
		g.log.Info("gateway stopped")
	})
	return nil
}

func (g *Gateway) closeListeners() {
	for _, ln := range []net.Listener{g.clientLn, g.wsLn, g.linkLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

func (g *Gateway) stopped() bool {
	select {
	case <-g.stop:
		return true
	default:
		return false
	}
}

// acceptLoop accepts until the listener closes, backing off on temporary
// errors (EMFILE).
func (g *Gateway) acceptLoop(ln net.Listener, serve func(net.Conn)) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || g.stopped() {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.badLog.Warn(g.log.WithError(err), "accept failed; backing off")
			select {
			case <-time.After(backoff):
			case <-g.stop:
				return
			}
			continue
		}
		backoff = 0
		serve(c)
	}
}

func (g *Gateway) acceptClients(ln net.Listener) {
	defer g.wg.Done()
	g.acceptLoop(ln, func(c net.Conn) {
		setNoDelay(c)
		g.serveClient(c)
	})
}

// serveClient starts a client connection's goroutines, or refuses it: at
// MaxClients connections, or at MaxPreLogin connections not logged in yet
// (so idle unauthenticated connections cannot take every slot).
func (g *Gateway) serveClient(c net.Conn) {
	g.mu.Lock()
	if st := g.stateLocked(); st != login.GatewayAccepting {
		g.mu.Unlock()
		code, reason := wire.CodeFull, "gateway_full"
		if st == login.GatewayDraining {
			code = wire.CodeShutdown
		} else if g.preLoginLocked() >= g.cfg.MaxPreLogin {
			reason = "prelogin_full"
		}
		g.met.drops.WithLabelValues(reason).Inc()
		g.badLog.Warn(g.log.WithField("peer", c.RemoteAddr().String()), "refusing client connections: "+refuseWhy[reason])
		// Off this goroutine (the accept loop's): over TLS the write runs
		// the handshake, and a silent peer would stall every accept.
		g.refuser.Refuse(c, wire.AppendCoded(nil, wire.KindClientKick, code, wire.CodeText(code)), func() { noteCloseCode(c, code) })
		return
	}
	g.conns[c] = struct{}{}
	g.connWG.Add(1)
	g.mu.Unlock()
	go newClient(g, c).run()
}

// connEnded forgets a client connection that serveClient took.
func (g *Gateway) connEnded(c net.Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.connWG.Done()
}

// refuseWhy explains each refusal reason in the log.
var refuseWhy = map[string]string{
	"gateway_full":  "at -max-clients connections, or draining",
	"prelogin_full": "at -max-prelogin connections not logged in yet",
}

// preLoginLocked counts the connections not logged in yet: every open one
// but those of attached sessions (live sessions less the detached ones
// waiting for a resume). A session that just ended still holds its
// connection for a moment, and a resumed one leaves the detached set at
// the next expiry sweep, so this errs on the high side. Needs g.mu
// (dirtyMu is taken inside it; it is a leaf lock).
func (g *Gateway) preLoginLocked() int {
	attached := int(g.nclients.Load()) - g.NumDetached()
	return max(0, len(g.conns)-max(0, attached))
}

// stateLocked says whether a new connection would be served. Needs g.mu.
func (g *Gateway) stateLocked() uint32 {
	switch {
	case g.closed:
		return login.GatewayDraining
	case len(g.conns) >= g.cfg.MaxClients || g.preLoginLocked() >= g.cfg.MaxPreLogin:
		return login.GatewayFull
	}
	return login.GatewayAccepting
}

// loadLoop publishes, when they change, the overload slots the login
// service reads (see package login): logged-in sessions, open connections
// and whether new connections are served.
func (g *Gateway) loadLoop() {
	defer g.wg.Done()
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	var last [3]uint32
	first := true
	for {
		select {
		case <-t.C:
		case <-g.stop:
			return
		}
		g.loadMu.Lock()
		g.mu.RLock()
		cur := [3]uint32{uint32(g.nclients.Load()), uint32(len(g.conns)), g.stateLocked()}
		g.mu.RUnlock()
		for i := range cur {
			if first || cur[i] != last[i] {
				g.node.SetOverload(i, cur[i])
			}
		}
		g.loadMu.Unlock()
		last, first = cur, false
	}
}

// loadInterval is how often loadLoop looks at the counts.
const loadInterval = 250 * time.Millisecond

// markDraining tells the cluster, first thing in a drain, that this
// gateway takes no new connection, so the login service stops handing it
// out before the leave arrives.
func (g *Gateway) markDraining() {
	g.loadMu.Lock() // no older state published after this one
	defer g.loadMu.Unlock()
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	if g.node != nil {
		g.node.SetOverload(login.GatewayLoadState, login.GatewayDraining)
	}
}

func (g *Gateway) sampleStart() time.Time {
	if g.sampler.Add(1)&15 != 0 {
		return time.Time{}
	}
	return time.Now()
}

func (g *Gateway) sampleEnd(start time.Time) {
	if !start.IsZero() {
		g.met.relay.Observe(time.Since(start).Seconds())
	}
}
