package gateway_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/internal/testhook"
	"github.com/xserver/xserver/node"
)

// slowService starts a node of type echoType that runs like a game loop:
// messages wait in one queue, in arrival order, and each costs about a
// millisecond before it is echoed. A flood queued in front of a player's
// message delays it. handled counts the messages processed, per account.
func (e *env) slowService() (handled func(account string) int) {
	e.tb.Helper()
	n, err := node.New(e.nodeConfig(echoType, 99))
	if err != nil {
		e.tb.Fatal(err)
	}
	type msg struct {
		account string
		cmd     uint64
		data    []byte
	}
	var (
		queue = make(chan msg, 1<<15)
		stop  = make(chan struct{})
		done  = make(chan struct{})
		mu    sync.Mutex // guards count
		count = map[string]int{}
	)
	n.RegisterFuncOnRelayMsg(func(source common.NodeType, _ common.Member, account string, cmd uint64, data []byte) {
		if source != common.Client {
			return
		}
		select {
		case queue <- msg{account, cmd, append([]byte(nil), data...)}:
		case <-stop:
		}
	})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case m := <-queue:
				time.Sleep(time.Millisecond) // the work a message costs
				mu.Lock()
				count[m.account]++
				mu.Unlock()
				_ = n.SendClientMsgByRelay(m.account, uint64(echoType)*1000+m.cmd, m.data)
			}
		}
	}()
	n.EnableMessageRelay(true)
	g := &gameNode{Node: n}
	if err := n.Start(testhook.WithNode(context.Background(), &g.hook)); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() {
		close(stop)
		<-done
		n.Close()
	})
	e.mu.Lock()
	e.nodes = append(e.nodes, g)
	e.mu.Unlock()
	return func(account string) int {
		mu.Lock()
		defer mu.Unlock()
		return count[account]
	}
}

// rtt sends one message and waits for its echo.
func (c *client) rtt(seq uint32) time.Duration {
	c.tb.Helper()
	start := time.Now()
	c.send(uint64(echoType)*1000+1, seq)
	k, p := c.read()
	if k != wire.KindClientData {
		c.tb.Fatalf("%s: got %s, want the echo", c.account, k)
	}
	if _, data, err := wire.DecodeData(p); err != nil || binary.BigEndian.Uint32(data) != seq {
		c.tb.Fatalf("%s: echo of %d: % x, %v", c.account, seq, p, err)
	}
	return time.Since(start)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// One client flooding a rate-limited type gets ClientError RateLimited for
// what is over its limit, its messages reach the service at the limit's
// rate only, and the other players' round trips through the same service
// stay what they were before the flood. Without the limit the service's
// queue fills with the flood and every other player waits behind it for
// seconds.
func TestRateLimitFloodSparesOthers(t *testing.T) {
	const rate, burst = 50, 50
	limits, err := gateway.ParseRateLimits(fmt.Sprintf("type=%d,frames=%d,burst=%d", echoType, rate, burst))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.RateLimits = limits })
	e.startGame(lobbyType) // the login service binds players to one
	handled := e.slowService()
	e.ready()

	players := make([]*client, 4)
	for i := range players {
		players[i] = e.connect(accountName(i))
	}
	probe := func(rounds int) []time.Duration {
		var (
			mu  sync.Mutex
			all []time.Duration
			wg  sync.WaitGroup
		)
		for _, p := range players {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Paced at half the limit: each player has its own bucket,
				// and a player that keeps within it is never refused.
				pace := time.NewTicker(2 * time.Second / rate)
				defer pace.Stop()
				for i := range rounds {
					<-pace.C
					d := p.rtt(uint32(i + 1))
					mu.Lock()
					all = append(all, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return all
	}
	before := median(probe(20))

	// The flood: batches of 50 messages every 5 ms (10 000 a second, 200
	// times the limit) until the players are done, at most 20 000.
	flooder := e.connect("flooder")
	var limited, echoed atomic.Int64
	// What else the flooder got, for a failure to say where answers went.
	var (
		otherMu sync.Mutex
		other   = map[string]int{}
	)
	noteOther := func(what string) {
		otherMu.Lock()
		other[what]++
		otherMu.Unlock()
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_ = flooder.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			k, p, err := flooder.r.ReadFrame()
			if err != nil {
				noteOther("read ended: " + err.Error())
				return
			}
			switch k {
			case wire.KindClientError:
				if len(p) == 10 && binary.BigEndian.Uint16(p) == wire.CodeRateLimited {
					limited.Add(1)
				} else if len(p) >= 2 {
					noteOther("error " + wire.CodeText(binary.BigEndian.Uint16(p)))
				}
			case wire.KindClientData:
				echoed.Add(1)
			case wire.KindClientKick:
				code, _, _ := wire.DecodeCoded(p)
				noteOther("kick " + wire.CodeText(code))
			default:
				noteOther(k.String())
			}
		}
	}()
	stopFlood := make(chan struct{})
	floodDone := make(chan int)
	floodStart := time.Now()
	go func() {
		sent := 0
		var batch []byte
		for sent < 20000 {
			select {
			case <-stopFlood:
				floodDone <- sent
				return
			default:
			}
			batch = batch[:0]
			for range 50 {
				batch = wire.AppendData(batch, uint64(echoType)*1000+2, []byte("flood"))
			}
			if _, err := flooder.conn.Write(batch); err != nil {
				break
			}
			sent += 50
			time.Sleep(5 * time.Millisecond)
		}
		floodDone <- sent
	}()
	during := probe(60)
	close(stopFlood)
	sent := <-floodDone
	elapsed := time.Since(floodStart)

	// The others: a generous bound that a queue of flood messages in front
	// of them (seconds) would break, and the machine's noise would not.
	if m := median(during); m > 5*before+100*time.Millisecond {
		t.Fatalf("median round trip %v during the flood, %v before", m, before)
	}
	// Every flood message is answered: echoed, or refused as rate limited.
	func() {
		defer func() {
			if t.Failed() {
				otherMu.Lock()
				defer otherMu.Unlock()
				t.Logf("flood: %d sent, %d refused, %d echoed, service handled %d; flooder also got %v; gateway drops: slow_client %v, no_node %v",
					sent, limited.Load(), echoed.Load(), handled("flooder"), other,
					counter(t, e.gws[0], "xserver_gateway_drops_total", "slow_client"), counter(t, e.gws[0], "xserver_gateway_drops_total", "no_node"))
			}
		}()
		waitFor(t, 20*time.Second, "every flood message answered", func() bool { return limited.Load()+echoed.Load() == int64(sent) })
	}()
	admitted := int64(burst + rate*elapsed.Seconds() + 5)
	if n := int64(handled("flooder")); n > admitted || echoed.Load() > admitted {
		t.Fatalf("the service handled %d of %d flood messages in %v (echoed %d; players' median round trip %v before, %v during); the limit admits at most %d",
			n, sent, elapsed, echoed.Load(), before, median(during), admitted)
	}
	if limited.Load() == 0 || sent < 500 {
		t.Fatalf("flood of %d got %d refusals", sent, limited.Load())
	}
	if got := counter(t, e.gws[0], "xserver_gateway_rate_limited_total", "error"); got != float64(limited.Load()) {
		t.Fatalf("rate_limited counter %v, want %d", got, limited.Load())
	}
	t.Logf("flood: %d sent in %v, %d refused, %d echoed; players' median round trip %v before, %v during", sent, elapsed.Round(time.Millisecond), limited.Load(), echoed.Load(), before, median(during))
	flooder.conn.Close()
	<-readerDone
}

// A limit with action=kick ends the session of a client over it, with the
// RateLimited code.
func TestRateLimitKick(t *testing.T) {
	limits, err := gateway.ParseRateLimits(fmt.Sprintf("cmd=%d-%d,frames=1,burst=3,action=kick", echoType*1000, echoType*1000+999))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.RateLimits = limits })
	e.startGame(lobbyType)
	e.startGame(echoType)
	e.ready()
	c := e.connect("kicked")
	other := e.connect("other")
	var batch []byte
	for i := range 10 {
		batch = wire.AppendData(batch, uint64(echoType)*1000+1, binary.BigEndian.AppendUint32(nil, uint32(i)))
	}
	c.write(batch)
	if code := c.closedWith(); code != wire.CodeRateLimited {
		t.Fatalf("closed with %s, want rate limited", wire.CodeText(code))
	}
	if got := counter(t, e.gws[0], "xserver_gateway_rate_limited_total", "kick"); got != 1 {
		t.Fatalf("kick counter %v", got)
	}
	// The limit is per session: another player is not affected.
	other.send(uint64(echoType)*1000+1, 7)
	if _, seq, _ := other.reply(); seq != 7 {
		t.Fatalf("other got %d", seq)
	}
}

// A version 2 message over the limit is refused with ClientError and still
// acknowledged, so a client waiting for acknowledgements does not hang.
func TestRateLimitedMessageIsAcknowledged(t *testing.T) {
	limits, err := gateway.ParseRateLimits("frames=1,burst=1")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, 1, func(c *gatewayConfig) { c.RateLimits = limits })
	e.startGame(lobbyType)
	e.startGame(echoType)
	e.ready()
	tk := e.loginTicket("v2")
	c, code := dialV2(t, tk.Gateway, tk)
	if code != wire.CodeOK {
		t.Fatalf("login %s", wire.CodeText(code))
	}
	c.write(append(wire.AppendMsg(nil, 1, uint64(echoType)*1000+1, []byte("aaaa")), wire.AppendMsg(nil, 2, uint64(echoType)*1000+1, []byte("bbbb"))...))
	var refused bool
	for {
		k, p := c.read()
		switch k {
		case wire.KindClientError:
			if len(p) != 10 || binary.BigEndian.Uint16(p) != wire.CodeRateLimited || binary.BigEndian.Uint64(p[2:]) != uint64(echoType)*1000+1 {
				t.Fatalf("ClientError % x", p)
			}
			refused = true
		case wire.KindClientMsgAck:
			if seq, _ := wire.DecodeMsgAck(p); seq == 2 {
				if !refused {
					t.Fatal("message 2 acknowledged without a ClientError")
				}
				return
			}
		}
	}
}
