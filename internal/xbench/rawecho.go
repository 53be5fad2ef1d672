package main

import (
	"fmt"
	"net"
	"os"

	"github.com/xserver/xserver/common/wire"
)

// serveRaw is the one-hop baseline, run as its own process: a plain Go
// TCP server, one goroutine per connection reading a frame and writing it
// back, with the client framing. It prints its address, then serves until
// killed.
func serveRaw(addr string) error {
	return serve(addr, func(c net.Conn) {
		r := wire.NewReader(c, 1<<20, 4096)
		var out []byte
		for {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			if k != wire.KindClientData {
				continue
			}
			out = append(wire.AppendHeader(out[:0], k, len(p)), p...)
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	})
}

// serve listens on addr, prints the address, and runs handle on its own
// goroutine for every connection (TCP_NODELAY set, closed after), until
// the process is killed.
func serve(addr string, handle func(net.Conn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_ = c.(*net.TCPConn).SetNoDelay(true)
			handle(c)
		}()
	}
}

// serveFwd is the two-hop baseline, run as its own process: the least any
// relay of separate processes does. For every connection it dials
// upstream (the raw echo) and copies bytes both ways with one goroutine
// per direction reading into a buffer and writing what it read, without
// looking at frames. It prints its address, then serves until killed.
func serveFwd(addr, upstream string) error {
	return serve(addr, func(c net.Conn) {
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fwd:", err)
			return
		}
		defer u.Close()
		_ = u.(*net.TCPConn).SetNoDelay(true)
		go pump(c, u)
		pump(u, c)
	})
}

// pump copies src to dst until either fails, with plain reads and writes
// (io.Copy would splice in the kernel, which no relay that reads its
// frames can do).
func pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
