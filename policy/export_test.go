package policy

import "time"

// SetClock replaces the service's clock (tests only).
func SetClock(s *Service, now func() time.Time) { s.now = now }
