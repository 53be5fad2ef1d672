// Package faultproxy is a TCP proxy for tests that inject network faults
// between one client and a server: cut every connection and refuse new
// ones (a crash or a reset), or black-hole the traffic (a one-sided
// partition: connections stay open, nothing gets through).
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Mode is what the proxy does with traffic.
type Mode int

// Modes.
const (
	Forward   Mode = iota // pass traffic both ways
	Blackhole             // accept and keep connections, drop every byte
	Refuse                // close every connection, close new ones at once
)

// Proxy forwards connections on a loopback port to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards mode, conns, closed
	mode  Mode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	done  bool
}

// New listens on 127.0.0.1:0 and forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set switches the mode. Leaving Blackhole or entering Refuse closes the
// open connections (bytes were lost in them; a real client would have
// timed them out).
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	old := p.mode
	p.mode = m
	var drop []net.Conn
	if m == Refuse || old == Blackhole && m != Blackhole {
		for c := range p.conns {
			drop = append(drop, c)
		}
		clear(p.conns)
	}
	p.mu.Unlock()
	for _, c := range drop {
		_ = c.Close()
	}
}

// Close stops the proxy and closes every connection. Safe twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil
	}
	p.done = true
	var drop []net.Conn
	for c := range p.conns {
		drop = append(drop, c)
	}
	clear(p.conns)
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range drop {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.mode == Refuse {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

func (p *Proxy) forwarding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode == Forward
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		_ = c.Close()
		return
	}
	var d net.Dialer
	s, err := d.Dial("tcp", p.target)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(s) {
		p.untrack(c, s)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(s, c); p.untrack(c, s) }()
	go func() { defer wg.Done(); p.pipe(c, s); p.untrack(c, s) }()
	wg.Wait()
}

// pipe copies src to dst, dropping what it reads while black-holed.
func (p *Proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.forwarding() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
