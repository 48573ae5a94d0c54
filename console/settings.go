package console

import (
	"errors"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Settings is the console section of the configuration (console:).
type Settings struct {
	// Enabled serves the console at /console (AUTH_CONSOLE, default true).
	Enabled bool `yaml:"enabled" env:"AUTH_CONSOLE"`
	// SessionTTL is how long a sign-in lasts (AUTH_CONSOLE_SESSION_TTL).
	SessionTTL time.Duration `yaml:"session_ttl" env:"AUTH_CONSOLE_SESSION_TTL"`
}

// Validate checks the section.
func (s *Settings) Validate() error {
	var errs []error
	if s.SessionTTL < time.Minute || s.SessionTTL > 24*time.Hour {
		errs = append(errs, config.Invalid("SessionTTL", s.SessionTTL.String(), "must be between 1m and 24h"))
	}
	return errors.Join(errs...)
}
