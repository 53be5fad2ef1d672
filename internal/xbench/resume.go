package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// sessions logs n version 2 players in at addr (accounts prefix-0 …) and
// has each do one round trip whose reply it does not acknowledge, so
// every session has one push to replay.
func (c *cluster) sessions(addr, prefix string, n int) ([]*player, error) {
	ps := make([]*player, n)
	payload := make([]byte, 64)
	for i := range ps {
		t, err := c.ticket(context.Background(), fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			return nil, err
		}
		p, err := login(addr, t, true)
		if err != nil {
			return nil, err
		}
		if err := p.roundTrip(payload); err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return ps, nil
}

// resume reconnects p to addr and resumes its session, claiming one push
// less than it received on every node stream; it returns the time from
// the dial to the first replayed push.
func (p *player) resume(addr string) (time.Duration, error) {
	t0 := time.Now()
	c, err := dialTCP(addr)
	if err != nil {
		return 0, err
	}
	p.c, p.r = c, wire.NewReader(c, 1<<20, 4096)
	p.attempt++
	r := wire.Resume{Account: p.account, ID: p.sess.ID, Secret: p.sess.Secret, MsgAck: p.msgAck, Attempt: p.attempt}
	for _, s := range p.streams {
		pos := *s
		if pos.Stream != 0 && pos.Last > 0 {
			pos.Last--
			s.Last--
		}
		r.Streams = append(r.Streams, pos)
	}
	if _, err := c.Write(wire.AppendResume(nil, &r)); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		k, b, err := p.r.ReadFrame()
		if err != nil {
			return 0, fmt.Errorf("%s: resume: %w", p.account, err)
		}
		done, err := p.handle(k, b)
		if err != nil {
			return 0, err
		}
		if done {
			return time.Since(t0), nil
		}
	}
}

// logout ends p's session and closes its connection.
func (p *player) logout() {
	_, _ = p.c.Write(wire.AppendHeader(nil, wire.KindClientLogout, 0))
	_ = p.c.Close()
}

// resumeSame measures resumes on the gateway that holds the sessions,
// one session at a time.
func (c *cluster) resumeSame(n, rep int) ([]time.Duration, error) {
	g := c.gws[0]
	ps, err := c.sessions(g.client, fmt.Sprintf("xb-rs%d", rep), n)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range ps {
			p.logout()
		}
	}()
	lat := make([]time.Duration, 0, n)
	for _, p := range ps {
		_ = p.c.Close()
		d, err := p.resume(g.client)
		if err != nil {
			return nil, err
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, nil
}

// resumeKill starts a gateway, logs n sessions in there, SIGKILLs it, and
// measures the sessions' resumes on the first gateway, all at once: each
// from its own dial, after its connection reported the loss.
func (c *cluster) resumeKill(n, rep int) ([]time.Duration, error) {
	victim, err := c.startGateway()
	if err != nil {
		return nil, err
	}
	ps, err := c.sessions(victim.client, fmt.Sprintf("xb-rk%d", rep), n)
	if err != nil {
		return nil, err
	}
	to := c.gws[0].client
	victim.p.kill()
	c.drop(victim)
	defer func() {
		for _, p := range ps {
			p.logout()
		}
	}()
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, _, err := p.r.ReadFrame(); err != nil {
					break
				}
			}
			_ = p.c.Close()
			d, err := p.resume(to)
			if err != nil {
				errs <- err
				return
			}
			lat[i] = d
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, nil
}
