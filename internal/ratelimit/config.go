package ratelimit

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/ourway/auth/internal/config"
)

// DefaultUnauthenticated is the budget, per client IP, of the requests the
// authentication gate refuses when neither Unauthenticated nor Default is
// set.
const DefaultUnauthenticated = "1000 per hour"

// Config is the rate-limit section of the settings (rate_limit:).
type Config struct {
	// Default is the budget of each tenant's /api requests (and, unless
	// Unauthenticated is set, of each client IP's refused requests). Empty,
	// the shipped default, leaves tenants unlimited: an authorization
	// service answers a check for every request of its applications, and
	// no per-tenant budget fits every deployment.
	Default    string `yaml:"default" env:"RATE_LIMIT_DEFAULT"`
	StorageURL string `yaml:"storage_url" env:"RATELIMIT_STORAGE_URL"`
	// Reads, Writes and Unauthenticated override Default for GET/HEAD
	// /api routes, for the other /api routes, and for requests refused by
	// the authentication gate (per IP); empty means Default.
	Reads           string `yaml:"reads" env:"AUTH_RATE_LIMIT_READS"`
	Writes          string `yaml:"writes" env:"AUTH_RATE_LIMIT_WRITES"`
	Unauthenticated string `yaml:"unauthenticated" env:"AUTH_RATE_LIMIT_UNAUTHENTICATED"`
	// Replicas divides the limits of the local fallback used while Redis
	// is unreachable (each of N replicas then allows 1/N).
	Replicas int `yaml:"replicas" env:"AUTH_RATE_LIMIT_REPLICAS"`
	// Limits is Default parsed (nil when unset); the others are their
	// settings parsed (nil when unset, except UnauthenticatedLimits, which
	// is DefaultUnauthenticated when neither it nor Default is set).
	// Validate fills them.
	Limits                []Limit `yaml:"-"`
	ReadLimits            []Limit `yaml:"-"`
	WriteLimits           []Limit `yaml:"-"`
	UnauthenticatedLimits []Limit `yaml:"-"`
}

// Validate checks the section and parses its limits. Every limit is
// optional: an empty Reads, Writes or Unauthenticated is counted against
// Default, and an empty Default leaves tenants unlimited while refused
// requests get DefaultUnauthenticated per client IP.
func (c *Config) Validate() error {
	var errs []error
	c.Limits = nil
	if strings.TrimSpace(c.Default) != "" {
		limits, err := ParseLimits(c.Default)
		if err != nil {
			errs = append(errs, config.Invalid("Default", c.Default, err.Error()))
		}
		c.Limits = limits
	}
	for _, o := range []struct {
		field string
		text  string
		dst   *[]Limit
	}{
		{"Reads", c.Reads, &c.ReadLimits},
		{"Writes", c.Writes, &c.WriteLimits},
		{"Unauthenticated", c.Unauthenticated, &c.UnauthenticatedLimits},
	} {
		*o.dst = nil
		if strings.TrimSpace(o.text) == "" {
			continue
		}
		l, err := ParseLimits(o.text)
		if err != nil {
			errs = append(errs, config.Invalid(o.field, o.text, err.Error()))
			continue
		}
		*o.dst = l
	}
	if strings.TrimSpace(c.Default) == "" && strings.TrimSpace(c.Unauthenticated) == "" {
		c.UnauthenticatedLimits, _ = ParseLimits(DefaultUnauthenticated)
	}
	if c.Replicas < 1 || c.Replicas > 1000 {
		errs = append(errs, config.Invalid("Replicas", strconv.Itoa(c.Replicas), "must be between 1 and 1000"))
	}
	if err := ValidateStorageURL(c.StorageURL); err != nil {
		// A Redis URL may carry a password: echo it only when it cannot.
		shown := c.StorageURL
		if strings.ContainsAny(shown, "@%") {
			shown = ""
		}
		errs = append(errs, config.Invalid("StorageURL", shown, err.Error()))
	}
	return errors.Join(errs...)
}

// ClassLimits returns the limits of each route class that has its own, in
// the form Options wants (no Default entry when tenants are unlimited).
func (c Config) ClassLimits() map[string][]Limit {
	m := map[string][]Limit{}
	if len(c.Limits) > 0 {
		m[Default] = c.Limits
	}
	if len(c.ReadLimits) > 0 {
		m[Reads] = c.ReadLimits
	}
	if len(c.WriteLimits) > 0 {
		m[Writes] = c.WriteLimits
	}
	if len(c.UnauthenticatedLimits) > 0 {
		m[Unauthenticated] = c.UnauthenticatedLimits
	}
	return m
}

// TenantConfig bounds how fast new tenants may be created (in the
// tenants: section of the settings).
type TenantConfig struct {
	// CreationLimit is the budget of tenant creations per client IP, and
	// CreationLimitGlobal the budget of the whole service (Flask-Limiter
	// syntax). Only a write that creates a tenant is counted.
	CreationLimit       string `yaml:"creation_limit" env:"AUTH_TENANT_CREATION_LIMIT"`
	CreationLimitGlobal string `yaml:"creation_limit_global" env:"AUTH_TENANT_CREATION_LIMIT_GLOBAL"`
	// CreationLimits and CreationLimitsGlobal are the limits parsed
	// (Validate fills them).
	CreationLimits       []Limit `yaml:"-"`
	CreationLimitsGlobal []Limit `yaml:"-"`
}

// Validate checks the tenant-creation limits and parses them.
func (t *TenantConfig) Validate() error {
	var errs []error
	for _, o := range []struct {
		field string
		text  string
		dst   *[]Limit
	}{
		{"CreationLimit", t.CreationLimit, &t.CreationLimits},
		{"CreationLimitGlobal", t.CreationLimitGlobal, &t.CreationLimitsGlobal},
	} {
		l, err := ParseLimits(o.text)
		if err != nil {
			errs = append(errs, config.Invalid(o.field, o.text, err.Error()))
		}
		*o.dst = l
	}
	return errors.Join(errs...)
}

// Limits returns the tenant-creation limits in the form Options wants.
func (t TenantConfig) Limits() map[string][]Limit {
	return map[string][]Limit{
		TenantCreation:       t.CreationLimits,
		TenantCreationGlobal: t.CreationLimitsGlobal,
	}
}

// ValidateStorageURL checks a rate-limit (or replica-sync) storage URL:
// memory:// or redis[s]://host[:port][/db]. Its errors never quote the
// URL, which may carry a password.
func ValidateStorageURL(s string) error {
	if s == "memory://" {
		return nil
	}
	// url.Parse's errors quote the URL, password included: never use them.
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return errors.New("must be memory:// or redis://host:port[/db]")
	}
	if u.Hostname() == "" {
		return errors.New("must name a host, as in redis://host:port[/db]")
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return errors.New("the database after the host must be a number, as in redis://host:port/0")
		}
	}
	return nil
}
