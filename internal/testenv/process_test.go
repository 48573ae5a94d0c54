package testenv

import (
	"strings"
	"testing"
)

// A binary that exits at once is reported as such, with its output, rather
// than waited for until the start timeout.
func TestStartExitedBeforeListening(t *testing.T) {
	_, err := Start("/bin/sh", []string{"PATH=/usr/bin:/bin"}, nil)
	if err == nil || !strings.Contains(err.Error(), "exited before listening") ||
		!strings.Contains(err.Error(), "serve") {
		t.Fatalf("Start = %v; want an exit before listening, with the shell's complaint about \"serve\"", err)
	}
}
