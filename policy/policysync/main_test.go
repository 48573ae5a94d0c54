package policysync

import (
	"testing"

	"go.uber.org/goleak"
)

// Run starts goroutines (the connection, its heartbeat, the passes) and
// redis-watcher one more (the subscription): none may outlive Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
