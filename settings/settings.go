// Package settings composes the configuration of auth-server from the
// sections its packages declare (api.ServerConfig, sqldb.Config,
// policy.Config, audit.Config, …) and loads it: the built-in config.yaml,
// then the file named by AUTH_CONFIG, then environment variables (which
// win), every section validated once.
package settings

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/ourway/auth"
	"github.com/ourway/auth/api"
	"github.com/ourway/auth/audit"
	"github.com/ourway/auth/console"
	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/fieldcrypt"
	"github.com/ourway/auth/internal/profiling"
	"github.com/ourway/auth/internal/ratelimit"
	"github.com/ourway/auth/internal/sqldb"
	"github.com/ourway/auth/policy"
	"github.com/ourway/auth/policy/policysync"
	"github.com/ourway/auth/webhook"
	"github.com/ourway/auth/workflow"
)

// Config is the whole configuration of the service.
type Config struct {
	Server    api.ServerConfig  `yaml:"server"`
	Database  sqldb.Config      `yaml:"database"`
	Policy    policy.Config     `yaml:"policy"`
	Log       Log               `yaml:"log"`
	RateLimit ratelimit.Config  `yaml:"rate_limit"`
	JWT       api.JWTConfig     `yaml:"jwt"`
	Audit     audit.Config      `yaml:"audit"`
	Keys      policy.KeysConfig `yaml:"keys"`
	Ops       Ops               `yaml:"ops"`
	Replica   policysync.Config `yaml:"replica"`
	Tenants   Tenants           `yaml:"tenants"`
	Workflows workflow.Config   `yaml:"workflows"`
	Webhooks  webhook.Config    `yaml:"webhooks"`
	Console   console.Settings  `yaml:"console"`
	Crypto    fieldcrypt.Config `yaml:"-"`
	// Env is "production" (the default) or "development", which relaxes the
	// requirement for secrets (a local audit key is generated and kept).
	Env string `yaml:"env" env:"AUTH_ENV,lower"`
	// File is the configuration file that was read ("" for the built-in one).
	File string `yaml:"-"`
}

// Ops is the operations section (ops:): database deadlines and circuit
// breakers, the audit queue's back-pressure bound, and the operations
// listener with the /metrics token, and the loopback profiling listener.
type Ops struct {
	sqldb.Resilience   `yaml:",inline"`
	audit.Backpressure `yaml:",inline"`
	api.OpsConfig      `yaml:",inline"`
	profiling.Config   `yaml:",inline"`
}

// Tenants bounds what unknown client keys can make the service hold
// (tenants:): how fast new tenants may be created, and how much memory
// loaded tenants may take.
type Tenants struct {
	ratelimit.TenantConfig `yaml:",inline"`
	policy.MemoryConfig    `yaml:",inline"`
}

// Log is the logging section (log:). An unset Format is text in
// development mode (a terminal reads it) and json in production (a log
// collector does).
type Log struct {
	Level  string `yaml:"level" env:"AUTH_LOG_LEVEL,lower"`
	Format string `yaml:"format" env:"AUTH_LOG_FORMAT,lower"`
}

// Validate checks the section.
func (l *Log) Validate() error {
	var errs []error
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, config.Invalid("Level", l.Level, "must be debug, info, warn or error"))
	}
	switch l.Format {
	case "", "json", "text":
	default:
		errs = append(errs, config.Invalid("Format", l.Format, "must be json or text"))
	}
	return errors.Join(errs...)
}

// SlogLevel is the slog level of the section.
func (l Log) SlogLevel() slog.Level {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	return level
}

// Development reports whether the service runs in development mode.
func (c Config) Development() bool { return c.Env == "development" }

// Validate checks what involves more than one section, and fills the
// defaults that depend on the mode (the log format, which audit records go
// to the log, the webhook hosts allowed to be local); Load has validated each section before.
func (c *Config) Validate() error {
	var errs []error
	switch c.Env {
	case "production", "development":
	default:
		errs = append(errs, config.Invalid("Env", c.Env, "must be production or development"))
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
		if c.Development() {
			c.Log.Format = "text"
		}
	}
	c.Audit.DefaultLog(c.Development())
	c.Webhooks.DefaultHosts(c.Development())
	if a := c.Ops.Addr; a != "" && a == c.Server.Addr() && c.Server.Port != 0 {
		errs = append(errs, config.Invalid("Ops.Addr", a, "must differ from the API's address ({Server.Host}:{Server.Port})"))
	}
	return errors.Join(errs...)
}

// Load builds the configuration from the built-in defaults (auth.DefaultConfig
// and auth.DefaultModel), the file named by AUTH_CONFIG (if any) and the
// environment read through getenv. Its error names every bad setting.
func Load(getenv func(string) string) (Config, error) {
	c := Config{Policy: policy.Config{ModelText: auth.DefaultModel}}
	file, err := config.Load(&c, auth.DefaultConfig, getenv)
	c.File = file
	return c, err
}

// Warnings lists what the configuration sets that is probably not what was
// meant (a PostgreSQL URL while the database is SQLite), each naming its
// variable; the server logs them at start.
func (c *Config) Warnings() []string {
	return config.Warnings(c)
}

// Variables lists every environment variable the configuration reads,
// AUTH_CONFIG first, with the YAML key of the same setting.
func Variables() []config.Variable {
	return config.Variables(Config{})
}

// Unconfigured returns the entries of environ (KEY=VALUE, as os.Environ
// gives them) that configure nothing of auth-server: neither a variable
// the configuration reads nor any other AUTH_ one. A process started with
// them runs on the built-in settings plus what its caller adds.
func Unconfigured(environ []string) []string {
	vars := map[string]bool{}
	for _, v := range Variables() {
		vars[v.Name] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AUTH_") || vars[k] {
			continue
		}
		out = append(out, kv)
	}
	return out
}
