package embedredis

import (
	"fmt"
	"sync"

	"github.com/alicebob/miniredis/v2"
)

// Server is a running in-process Redis.
type Server struct {
	m         *miniredis.Miniredis
	addr      string // bound address; miniredis cannot report it after Close
	closeOnce sync.Once
}

// Start serves an in-memory Redis on addr ("" means 127.0.0.1 on a free
// port). It returns once the listener is bound.
func Start(addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedredis: start on %s: %w", addr, err)
	}
	return &Server{m: m, addr: m.Addr()}, nil
}

// Addr returns the bound host:port, also after Close.
func (s *Server) Addr() string { return s.addr }

// Close stops the server, dropping its connections and data. It is safe to
// call twice.
func (s *Server) Close() {
	s.closeOnce.Do(s.m.Close)
}
