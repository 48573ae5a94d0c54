package settings_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/ratelimit"
)

func TestTenantSettings(t *testing.T) {
	file := writeFile(t, "auth.yaml", `
tenants:
  creation_limit: 3 per minute
  creation_limit_global: 30/hour
  memory_budget: 64MiB
`)
	for _, tc := range []struct {
		name          string
		env           []string
		perIP, global []ratelimit.Limit
		bytes         int64
	}{
		{"defaults", nil, []ratelimit.Limit{{Count: 10, Period: time.Minute}}, []ratelimit.Limit{{Count: 100, Period: time.Minute}}, 512 << 20},
		{"file", []string{"AUTH_CONFIG", file}, []ratelimit.Limit{{Count: 3, Period: time.Minute}}, []ratelimit.Limit{{Count: 30, Period: time.Hour}}, 64 << 20},
		{"environment wins", []string{"AUTH_CONFIG", file, "AUTH_TENANT_CREATION_LIMIT", "1/second; 5 per hour",
			"AUTH_TENANT_CREATION_LIMIT_GLOBAL", "1000 per day", "AUTH_TENANT_MEMORY_BUDGET", "2 GiB"},
			[]ratelimit.Limit{{Count: 1, Period: time.Second}, {Count: 5, Period: time.Hour}},
			[]ratelimit.Limit{{Count: 1000, Period: 24 * time.Hour}}, 2 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env...)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]ratelimit.Limit{ratelimit.TenantCreation: tc.perIP, ratelimit.TenantCreationGlobal: tc.global}
			if got := c.Tenants.Limits(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Limits() = %v, want %v", got, want)
			}
			if c.Tenants.MemoryBytes != tc.bytes {
				t.Errorf("MemoryBytes = %d, want %d", c.Tenants.MemoryBytes, tc.bytes)
			}
		})
	}
}

func TestTenantBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, value, reason string
	}{
		{"AUTH_TENANT_CREATION_LIMIT", "ten per minute", "AUTH_TENANT_CREATION_LIMIT"},
		{"AUTH_TENANT_CREATION_LIMIT", "0 per minute", "AUTH_TENANT_CREATION_LIMIT"},
		{"AUTH_TENANT_CREATION_LIMIT_GLOBAL", "100 per fortnight", "AUTH_TENANT_CREATION_LIMIT_GLOBAL"},
		{"AUTH_TENANT_MEMORY_BUDGET", "512", "units B, KiB, MiB, GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "512MB", "units B, KiB, MiB, GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "MiB", "units B, KiB, MiB, GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "-5MiB", "units B, KiB, MiB, GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "1.5GiB", "units B, KiB, MiB, GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "512KiB", "between 1MiB and 1024GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "2048GiB", "between 1MiB and 1024GiB"},
		{"AUTH_TENANT_MEMORY_BUDGET", "99999999999999999999GiB", "too large"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := load(t, tc.name, tc.value)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Setting != tc.name || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error = %v, want one naming %s (%s)", err, tc.name, tc.reason)
			}
		})
	}
}
