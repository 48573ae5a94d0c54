package config_test

import (
	"testing"

	"github.com/ourway/auth/internal/config"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1B", 1},
		{"4096 b", 4096},
		{"1KiB", 1 << 10},
		{"256MiB", 256 << 20},
		{" 3 gib ", 3 << 30},
	} {
		if got, err := config.ParseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "GiB", "12", "12TiB", "1e6B", "0x10MiB", "12 Mi B"} {
		if got, err := config.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
