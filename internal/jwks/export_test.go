package jwks

import "time"

// IntervalFor exposes the refresh interval a Cache-Control header gives.
func IntervalFor(cc string, def, lo, hi time.Duration) time.Duration {
	s := &Set{opts: Options{RefreshInterval: def, MinInterval: lo, MaxInterval: hi}}
	return s.interval(cc)
}
