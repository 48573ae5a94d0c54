package config

import (
	"errors"
	"strconv"
	"strings"

	"github.com/ourway/auth/internal/ratelimit"
)

// Tenants bounds what unknown client keys can make the service hold: how
// fast new tenants may be created, and how much memory loaded tenants may
// take.
type Tenants struct {
	// CreationLimit is the budget of tenant creations per client IP, and
	// CreationLimitGlobal the budget of the whole service (Flask-Limiter
	// syntax). Only a write that creates a tenant is counted.
	CreationLimit       string `yaml:"creation_limit"`
	CreationLimitGlobal string `yaml:"creation_limit_global"`
	// MemoryBudget bounds the estimated memory of the tenants held in
	// memory (a size such as 512MiB); MemoryBytes is it parsed.
	MemoryBudget string `yaml:"memory_budget"`
	// CreationLimits and CreationLimitsGlobal are the limits parsed.
	CreationLimits       []ratelimit.Limit `yaml:"-"`
	CreationLimitsGlobal []ratelimit.Limit `yaml:"-"`
	MemoryBytes          int64             `yaml:"-"`
}

// Limits returns the tenant-creation limits in the form ratelimit.Options
// wants.
func (t Tenants) Limits() map[string][]ratelimit.Limit {
	return map[string][]ratelimit.Limit{
		ratelimit.TenantCreation:       t.CreationLimits,
		ratelimit.TenantCreationGlobal: t.CreationLimitsGlobal,
	}
}

// tenantVars are the environment variables of the tenants section.
func tenantVars(c *Config) []envVar {
	return []envVar{
		{"AUTH_TENANT_CREATION_LIMIT", func(v string) error { c.Tenants.CreationLimit = v; return nil }},
		{"AUTH_TENANT_CREATION_LIMIT_GLOBAL", func(v string) error { c.Tenants.CreationLimitGlobal = v; return nil }},
		{"AUTH_TENANT_MEMORY_BUDGET", func(v string) error { c.Tenants.MemoryBudget = v; return nil }},
	}
}

// Bounds of AUTH_TENANT_MEMORY_BUDGET: below a mebibyte hardly a tenant
// fits; a tebibyte is more than any box this runs on.
const (
	minMemoryBudget = 1 << 20
	maxMemoryBudget = 1 << 40
)

// finishTenants validates the tenants section.
func (c *Config) finishTenants() error {
	t := &c.Tenants
	for _, o := range []struct {
		setting string
		text    string
		dst     *[]ratelimit.Limit
	}{
		{"AUTH_TENANT_CREATION_LIMIT", t.CreationLimit, &t.CreationLimits},
		{"AUTH_TENANT_CREATION_LIMIT_GLOBAL", t.CreationLimitGlobal, &t.CreationLimitsGlobal},
	} {
		l, err := ratelimit.ParseLimits(o.text)
		if err != nil {
			return &Error{Setting: o.setting, Value: o.text, Reason: err.Error()}
		}
		*o.dst = l
	}
	n, err := ParseSize(t.MemoryBudget)
	if err != nil {
		return &Error{Setting: "AUTH_TENANT_MEMORY_BUDGET", Value: t.MemoryBudget, Reason: err.Error()}
	}
	if n < minMemoryBudget || n > maxMemoryBudget {
		return &Error{Setting: "AUTH_TENANT_MEMORY_BUDGET", Value: t.MemoryBudget, Reason: "must be between 1MiB and 1024GiB"}
	}
	t.MemoryBytes = n
	return nil
}

// sizeUnits are the units ParseSize accepts (binary multiples only: a
// "MB" would be ambiguous).
var sizeUnits = map[string]int64{"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}

// ParseSize parses a size: a whole number followed by a unit, B, KiB, MiB
// or GiB (case-insensitive, optionally separated by a space), such as
// "512MiB" or "2 GiB".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0, errors.New("must be a size such as 512MiB or 2GiB (units B, KiB, MiB, GiB)")
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, errors.New("must be a size such as 512MiB or 2GiB (units B, KiB, MiB, GiB)")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > (1<<62)/unit {
		return 0, errors.New("is too large")
	}
	return n * unit, nil
}
