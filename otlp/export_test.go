package otlp

import "time"

// SetClock replaces the server's clock (tests of retention).
func (s *Server) SetClock(now func() time.Time) { s.now = now }
