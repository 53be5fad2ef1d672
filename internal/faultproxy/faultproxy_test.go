package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo serves line echo on a loopback port.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(l)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, d time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := r.ReadString('\n')
	return err
}

func TestModes(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatalf("forwarding: %v", err)
	}
	p.Set(Blackhole)
	if err := roundTrip(c, r, 200*time.Millisecond); err == nil {
		t.Fatal("black-holed traffic got an answer")
	}
	p.Set(Forward) // the black-holed connection is closed; new ones work
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := roundTrip(c2, bufio.NewReader(c2), 10*time.Second); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	p.Set(Refuse)
	c3, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer c3.Close()
		if err := roundTrip(c3, bufio.NewReader(c3), 10*time.Second); err == nil {
			t.Fatal("refused proxy forwarded")
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
}
