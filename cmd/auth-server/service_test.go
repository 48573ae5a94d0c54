package main

import (
	"testing"
	"time"
)

// The setting's 0 (reload at once) must not reach the core as its 0 (the
// core's default, a wait of 100ms).
func TestConsistencyWait(t *testing.T) {
	for _, tc := range []struct{ setting, core time.Duration }{
		{0, -1},
		{time.Millisecond, time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{10 * time.Second, 10 * time.Second},
	} {
		if got := consistencyWait(tc.setting); got != tc.core {
			t.Errorf("consistencyWait(%v) = %v, want %v", tc.setting, got, tc.core)
		}
	}
}
