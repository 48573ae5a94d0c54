package audit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The queue writes from a goroutine of its own: every test must leave none
// behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
