package gateway_test

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	pb "github.com/xserver/xserver/proto"
)

// 200 clients through 2 gateways to 3 stateful lobbies and 2 stateless
// echo nodes: every message reaches the right node and every reply the
// right client, in order per account; lose-account fires once per session.
func TestRelayManyClients(t *testing.T) {
	e := newEnv(t, 2)
	var lobbies, echoes []*gameNode
	for i := 0; i < 3; i++ {
		lobbies = append(lobbies, e.startGame(lobbyType))
	}
	for i := 0; i < 2; i++ {
		echoes = append(echoes, e.startGame(echoType))
	}
	e.ready()

	const clients, msgs = 200, 10
	cs := make([]*client, clients)
	for i := range cs {
		cs[i] = e.connect(accountName(i))
	}
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.exchange(msgs)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Both gateways served clients (login spreads by load).
	for _, g := range e.gws {
		if g.NumClients() == 0 {
			t.Fatalf("gateway %s got no clients", g.Addrs().Client)
		}
	}
	// Every lobby saw its accounts' messages in order.
	for _, l := range lobbies {
		l.mu.Lock()
		for acct, seqs := range l.seen {
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("lobby saw %s out of order: %v", acct, seqs)
				}
			}
		}
		l.mu.Unlock()
	}
	for _, c := range cs {
		c.conn.Close()
	}
	waitFor(t, 20*time.Second, "lose-account for every session", func() bool {
		for _, c := range cs {
			if lobbyOf(lobbies, c).lostCount(c.account) != 1 {
				return false
			}
		}
		return true
	})
	for _, c := range cs {
		for _, l := range lobbies {
			if want := map[bool]int{true: 1, false: 0}[l == lobbyOf(lobbies, c)]; l.lostCount(c.account) != want {
				t.Fatalf("%s: lobby %s lose-account %d, want %d", c.account, l.GetID(), l.lostCount(c.account), want)
			}
		}
		for _, n := range echoes {
			if n.lostCount(c.account) != 0 {
				t.Fatalf("%s: stateless node got lose-account", c.account)
			}
		}
	}
}

func lobbyOf(lobbies []*gameNode, c *client) *gameNode {
	id := c.ticket.Bindings[lobbyType]
	for _, l := range lobbies {
		if l.GetID() == id {
			return l
		}
	}
	return nil
}

// exchange sends msgs frames alternating lobby and echo cmds, then checks
// every reply: lobby replies come from the bound lobby in order, echo
// replies all arrive.
func (c *client) exchange(msgs int) error {
	var out []byte
	for i := 0; i < msgs; i++ {
		cmd := uint64(lobbyType)*1000 + 1
		if i%2 == 1 {
			cmd = uint64(echoType)*1000 + 2
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i))
		out = wire.AppendData(out, cmd, b[:])
	}
	if _, err := c.conn.Write(out); err != nil {
		return err
	}
	bound := c.ticket.Bindings[lobbyType].String()
	lastLobby := -1
	echoSeen := map[uint32]bool{}
	for i := 0; i < msgs; i++ {
		_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		k, p, err := c.r.ReadFrame()
		if err != nil {
			return fmt.Errorf("%s: reply %d: %w", c.account, i, err)
		}
		cmd, data, err := wire.DecodeData(p)
		if k != wire.KindClientData || err != nil || len(data) < 6 {
			return fmt.Errorf("%s: bad reply %s", c.account, k)
		}
		seq := binary.BigEndian.Uint32(data)
		from := string(data[5:])
		switch cmd {
		case uint64(lobbyType)*1000 + 1:
			if from != bound {
				return fmt.Errorf("%s: lobby reply from %s, bound to %s", c.account, from, bound)
			}
			if int(seq) <= lastLobby {
				return fmt.Errorf("%s: lobby reply %d after %d", c.account, seq, lastLobby)
			}
			lastLobby = int(seq)
		case uint64(echoType)*1000 + 2:
			echoSeen[seq] = true
		default:
			return fmt.Errorf("%s: reply with cmd %d", c.account, cmd)
		}
	}
	if len(echoSeen) != msgs/2 {
		return fmt.Errorf("%s: %d echo replies, want %d", c.account, len(echoSeen), msgs/2)
	}
	return nil
}

// A binding survives reconnecting through the other gateway.
func TestBindingSurvivesReconnect(t *testing.T) {
	e := newEnv(t, 2)
	var lobbies []*gameNode
	for i := 0; i < 3; i++ {
		lobbies = append(lobbies, e.startGame(lobbyType))
	}
	e.ready()
	c := e.connect("wanderer")
	c.send(uint64(lobbyType)*1000+1, 1)
	_, _, first := c.reply()
	g1 := e.gatewayByAddr(c.ticket.Gateway)
	c.conn.Close()
	bound := lobbyOf(lobbies, c)
	waitFor(t, 10*time.Second, "first session lost", func() bool { return bound.lostCount("wanderer") == 1 })

	t2 := e.loginTicket("wanderer")
	if t2.Bindings[lobbyType] != c.ticket.Bindings[lobbyType] {
		t.Fatalf("binding changed across a reconnect: %s -> %s", c.ticket.Bindings[lobbyType], t2.Bindings[lobbyType])
	}
	c2, code := dial(t, e.other(g1).Addrs().Client, t2)
	if code != wire.CodeOK {
		t.Fatalf("login on the other gateway: %s", wire.CodeText(code))
	}
	c2.send(uint64(lobbyType)*1000+1, 2)
	if _, _, from := c2.reply(); from != first {
		t.Fatalf("reply from %s after reconnect, first session talked to %s", from, first)
	}
	c2.conn.Close()
	waitFor(t, 10*time.Second, "second session lost", func() bool { return bound.lostCount("wanderer") == 2 })
}

// A second login of the same account kicks the older connection, on the
// same gateway or another, and the replaced session fires no lose-account.
func TestDuplicateLoginKicksOlder(t *testing.T) {
	for _, where := range []string{"same gateway", "other gateway"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, 2)
			lobby := e.startGame(lobbyType)
			e.ready()
			c1 := e.connect("twin")
			g1 := e.gatewayByAddr(c1.ticket.Gateway)
			target := g1
			if where == "other gateway" {
				target = e.other(g1)
			}
			c2, code := dial(t, target.Addrs().Client, e.loginTicket("twin"))
			if code != wire.CodeOK {
				t.Fatalf("second login: %s", wire.CodeText(code))
			}
			if got := c1.closedWith(); got != wire.CodeDuplicate {
				t.Fatalf("older connection closed with %s, want %s", wire.CodeText(got), wire.CodeText(wire.CodeDuplicate))
			}
			c2.send(uint64(lobbyType)*1000+1, 7)
			if _, seq, _ := c2.reply(); seq != 7 {
				t.Fatalf("new session reply seq %d", seq)
			}
			if n := lobby.lostCount("twin"); n != 0 {
				t.Fatalf("replaced session fired lose-account %d times", n)
			}
			c2.conn.Close()
			waitFor(t, 10*time.Second, "lose-account for the live session", func() bool { return lobby.lostCount("twin") == 1 })
		})
	}
}

// Node to node through gateways: SendOne spreads by the selector,
// SendByType reaches every member of the type, SendByID exactly one; with
// one gateway killed, sends go on through the other.
func TestNodeToNode(t *testing.T) {
	e := newEnv(t, 2)
	var lobbies, echoes []*gameNode
	for i := 0; i < 3; i++ {
		lobbies = append(lobbies, e.startGame(lobbyType))
	}
	for i := 0; i < 2; i++ {
		echoes = append(echoes, e.startGame(echoType))
	}
	e.ready()
	src := lobbies[0]
	from := src.GetID().String()
	count := func(n *gameNode) int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.fromNode[from]
	}
	for i := 0; i < 100; i++ {
		if err := src.SendOne(echoType, 1, &pb.Ping{UnixNano: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "100 SendOne delivered", func() bool { return count(echoes[0])+count(echoes[1]) == 100 })
	if count(echoes[0]) != 50 || count(echoes[1]) != 50 {
		t.Fatalf("round-robin SendOne split %d/%d, want 50/50", count(echoes[0]), count(echoes[1]))
	}
	if err := src.SendByType(lobbyType, 2, &pb.Ping{}, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "SendByType delivered", func() bool { return count(lobbies[1]) == 1 && count(lobbies[2]) == 1 })
	if count(lobbies[0]) != 0 {
		t.Fatal("SendByType with excludeSelf reached the sender")
	}
	if err := src.SendByID(echoes[1].GetID(), 3, &pb.Ping{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "SendByID delivered", func() bool { return count(echoes[1]) == 51 })
	if count(echoes[0]) != 50 {
		t.Fatal("SendByID reached another node")
	}
	if err := src.SendByID(common.NewNodeID(), 3, &pb.Ping{}); err == nil {
		t.Fatal("SendByID to an unknown node did not fail")
	}

	// Kill one gateway. Messages in flight to it at that instant are lost
	// (at most once); once the node has noticed, every send goes through
	// the other gateway and none fails.
	e.gws[0].Crash()
	waitFor(t, 10*time.Second, "dead gateway dropped", func() bool { return src.GatewayLinks() == 1 })
	for i := 0; i < 50; i++ {
		if err := src.SendByID(echoes[0].GetID(), 4, &pb.Ping{}); err != nil {
			t.Fatalf("send %d after the failover: %v", i, err)
		}
	}
	waitFor(t, 10*time.Second, "sends delivered through the surviving gateway", func() bool { return count(echoes[0]) == 100 })
}

// A client exchanging messages back to back keeps its reader: its bursts
// linger for the next frame instead of parking the connection in the
// poller after every message (which costs a hand-off per message). A
// quiet connection still parks.
func TestChattyClientDoesNotParkPerMessage(t *testing.T) {
	e := newEnv(t, 1)
	e.startGame(lobbyType)
	e.startGame(echoType)
	e.ready()
	c := e.connect("chatty")
	g := e.gws[0]
	// One exchange first: the connection parks after it (it was quiet
	// before), which also shows that parking is counted at all.
	c.send(uint64(echoType)*1000+1, 0)
	c.reply()
	waitFor(t, 5*time.Second, "the quiet connection to park", func() bool {
		return plainCounter(t, g, "xserver_gateway_client_parks_total") >= 1
	})
	before := plainCounter(t, g, "xserver_gateway_client_parks_total")
	const n = 200
	for i := 1; i <= n; i++ {
		c.send(uint64(echoType)*1000+1, uint32(i))
		if _, seq, _ := c.reply(); seq != uint32(i) {
			t.Fatalf("reply %d, want %d", seq, i)
		}
	}
	// The first message of the exchange finds the connection parked and
	// may park once more; every later one comes within the linger.
	if parks := plainCounter(t, g, "xserver_gateway_client_parks_total") - before; parks > 3 {
		t.Fatalf("%v parks for %d back-to-back messages, want at most 3", parks, n)
	}
}
