package gateway_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xclient "github.com/xserver/xserver/client"
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/testhook"
	"github.com/xserver/xserver/node"
)

// startNodeWith starts a lobby-type node whose relay handler is h.
func (e *env) startNodeWith(h common.FuncTypeOnRelayMsg) *gameNode {
	e.tb.Helper()
	n, err := node.New(e.nodeConfig(lobbyType, int64(100+len(e.nodes))))
	if err != nil {
		e.tb.Fatal(err)
	}
	g := &gameNode{Node: n, lost: map[string]int{}, fromNode: map[string]int{}, seen: map[string][]uint32{}}
	n.RegisterFuncOnRelayMsg(h)
	n.RegisterFuncOnLoseAccount(func(account string) {
		g.mu.Lock()
		g.lost[account]++
		g.mu.Unlock()
	})
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

// members waits until the group's members are want.
func waitMembers(t *testing.T, n *gameNode, group string, want []string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	waitFor(t, 20*time.Second, fmt.Sprintf("members of %s to be %v (last %v)", group, want, got), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		got, err = n.GroupMembers(ctx, group)
		return err == nil && strings.Join(got, ",") == strings.Join(want, ",")
	})
}

// readData reads frames until a data frame and returns it.
func (c *client) readData() (uint64, []byte) {
	c.tb.Helper()
	for {
		k, p := c.read()
		switch k {
		case wire.KindClientData:
			cmd, data, err := wire.DecodeData(p)
			if err != nil {
				c.tb.Fatal(err)
			}
			return cmd, data
		case wire.KindClientPush:
			pu, err := wire.DecodePush(p)
			if err != nil {
				c.tb.Fatal(err)
			}
			return pu.Cmd, pu.Data
		case wire.KindClientKick:
			code, why, _ := wire.DecodeCoded(p)
			c.tb.Fatalf("%s: kicked %s: %s", c.account, wire.CodeText(code), why)
		}
	}
}

// A group broadcast reaches every member on both gateways once, crosses
// each gateway once, and no one else; leaves and session ends take
// members out.
func TestGroupBroadcastAcrossGateways(t *testing.T) {
	e := newEnv(t, 2)
	lobby := e.startGame(lobbyType)
	e.ready()
	var members []*client
	onGw := map[*client]string{}
	for i := 0; i < 6; i++ {
		c := e.connect(fmt.Sprintf("m-%d", i))
		members = append(members, c)
		onGw[c] = c.ticket.Gateway
	}
	if onGw[members[0]] == onGw[members[1]] && onGw[members[1]] == onGw[members[2]] {
		t.Logf("members not spread: %v", onGw)
	}
	outsider := e.connect("outsider")
	var names []string
	for _, c := range members {
		names = append(names, c.account)
		if err := lobby.JoinGroup("room", c.account); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, lobby, "room", names)
	if err := lobby.BroadcastGroup("room", 4100, []byte("hello room")); err != nil {
		t.Fatal(err)
	}
	for _, c := range members {
		if cmd, data := c.readData(); cmd != 4100 || string(data) != "hello room" {
			t.Fatalf("%s got %d %q", c.account, cmd, data)
		}
	}
	for _, g := range e.gws {
		if n := plainCounter(t, g, "xserver_gateway_group_broadcasts_total"); n != 1 {
			t.Fatalf("gateway got the group broadcast %v times, want once", n)
		}
	}
	// The outsider got nothing: its next frame is the answer to its own message.
	outsider.send(uint64(lobbyType)*1000+1, 7)
	if _, seq, _ := outsider.reply(); seq != 7 {
		t.Fatalf("outsider got %d", seq)
	}
	// Leave and logout take members out.
	if err := lobby.LeaveGroup("room", members[0].account); err != nil {
		t.Fatal(err)
	}
	members[1].conn.Close() // version 1: the session ends
	waitMembers(t, lobby, "room", names[2:])
}

// Memberships live with the session: kept while the client is away,
// broadcasts sent meanwhile replayed on a resume at the same gateway
// (exactly once), and carried to another gateway when the one holding
// the session dies (broadcasts sent while it was unreachable are then
// missing, and the client is told: BroadcastGap).
func TestGroupMembershipFollowsTheSession(t *testing.T) {
	e := newEnv(t, 2)
	lobby := e.startGame(lobbyType)
	e.ready()
	t0 := e.loginTicket("roamer")
	first := e.gatewayByAddr(t0.Gateway)
	other := e.other(first)
	px := newProxy(t, first.Addrs().Client)
	p := e.groupPlayer("roamer", px.addr(), func(context.Context) (string, error) { return other.Addrs().Client, nil })
	if err := lobby.JoinGroup("guild", "roamer"); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, lobby, "guild", []string{"roamer"})
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if err := lobby.BroadcastGroup("guild", 4100, []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(1, 5)
	waitFor(t, 10*time.Second, "first broadcasts", func() bool { return p.count() == 5 })

	// Lost connection, same gateway: the broadcasts sent while away come
	// on resume, once.
	px.cut()
	send(6, 10) // while the client reconnects: to the dead connection, or to the session away
	waitFor(t, 20*time.Second, "broadcasts sent while away", func() bool { return p.count() == 10 && p.resumed.Load() >= 1 })
	if got := p.lines(); strings.Join(got, ",") != "1,2,3,4,5,6,7,8,9,10" {
		t.Fatalf("got %v, want 1…10 once each", got)
	}
	if p.gap.Load() != 0 {
		t.Fatal("BroadcastGap on a resume the history covered")
	}

	// The holder dies: the session resumes on the other gateway, still a
	// member.
	first.Crash()
	waitFor(t, 20*time.Second, "the session resumed on the other gateway", func() bool { return p.resumed.Load() >= 2 })
	waitMembers(t, lobby, "guild", []string{"roamer"})
	if p.gap.Load() == 0 {
		t.Fatal("no BroadcastGap after a resume on another gateway")
	}
	send(11, 12)
	waitFor(t, 10*time.Second, "broadcasts on the new gateway", func() bool { return p.count() == 12 })
	if n := lobby.lostCount("roamer"); n != 0 {
		t.Fatalf("lose-account fired %d times", n)
	}
}

// groupPlayer is a version 2 client (the Go client, resuming on its own)
// that records the broadcasts it gets.
type groupPlayer struct {
	mu      sync.Mutex
	got     []string
	shed    atomic.Int64
	gap     atomic.Int64
	resumed atomic.Int64
	ended   atomic.Int64
}

func (p *groupPlayer) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.got) }
func (p *groupPlayer) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func (e *env) groupPlayer(account, addr string, gatewayFor func(context.Context) (string, error)) *groupPlayer {
	e.tb.Helper()
	tk := e.loginTicket(account)
	c, err := xclient.Dial(context.Background(), xclient.Config{
		Account: account, Token: tk.Token, Addr: addr, Gateway: gatewayFor,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, PingEvery: time.Second,
	})
	if err != nil {
		e.tb.Fatalf("%s: dial: %v", account, err)
	}
	p := &groupPlayer{}
	done := make(chan struct{})
	e.tb.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case m := <-c.Messages():
				if m.Cmd == 4100 {
					p.mu.Lock()
					p.got = append(p.got, string(m.Data))
					p.mu.Unlock()
				}
			case ev, ok := <-c.Events():
				if !ok {
					return
				}
				switch ev.Kind {
				case xclient.EvResumed:
					p.resumed.Add(1)
					if ev.BroadcastGap {
						p.gap.Add(1)
					}
				case xclient.EvShed:
					p.shed.Add(int64(ev.Shed))
				case xclient.EvEnded:
					p.ended.Add(1)
				}
			}
		}
	}()
	return p
}

// One client flooding world chat (a group broadcast per line) never
// disconnects the others: clients that do not keep up lose broadcasts,
// never their session, and are told how many they lost (ClientShed),
// version 1 and version 2 alike.
func TestFloodDoesNotDisconnectOthers(t *testing.T) {
	const lines = 3000
	e := newEnvWith(t, 1, func(c *gatewayConfig) {
		c.WriteTimeout = time.Minute // the bystanders stop reading for the whole flood
		c.BroadcastHistory = 256 << 10
	})
	var handled, sent atomic.Int64
	var lobby *gameNode
	line := make([]byte, 1000)
	lobby = e.startNodeWith(func(src common.NodeType, _ common.Member, account string, cmd uint64, data []byte) {
		if src != common.Client {
			return
		}
		handled.Add(1)
		if lobby.BroadcastGroup("world", 4100, line) == nil {
			sent.Add(1)
		}
	})
	e.ready()
	g := e.gws[0]
	flooder := e.connect("flooder")
	var v1s, v2s []*client
	for i := 0; i < 3; i++ {
		v1s = append(v1s, e.connect(fmt.Sprintf("v1-%d", i)))
		tk := e.loginTicket(fmt.Sprintf("v2-%d", i))
		c, code := dialV2(t, tk.Gateway, tk)
		if code != wire.CodeOK {
			t.Fatal(wire.CodeText(code))
		}
		v2s = append(v2s, c)
	}
	all := []string{"flooder"}
	for _, c := range append(append([]*client(nil), v1s...), v2s...) {
		all = append(all, c.account)
	}
	for _, a := range all {
		if err := lobby.JoinGroup("world", a); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, lobby, "world", all)

	// The flood: as fast as the socket takes it; nobody reads meanwhile.
	var batch []byte
	for i := 0; i < lines; i++ {
		batch = wire.AppendData(batch, uint64(lobbyType)*1000+1, []byte("spam"))
	}
	flooder.write(batch)
	waitFor(t, 30*time.Second, "the flood handled", func() bool {
		return handled.Load()+int64(counter(t, g, "xserver_gateway_drops_total", "no_node")) >= lines ||
			g.NumClients() < len(all) // someone was disconnected: the checks below say who
	})
	if n := g.NumClients(); n < len(all) {
		t.Fatalf("%d of %d sessions ended during the flood (%v disconnected as slow)", len(all)-n, len(all), counter(t, g, "xserver_gateway_drops_total", "slow_client"))
	}
	waitFor(t, 10*time.Second, "the broadcasts fanned out", func() bool {
		return int64(plainCounter(t, g, "xserver_gateway_group_broadcasts_total")) == sent.Load()
	})
	want := int(sent.Load())
	if want < lines/10 {
		t.Fatalf("only %d of %d lines broadcast", want, lines)
	}

	// Every bystander now reads: each line arrives or is counted in a
	// ClientShed notice, and the session is intact.
	for _, c := range append(append([]*client(nil), v1s...), v2s...) {
		got, shed, notices := 0, 0, 0
		for got+shed < want {
			_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			k, p, err := c.r.ReadFrame()
			if err != nil {
				t.Fatalf("%s: %v after %d lines and %d shed in %d notices, want %d", c.account, err, got, shed, notices, want)
			}
			switch k {
			case wire.KindClientData, wire.KindClientPush:
				got++
			case wire.KindClientShed:
				s, err := wire.DecodeShed(p)
				if err != nil {
					t.Fatal(err)
				}
				shed += int(s.Count)
				notices++
			case wire.KindClientKick:
				code, why, _ := wire.DecodeCoded(p)
				t.Fatalf("%s kicked during another client's flood: %s (%s)", c.account, wire.CodeText(code), why)
			}
		}
		if got+shed != want {
			t.Fatalf("%s: %d lines and %d shed, want %d in all", c.account, got, shed, want)
		}
		if shed > 0 && notices == 0 {
			t.Fatalf("%s: lines lost without a notice", c.account)
		}
		t.Logf("%s: %d lines received, %d shed in %d notices", c.account, got, shed, notices)
		c.write(append(wire.AppendHeader(nil, wire.KindClientPing, 8), 1, 2, 3, 4, 5, 6, 7, 8))
		for {
			k, _ := c.read()
			if k == wire.KindClientPong {
				break
			}
		}
		if n := lobby.lostCount(c.account); n != 0 {
			t.Fatalf("%s lost its session", c.account)
		}
	}
	if n := counter(t, g, "xserver_gateway_drops_total", "slow_client"); n != 0 {
		t.Fatalf("%v clients disconnected as slow", n)
	}
}

// plainCounter reads a counter without labels.
func plainCounter(t *testing.T, g *gateway.Gateway, name string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
