package workflow

import (
	"errors"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the workflows section of the settings (workflows:).
type Config struct {
	// MinInterval is the shortest time allowed between two runs of a
	// registered workflow.
	MinInterval time.Duration `yaml:"min_interval" env:"AUTH_WORKFLOW_MIN_INTERVAL"`
	// Lease is how long a process's claim on a run lasts unless renewed:
	// a run whose process died is taken over by another after it.
	Lease time.Duration `yaml:"lease" env:"AUTH_WORKFLOW_LEASE"`
	// SyncInterval is how often each process compares its scheduled
	// workflows with the registry (changes made through another process)
	// and looks for runs to take over.
	SyncInterval time.Duration `yaml:"sync_interval" env:"AUTH_WORKFLOW_SYNC_INTERVAL"`
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.MinInterval < time.Second || c.MinInterval > 24*time.Hour {
		errs = append(errs, config.Invalid("MinInterval", c.MinInterval.String(), "must be between 1s and 24h"))
	}
	if c.Lease < time.Second || c.Lease > time.Hour {
		errs = append(errs, config.Invalid("Lease", c.Lease.String(), "must be between 1s and 1h"))
	}
	if c.SyncInterval < 100*time.Millisecond || c.SyncInterval > time.Minute {
		errs = append(errs, config.Invalid("SyncInterval", c.SyncInterval.String(), "must be between 100ms and 1m"))
	}
	return errors.Join(errs...)
}
