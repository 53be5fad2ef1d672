package embedredis

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// tick is how often key TTLs are advanced.
const tick = 20 * time.Millisecond

// Server is a running in-process Redis. miniredis only counts TTLs down
// when told to, so a goroutine advances its clock with the wall clock:
// leases lapse, tokens expire.
type Server struct {
	m         *miniredis.Miniredis
	addr      string // bound address; miniredis cannot report it after Close
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
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
	s := &Server{m: m, addr: m.Addr(), stop: make(chan struct{}), done: make(chan struct{})}
	go s.clock()
	return s, nil
}

// clock advances TTLs by the real time elapsed.
func (s *Server) clock() {
	defer close(s.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case now := <-t.C:
			s.m.FastForward(now.Sub(last))
			last = now
		case <-s.stop:
			return
		}
	}
}

// Addr returns the bound host:port, also after Close.
func (s *Server) Addr() string { return s.addr }

// Close stops the server, dropping its connections and data. It is safe to
// call twice.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.m.Close()
	})
}
