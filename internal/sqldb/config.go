package sqldb

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the storage section of the settings (database:).
type Config struct {
	// Type is sqlite or postgresql ("postgres" is accepted and becomes
	// postgresql).
	Type           string        `yaml:"type" env:"AUTH_DB_TYPE,lower"`
	Path           string        `yaml:"path" env:"AUTH_DB_PATH"`
	PostgresURL    config.Secret `yaml:"-" env:"POSTGRESQL_URL"`
	MaxOpenConns   int           `yaml:"max_open_conns" env:"AUTH_DB_MAX_OPEN_CONNS"`
	MigrateOnStart bool          `yaml:"migrate_on_start" env:"AUTH_MIGRATE_ON_START"`
}

// Validate checks the section; it expands a leading ~ of the SQLite path.
func (c *Config) Validate() error {
	var errs []error
	switch c.Type {
	case "sqlite":
		if strings.TrimSpace(c.Path) == "" {
			errs = append(errs, config.Invalid("Path", "", "must not be empty"))
			break
		}
		p, err := config.ExpandHome(c.Path)
		if err != nil {
			errs = append(errs, config.Invalid("Path", c.Path, err.Error()))
			break
		}
		c.Path = p
	case "postgresql", "postgres":
		c.Type = string(Postgres)
		if c.PostgresURL == "" {
			errs = append(errs, config.Invalid("PostgresURL", "", "is required when {Type}=postgresql"))
		}
	default:
		errs = append(errs, config.Invalid("Type", c.Type, "must be sqlite or postgresql"))
	}
	if c.MaxOpenConns < 1 || c.MaxOpenConns > 1000 {
		errs = append(errs, config.Invalid("MaxOpenConns", strconv.Itoa(c.MaxOpenConns), "must be between 1 and 1000"))
	}
	return errors.Join(errs...)
}

// Options are the options Open takes for this section.
func (c Config) Options() Options {
	return Options{Dialect: Dialect(c.Type), Path: c.Path, URL: c.PostgresURL.Reveal(), MaxOpenConns: c.MaxOpenConns}
}

// Resilience bounds the database calls of a request and sets the circuit
// breakers that guard them (in the ops: section of the settings).
type Resilience struct {
	// DBTimeout bounds every database operation of a request (a write's
	// transaction, a tenant's load), waiting for the tenant's lock included.
	DBTimeout time.Duration `yaml:"db_timeout" env:"AUTH_DB_TIMEOUT"`
	// DBBreakerErrors is the number of infrastructure failures (each no
	// more than DBBreakerTimeout after the previous one) that opens a
	// database circuit breaker.
	DBBreakerErrors int `yaml:"db_breaker_errors" env:"AUTH_DB_BREAKER_ERRORS"`
	// DBBreakerTimeout is how long an open breaker fails fast before it
	// lets one probe through.
	DBBreakerTimeout time.Duration `yaml:"db_breaker_timeout" env:"AUTH_DB_BREAKER_TIMEOUT"`
}

// Validate checks the deadlines and the breaker settings.
func (r *Resilience) Validate() error {
	var errs []error
	for _, d := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"DBTimeout", r.DBTimeout, 10 * time.Millisecond, 5 * time.Minute},
		{"DBBreakerTimeout", r.DBBreakerTimeout, 10 * time.Millisecond, 10 * time.Minute},
	} {
		if d.v < d.min || d.v > d.max {
			errs = append(errs, config.Invalid(d.field, d.v.String(), "must be between "+d.min.String()+" and "+d.max.String()))
		}
	}
	if r.DBBreakerErrors < 1 || r.DBBreakerErrors > 10000 {
		errs = append(errs, config.Invalid("DBBreakerErrors", strconv.Itoa(r.DBBreakerErrors), "must be between 1 and 10000"))
	}
	return errors.Join(errs...)
}
