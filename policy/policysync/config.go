package policysync

import (
	"errors"
	"strings"
	"time"

	"github.com/ourway/auth/internal/config"
	"github.com/ourway/auth/internal/ratelimit"
)

// Config is the replica-sync section of the settings (replica:).
type Config struct {
	// RedisURL is the Redis that replicas exchange changes through
	// (default: the rate limiter's storage URL when that is Redis; see
	// RedisURLFor).
	RedisURL string `yaml:"redis_url" env:"AUTH_WATCHER_REDIS_URL"`
	// Channel is the pub/sub channel of the replicas.
	Channel string `yaml:"channel" env:"AUTH_WATCHER_CHANNEL"`
	// SyncInterval is how often loaded tenants' versions are compared with
	// the database (anti-entropy).
	SyncInterval time.Duration `yaml:"sync_interval" env:"AUTH_SYNC_INTERVAL"`
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.RedisURL != "" {
		if err := ratelimit.ValidateStorageURL(c.RedisURL); err != nil || c.RedisURL == "memory://" {
			errs = append(errs, config.Invalid("RedisURL", "", "must be redis://host:port[/db]"))
		}
	}
	if ch := c.Channel; ch == "" || len(ch) > 256 || strings.IndexFunc(ch, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		errs = append(errs, config.Invalid("Channel", ch, "must be 1-256 characters without spaces or control characters"))
	}
	if c.SyncInterval < 100*time.Millisecond || c.SyncInterval > time.Hour {
		errs = append(errs, config.Invalid("SyncInterval", c.SyncInterval.String(), "must be between 100ms and 1h"))
	}
	return errors.Join(errs...)
}
