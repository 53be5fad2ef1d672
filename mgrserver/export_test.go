package mgrserver

// Crash stops the server the way a killed process stops: connections drop,
// the lease is not released. Test-only.
func (s *Server) Crash() { s.crash() }
