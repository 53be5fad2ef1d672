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
		}()
	}
}
