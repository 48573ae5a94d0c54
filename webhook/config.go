package webhook

import (
	"errors"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the webhooks section of the settings (webhooks:).
type Config struct {
	// AllowedHosts are the webhook hosts (a name or an IP, optionally with
	// :port) allowed to resolve to private, loopback or link-local
	// addresses; every other host must resolve to public addresses only.
	// Comma-separated.
	AllowedHosts string `yaml:"allowed_hosts" env:"AUTH_WEBHOOK_ALLOWED_HOSTS"`
	// Timeout bounds each delivery attempt.
	Timeout time.Duration `yaml:"timeout" env:"AUTH_WEBHOOK_TIMEOUT"`
	// Attempts is how many times a delivery is tried, with exponential
	// backoff between attempts.
	Attempts int `yaml:"attempts" env:"AUTH_WEBHOOK_ATTEMPTS"`
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	for _, h := range c.Hosts() {
		if len(h) > 255 {
			errs = append(errs, config.Invalid("AllowedHosts", h, "must be host names or IP addresses, optionally with :port"))
		}
	}
	if c.Timeout < 100*time.Millisecond || c.Timeout > 5*time.Minute {
		errs = append(errs, config.Invalid("Timeout", c.Timeout.String(), "must be between 100ms and 5m"))
	}
	if c.Attempts < 1 || c.Attempts > 20 {
		errs = append(errs, config.Invalid("Attempts", "", "must be between 1 and 20"))
	}
	return errors.Join(errs...)
}

// Hosts is AllowedHosts as a list.
func (c Config) Hosts() []string { return ParseAllowedHosts(c.AllowedHosts) }

// DevelopmentHosts are the hosts allowed in development mode when
// AllowedHosts is not set: the machine itself, where a developer runs a
// receiver.
const DevelopmentHosts = "localhost,127.0.0.1,::1"

// DefaultHosts fills AllowedHosts when it is not set: DevelopmentHosts in
// development mode, none in production.
func (c *Config) DefaultHosts(development bool) {
	if c.AllowedHosts == "" && development {
		c.AllowedHosts = DevelopmentHosts
	}
}
