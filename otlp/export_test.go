package otlp

import "time"

// SetClock replaces the server's clock (tests of retention).
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// OnPartSpooling sets a function called as each crash-upload part starts to arrive (tests of slow uploads).
func (s *Server) OnPartSpooling(f func(name string)) { s.onPartSpooling = f }
