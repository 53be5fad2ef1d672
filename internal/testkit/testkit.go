// Package testkit holds scaffolding shared by tests across packages:
// starting an in-process mgrserver or gateway that stops when the test
// ends, and a log sink safe to read while loggers write. For tests only.
package testkit

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/xserver/xserver/gateway"
	"github.com/xserver/xserver/mgrserver"
)

// StartMgrserver builds and starts an mgrserver; it is closed when the test
// (and its earlier-registered cleanups' successors) end.
func StartMgrserver(tb testing.TB, cfg mgrserver.Config) *mgrserver.Server {
	tb.Helper()
	m, err := mgrserver.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// StartGateway builds and starts a gateway, closed when the test ends.
func StartGateway(tb testing.TB, cfg gateway.Config) *gateway.Gateway {
	tb.Helper()
	g, err := gateway.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

// SyncBuffer is a bytes.Buffer a logger can write to while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
