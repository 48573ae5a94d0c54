package policy

import "time"

// SetClock replaces the service's clock (tests only).
func SetClock(s *Service, now func() time.Time) { s.now = now }

// StoreDown reports whether the service sees its store as unavailable, when
// it skips idle evictions (tests only).
func StoreDown(s *Service) bool { return s.storeDown() }
