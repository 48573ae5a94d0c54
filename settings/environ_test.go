package settings

import (
	"slices"
	"testing"
)

func TestUnconfigured(t *testing.T) {
	env := []string{
		"PATH=/usr/bin", "HOME=/root", "GOCACHE=/c",
		"AUTH_DB_PATH=/x.sqlite3",         // read by the settings
		"SERVER_PORT=4001",                // read by the settings, not AUTH_
		"RATE_LIMIT_DEFAULT=1 per second", // likewise
		"AUTH_SOMETHING_ELSE=1",           // AUTH_, not (yet) a setting
		"AUTHOR=me",                       // not AUTH_
		"NOEQUALS",
	}
	want := []string{"PATH=/usr/bin", "HOME=/root", "GOCACHE=/c", "AUTHOR=me", "NOEQUALS"}
	if got := Unconfigured(env); !slices.Equal(got, want) {
		t.Errorf("Unconfigured = %q, want %q", got, want)
	}
	for _, v := range Variables() {
		if got := Unconfigured([]string{v.Name + "=x"}); len(got) != 0 {
			t.Errorf("%s was kept", v.Name)
		}
	}
}
