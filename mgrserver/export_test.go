package mgrserver

import "time"

// Crash stops the server the way a killed process stops: connections drop,
// the lease is not released. Test-only.
func (s *Server) Crash() { s.crash() }

// SetClock replaces the server's clock; call it before Start.
func (s *Server) SetClock(now func() time.Time) { s.now = now }
