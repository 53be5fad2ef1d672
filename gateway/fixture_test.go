package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/discovery"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/redistest"
	"github.com/xserver/xserver/internal/testhook"
	"github.com/xserver/xserver/internal/tlstest"
	"github.com/xserver/xserver/login"
	"github.com/xserver/xserver/mgrserver"
	"github.com/xserver/xserver/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret    = "gw-test-secret"
	lobbyType = common.FirstGameType     // stateful
	echoType  = common.FirstGameType + 1 // stateless
)

// env is a whole cluster on one machine: Redis, an mgrserver, gateways,
// game nodes and a login service.
type env struct {
	tb    testing.TB
	redis *redistest.Server
	rdb   redis.UniversalClient
	log   *logrus.Logger
	mgr   *mgrserver.Server
	gws   []*gateway.Gateway
	login *login.Service
	ln    *node.Node // the login service's node (for membership)
	gwOpt func(*gatewayConfig)
	tls   *tlstest.Configs
	// nodeOpt, when set, adjusts the config of the nodes started after.
	nodeOpt func(*node.Config)

	mu    sync.Mutex
	nodes []*gameNode
}

// gameNode is a test service: it answers every client message with the
// same cmd and "<payload>|<node id>", and records what it saw.
type gameNode struct {
	*node.Node
	mu       sync.Mutex
	lost     map[string]int      // lose-account calls per account
	fromNode map[string]int      // node messages by source id
	seen     map[string][]uint32 // per account, sequence numbers received
	online   atomic.Int64

	undelivered atomic.Int64  // messages reported undeliverable
	away        atomic.Int64  // disconnect (may resume) callbacks
	back        atomic.Int64  // resume callbacks
	hook        testhook.Node // Crash
}

// Crash stops the node as a killed process stops: members see a failure.
func (g *gameNode) Crash() { g.hook.Crash() }

type gatewayConfig = gateway.Config

func newEnv(tb testing.TB, gateways int) *env { return newEnvWith(tb, gateways, nil) }

// newEnvWith is newEnv with a hook adjusting every gateway's config.
func newEnvWith(tb testing.TB, gateways int, opt func(*gatewayConfig)) *env {
	return newEnvFull(tb, gateways, opt, nil)
}

// newEnvFull also runs every intranet and client listener over TLS when
// tc is set.
func newEnvFull(tb testing.TB, gateways int, opt func(*gatewayConfig), tc *tlstest.Configs) *env {
	r := redistest.Start(tb)
	return newEnvOn(tb, r, r.Client(tb), gateways, opt, tc)
}

// newEnvOn builds the cluster on a given Redis client (r may be nil when
// the Redis is not a single test server, e.g. a Redis Cluster).
func newEnvOn(tb testing.TB, r *redistest.Server, rdb redis.UniversalClient, gateways int, opt func(*gatewayConfig), tc *tlstest.Configs) *env {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if p := os.Getenv("XSERVER_TEST_LOG"); p != "" {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			tb.Cleanup(func() { f.Close() })
			l.SetOutput(f)
			l.SetLevel(logrus.InfoLevel)
		}
	}
	e := &env{tb: tb, redis: r, rdb: rdb, log: l, gwOpt: opt, tls: tc}
	mc := mgrserver.DefaultConfig()
	mc.Redis, mc.Secret, mc.Logger = e.rdb, secret, l
	if tc != nil {
		mc.TLS = tc.Server
	}
	m, err := mgrserver.New(mc)
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	e.mgr = m
	tb.Cleanup(func() { m.Close() })
	for i := 0; i < gateways; i++ {
		e.startGateway()
	}
	// The login service is a node too: it needs the membership.
	nc := e.nodeConfig(common.Login, 1000)
	ln, err := node.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ln.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	e.ln = ln
	lc := login.DefaultConfig()
	lc.Redis, lc.Members, lc.StatefulTypes = e.rdb, ln, []common.NodeType{lobbyType}
	lc.Checker = login.CheckerFunc(func(ctx context.Context, account, credential string) error {
		if credential != "pw" {
			return errors.New("wrong password")
		}
		return nil
	})
	if e.login, err = login.New(lc); err != nil {
		tb.Fatal(err)
	}
	return e
}

func (e *env) startGateway() *gateway.Gateway {
	gc := gateway.DefaultConfig()
	gc.Redis, gc.Secret, gc.Logger = e.rdb, secret, e.log
	gc.InnerIP, gc.OuterIP = "127.0.0.1", "127.0.0.1"
	gc.WSListen = "127.0.0.1:0"
	gc.LoginTimeout = time.Second
	gc.MaxFrame = 16 << 10
	gc.ClientQueueBytes = 64 << 10
	if e.tls != nil {
		gc.ClientTLS, gc.IntranetTLS, gc.NodeTLS = e.tls.Server, e.tls.Server, e.tls.Client
	}
	if e.gwOpt != nil {
		e.gwOpt(&gc)
	}
	g, err := gateway.New(gc)
	if err != nil {
		e.tb.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { g.Close() })
	e.gws = append(e.gws, g)
	return g
}

func (e *env) nodeConfig(t common.NodeType, seed int64) node.Config {
	nc := node.DefaultConfig()
	nc.Redis, nc.Secret, nc.Type, nc.Logger = e.rdb, secret, t, e.log
	nc.InnerIP = "127.0.0.1"
	nc.Selector = discovery.RoundRobin
	nc.Rand = rand.New(rand.NewSource(seed))
	if e.tls != nil {
		nc.TLS = e.tls.Client
	}
	if e.nodeOpt != nil {
		e.nodeOpt(&nc)
	}
	return nc
}

func (e *env) startGame(t common.NodeType) *gameNode { return e.startGameVersion(t, "") }

// startGameVersion starts a game node publishing version v.
func (e *env) startGameVersion(t common.NodeType, v string) *gameNode {
	e.tb.Helper()
	nc := e.nodeConfig(t, int64(len(e.nodes)))
	nc.Version = v
	n, err := node.New(nc)
	if err != nil {
		e.tb.Fatal(err)
	}
	g := &gameNode{Node: n, lost: map[string]int{}, fromNode: map[string]int{}, seen: map[string][]uint32{}}
	self := n.GetID().String()
	n.RegisterFuncOnRelayMsg(func(source common.NodeType, from common.Member, account string, cmd uint64, data []byte) {
		if source == common.Client {
			if len(data) >= 4 {
				g.mu.Lock()
				g.seen[account] = append(g.seen[account], binary.BigEndian.Uint32(data))
				g.mu.Unlock()
			}
			reply := append(append([]byte(nil), data...), "|"+self...)
			// A message still queued when the test ends runs while the
			// node closes (Close runs what its lanes hold), and its reply
			// fails with ErrClosed: under load, e.g. the messages of a
			// client kicked at the end of a test. Any other failure is one.
			if err := n.SendClientMsgByRelay(account, uint64(t)*1000+cmd, reply); err != nil && !errors.Is(err, common.ErrClosed) {
				e.tb.Errorf("reply to %s: %v", account, err)
			}
			return
		}
		g.mu.Lock()
		g.fromNode[from.GetID().String()]++
		g.mu.Unlock()
	})
	n.RegisterFuncOnLoseAccount(func(account string) {
		g.mu.Lock()
		g.lost[account]++
		g.mu.Unlock()
	})
	n.RegisterFuncOnUndeliverable(func(common.Undeliverable) { g.undelivered.Add(1) })
	n.RegisterFuncOnDisconnect(func(string) { g.away.Add(1) })
	n.RegisterFuncOnResume(func(string) { g.back.Add(1) })
	n.EnableMessageRelay(true)
	if err := n.Start(testhook.WithNode(context.Background(), &g.hook)); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { n.Close() })
	e.mu.Lock()
	e.nodes = append(e.nodes, g)
	e.mu.Unlock()
	return g
}

func (g *gameNode) lostCount(account string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lost[account]
}

// ready waits until every game node links every gateway and the login
// service sees them all.
func (e *env) ready() {
	e.tb.Helper()
	want := len(e.nodes)
	waitFor(e.tb, 20*time.Second, "all links up", func() bool {
		for _, n := range e.nodes {
			if n.GatewayLinks() != len(e.gws) {
				return false
			}
		}
		for _, g := range e.gws {
			if g.NumLinks() != want {
				return false
			}
		}
		return len(e.ln.GetNodeList(common.Gateway)) == len(e.gws) &&
			len(e.ln.GetNodeList(lobbyType))+len(e.ln.GetNodeList(echoType)) == want
	})
}

// minWait is the shortest deadline waitFor allows.
const minWait = 30 * time.Second

// waitFor polls cond until it holds, failing tb after d (at least minWait).
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	// d only bounds a failure: on a loaded CI machine a condition that holds
	// in milliseconds alone can take seconds, so no wait gives up early.
	d = max(d, minWait)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client is a test player speaking the client protocol over TCP.
type client struct {
	tb      testing.TB
	account string
	conn    net.Conn
	r       *wire.Reader
	ticket  *login.Ticket
}

// loginTicket asks the login service for a ticket.
func (e *env) loginTicket(account string) *login.Ticket {
	e.tb.Helper()
	t, err := e.login.Login(context.Background(), account, "pw")
	if err != nil {
		e.tb.Fatalf("login %s: %v", account, err)
	}
	return t
}

// dial connects to addr and logs in with the ticket; it returns the
// client and the login ack code.
func dial(tb testing.TB, addr string, t *login.Ticket) (*client, uint16) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	cl := &client{tb: tb, account: t.Account, conn: c, r: wire.NewReader(c, 1<<20, 0), ticket: t}
	cl.write(wire.AppendLogin(nil, t.Account, t.Token))
	k, p := cl.read()
	if k != wire.KindClientLoginAck {
		tb.Fatalf("%s: first frame %s, want login ack", t.Account, k)
	}
	code, _, err := wire.DecodeCoded(p)
	if err != nil {
		tb.Fatal(err)
	}
	return cl, code
}

func (e *env) connect(account string) *client {
	e.tb.Helper()
	t := e.loginTicket(account)
	c, code := dial(e.tb, t.Gateway, t)
	if code != wire.CodeOK {
		e.tb.Fatalf("%s: login ack %s", account, wire.CodeText(code))
	}
	return c
}

func (c *client) write(b []byte) {
	c.tb.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.tb.Fatalf("%s: write: %v", c.account, err)
	}
}

func (c *client) read() (wire.Kind, []byte) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, p, err := c.r.ReadFrame()
	if err != nil {
		c.tb.Fatalf("%s: read: %v", c.account, err)
	}
	return k, p
}

// send sends a data frame carrying seq.
func (c *client) send(cmd uint64, seq uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], seq)
	c.write(wire.AppendData(nil, cmd, b[:]))
}

// reply reads one data frame: cmd, seq and the answering node's ID.
func (c *client) reply() (uint64, uint32, string) {
	c.tb.Helper()
	k, p := c.read()
	if k != wire.KindClientData {
		c.tb.Fatalf("%s: got %s, want data", c.account, k)
	}
	cmd, data, err := wire.DecodeData(p)
	if err != nil || len(data) < 5 {
		c.tb.Fatalf("%s: bad reply %v", c.account, err)
	}
	i := bytes.IndexByte(data, '|')
	return cmd, binary.BigEndian.Uint32(data), string(data[i+1:])
}

// closedWith reads until the gateway closes and returns the code of the
// kick frame it sent (0 when none came).
func (c *client) closedWith() uint16 {
	c.tb.Helper()
	var code uint16
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		k, p, err := c.r.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.tb.Fatalf("%s: not closed by the gateway", c.account)
			}
			return code
		}
		if k == wire.KindClientKick || k == wire.KindClientLoginAck {
			code, _, _ = wire.DecodeCoded(p)
		}
	}
}

func (e *env) gatewayByAddr(addr string) *gateway.Gateway {
	for _, g := range e.gws {
		if g.Addrs().Client == addr {
			return g
		}
	}
	e.tb.Fatalf("no gateway at %s", addr)
	return nil
}

func (e *env) other(g *gateway.Gateway) *gateway.Gateway {
	for _, o := range e.gws {
		if o != g {
			return o
		}
	}
	return nil
}

func accountName(i int) string { return fmt.Sprintf("player-%03d", i) }

// dialRaw connects without logging in.
func dialRaw(tb testing.TB, addr string) (*client, error) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &client{tb: tb, account: "raw", conn: c, r: wire.NewReader(c, 1<<20, 0)}, nil
}
