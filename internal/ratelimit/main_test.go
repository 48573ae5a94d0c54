package ratelimit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Limiter.Run probes from the caller's goroutine: no test may leave one
// running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
