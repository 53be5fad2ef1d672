package main

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// player is one client connection speaking the client protocol: version 1
// (ClientData both ways), version 2 (ClientMsg up, ClientPush down, with
// acknowledgements), or to the raw echo (ClientData, no login).
type player struct {
	account string
	c       net.Conn
	r       *wire.Reader
	v2      bool
	out     []byte

	// version 2
	sess    wire.Session
	seq     uint32                     // the last ClientMsg sent
	msgAck  uint32                     // the last ClientMsgAck received
	streams map[uint16]*wire.StreamPos // Last = highest seq received
	unacked int                        // pushes received since the last ClientAck
	attempt uint32
}

// ackEvery is how many pushes a version 2 player receives before it
// acknowledges them (the protocol asks for at least every 32).
const ackEvery = 16

func dialTCP(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.(*net.TCPConn).SetNoDelay(true)
	return c, nil
}

// dialRaw connects to the raw echo.
func dialRaw(addr string) (*player, error) {
	c, err := dialTCP(addr)
	if err != nil {
		return nil, err
	}
	return &player{c: c, r: wire.NewReader(c, 1<<20, 4096)}, nil
}

// login connects to a gateway and logs in with t, version 1 or 2.
func login(addr string, t *ticket, v2 bool) (*player, error) {
	c, err := dialTCP(addr)
	if err != nil {
		return nil, err
	}
	p := &player{account: t.Account, c: c, r: wire.NewReader(c, 1<<20, 4096), v2: v2, streams: map[uint16]*wire.StreamPos{}}
	if v2 {
		_, err = c.Write(wire.AppendLoginVersion(nil, t.Account, t.Token, wire.ProtocolV2))
	} else {
		_, err = c.Write(wire.AppendLogin(nil, t.Account, t.Token))
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, b, err := p.r.ReadFrame()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: login: %w", t.Account, err)
	}
	if k != wire.KindClientLoginAck {
		c.Close()
		return nil, fmt.Errorf("%s: login answered with %s", t.Account, k)
	}
	if code, text, _ := wire.DecodeCoded(b); code != wire.CodeOK {
		c.Close()
		return nil, fmt.Errorf("%s: login refused: %s (%s)", t.Account, wire.CodeText(code), text)
	}
	if v2 {
		k, b, err = p.r.ReadFrame()
		if err != nil || k != wire.KindClientSession {
			c.Close()
			return nil, fmt.Errorf("%s: no session frame: %v %s", t.Account, err, k)
		}
		if p.sess, err = wire.DecodeSession(b); err != nil {
			c.Close()
			return nil, err
		}
	}
	return p, nil
}

// roundTrip sends one message to the echo and waits for the reply.
func (p *player) roundTrip(payload []byte) error {
	p.out = p.out[:0]
	if p.v2 {
		if p.unacked >= ackEvery {
			p.out = wire.AppendAck(p.out, p.acks(nil))
			p.unacked = 0
		}
		p.seq++
		p.out = wire.AppendMsg(p.out, p.seq, echoCmd, payload)
	} else {
		p.out = wire.AppendData(p.out, echoCmd, payload)
	}
	if _, err := p.c.Write(p.out); err != nil {
		return err
	}
	_ = p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		k, b, err := p.r.ReadFrame()
		if err != nil {
			return err
		}
		done, err := p.handle(k, b)
		if err != nil || done {
			return err
		}
	}
}

// handle takes one frame from the gateway; done: it was the echo.
func (p *player) handle(k wire.Kind, b []byte) (done bool, err error) {
	switch k {
	case wire.KindClientData:
		return true, nil
	case wire.KindClientPush:
		m, err := wire.DecodePush(b)
		if err != nil {
			return false, err
		}
		s := p.streams[m.Stream]
		if s == nil {
			return false, fmt.Errorf("%s: push on stream %d never announced", p.account, m.Stream)
		}
		if m.Seq <= s.Last {
			return false, nil // a duplicate after a resume
		}
		s.Last = m.Seq
		if m.Stream != 0 {
			p.unacked++
		}
		return true, nil
	case wire.KindClientStream:
		s, err := wire.DecodeStreamOpen(b)
		if err != nil {
			return false, err
		}
		p.streams[s.Stream] = &s
	case wire.KindClientMsgAck:
		if p.msgAck, err = wire.DecodeMsgAck(b); err != nil {
			return false, err
		}
	case wire.KindClientStreamEnd:
		n, err := wire.DecodeStreamEnd(b)
		if err != nil {
			return false, err
		}
		delete(p.streams, n)
	case wire.KindClientError:
		return false, fmt.Errorf("%s: message not delivered: %x", p.account, b)
	case wire.KindClientKick:
		code, text, _ := wire.DecodeCoded(b)
		return false, fmt.Errorf("%s: kicked: %s (%s)", p.account, wire.CodeText(code), text)
	case wire.KindClientResumed:
		r, err := wire.DecodeResumed(b)
		if err != nil {
			return false, err
		}
		if r.Code != 0 {
			return false, fmt.Errorf("%s: resume refused: %s (%s)", p.account, wire.CodeText(r.Code), r.Text)
		}
		p.msgAck = max(p.msgAck, r.MsgAck)
	case wire.KindClientPong:
	default:
		return false, fmt.Errorf("%s: unexpected %s", p.account, k)
	}
	return false, nil
}

func (p *player) acks(dst []wire.Ack) []wire.Ack {
	for _, s := range p.streams {
		if s.Stream != 0 && s.Last > 0 {
			dst = append(dst, wire.Ack{Stream: s.Stream, Seq: s.Last})
		}
	}
	return dst
}

// result is one measurement: round trips of K players for a while.
type result struct {
	n       int
	elapsed time.Duration
	lat     []time.Duration // sorted
	cpu     time.Duration   // server CPU spent during the run
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }
func (r result) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*q))]
}
func (r result) cpuPerRT() time.Duration {
	if r.n == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.n)
}

// run has every player do round trips for d, and measures the CPU that
// cpu reports over the same span.
func run(ps []*player, d, warm time.Duration, cpu func() time.Duration) (result, error) {
	payload := make([]byte, 64)
	lat := make([][]time.Duration, len(ps))
	errs := make(chan error, len(ps))
	var wg sync.WaitGroup
	var startMu sync.Mutex
	var startCPU time.Duration
	var t0 time.Time
	begin := time.Now()
	measureFrom := begin.Add(warm)
	end := measureFrom.Add(d)
	// Sample the CPU when the warm-up ends.
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		time.Sleep(time.Until(measureFrom))
		startMu.Lock()
		startCPU, t0 = cpu(), time.Now()
		startMu.Unlock()
	}()
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 4096)
			for {
				s := time.Now()
				if s.After(end) {
					break
				}
				if err := p.roundTrip(payload); err != nil {
					errs <- err
					return
				}
				if s.After(measureFrom) {
					l = append(l, time.Since(s))
				}
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	stopCPU, t1 := cpu(), time.Now()
	<-cpuDone
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	var r result
	for _, l := range lat {
		r.lat = append(r.lat, l...)
	}
	if len(r.lat) == 0 {
		return r, errors.New("no round trip completed")
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	r.n = len(r.lat)
	r.elapsed = t1.Sub(t0)
	r.cpu = stopCPU - startCPU
	return r, nil
}
