//go:build e2e

package e2e

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/xserver/xserver/examples/login/web"
	"github.com/xserver/xserver/login"
)

// proxy forwards TCP connections (the page's WebSocket) to a target. cut
// resets every connection at once, as a network change would; while
// blocked, new connections are reset at once, so the gateway looks
// unreachable.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // guards conns, blocked
	conns  []net.Conn
	block  bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			blocked := p.block
			p.mu.Unlock()
			if blocked {
				reset(c)
				continue
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				reset(c)
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut(false); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// cut resets every connection; blocked says whether new ones are refused.
func (p *proxy) cut(blocked bool) {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.block = blocked
	p.mu.Unlock()
	for _, c := range conns {
		reset(c)
	}
}

func (p *proxy) unblock() {
	p.mu.Lock()
	p.block = false
	p.mu.Unlock()
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// viaProxy is a login service whose tickets, and gateway answers, send the
// page's WebSocket through the proxy.
type viaProxy struct {
	web.Service
	ws string
}

func (v viaProxy) Login(ctx context.Context, account, credential string) (*login.Ticket, error) {
	t, err := v.Service.Login(ctx, account, credential)
	if err == nil {
		t.WebSocket = v.ws
	}
	return t, err
}

func (v viaProxy) Gateway() (login.GatewayAddr, error) {
	a, err := v.Service.Gateway()
	a.WebSocket = v.ws
	return a, err
}
