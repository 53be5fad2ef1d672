package mgrserver_test

import (
	"context"
	"net"
	"testing"

	"github.com/xserver/xserver/mgrserver"
)

// A Start that fails (its listen or admin address is taken) returns the
// error, and Close after it returns without panicking, twice. Before, the
// binary panicked on a nil listener when its port was taken.
func TestCloseAfterStartFailed(t *testing.T) {
	c := newCluster(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, set := range []func(*mgrserver.Config){
		func(cfg *mgrserver.Config) { cfg.Listen = busy.Addr().String() },
		func(cfg *mgrserver.Config) { cfg.Admin = busy.Addr().String() },
	} {
		cfg := c.mgrConfig()
		set(&cfg)
		m, err := mgrserver.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err == nil {
			t.Fatal("Start on a taken address succeeded")
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close twice: %v", err)
		}
	}
}
