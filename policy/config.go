package policy

import (
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/ourway/auth/internal/config"
)

// Config is the authorization-core section of the settings (policy:).
type Config struct {
	// ModelPath names a model file; empty means ModelText as given (the
	// model built into the binary).
	ModelPath         string        `yaml:"model_path" env:"AUTH_MODEL_PATH"`
	TenantIdleTimeout time.Duration `yaml:"tenant_idle_timeout" env:"AUTH_TENANT_IDLE_TIMEOUT"`
	MaxRoleDepth      int           `yaml:"max_role_depth" env:"AUTH_MAX_ROLE_DEPTH"`
	// ConsistencyWait bounds how long an at_least read waits for the other
	// replicas' message before it reloads the tenant (0: reload at once).
	ConsistencyWait time.Duration `yaml:"consistency_wait" env:"AUTH_CONSISTENCY_WAIT"`
	// ChangesRetention is how long the change feed keeps its items.
	ChangesRetention time.Duration `yaml:"changes_retention" env:"AUTH_CHANGES_RETENTION"`
	// ExpirySweepInterval is how often ended time-bound rules are removed
	// from the database.
	ExpirySweepInterval time.Duration `yaml:"expiry_sweep_interval" env:"AUTH_EXPIRY_SWEEP_INTERVAL"`
	// ModelText is the model: set it to the built-in one before
	// validating; Validate replaces it with ModelPath's contents.
	ModelText string `yaml:"-"`
}

// Validate checks the section, reads the model file if one is named, and
// checks that the model is one the service can serve.
func (c *Config) Validate() error {
	var errs []error
	if c.TenantIdleTimeout <= 0 {
		errs = append(errs, config.Invalid("TenantIdleTimeout", c.TenantIdleTimeout.String(), "must be positive"))
	}
	if c.MaxRoleDepth < 1 || c.MaxRoleDepth > 9 {
		errs = append(errs, config.Invalid("MaxRoleDepth", strconv.Itoa(c.MaxRoleDepth), "must be between 1 and 9"))
	}
	if c.ConsistencyWait < 0 || c.ConsistencyWait > 10*time.Second {
		errs = append(errs, config.Invalid("ConsistencyWait", c.ConsistencyWait.String(), "must be between 0 and 10s"))
	}
	if c.ChangesRetention < time.Minute || c.ChangesRetention > 366*24*time.Hour {
		errs = append(errs, config.Invalid("ChangesRetention", c.ChangesRetention.String(), "must be between 1m and 8784h (366 days)"))
	}
	if c.ExpirySweepInterval < 100*time.Millisecond || c.ExpirySweepInterval > time.Hour {
		errs = append(errs, config.Invalid("ExpirySweepInterval", c.ExpirySweepInterval.String(), "must be between 100ms and 1h"))
	}
	if c.ModelPath != "" {
		b, err := os.ReadFile(c.ModelPath)
		if err != nil {
			return errors.Join(append(errs, config.Invalid("ModelPath", c.ModelPath, err.Error()))...)
		}
		c.ModelText = string(b)
	}
	if _, err := ParseModel(c.ModelText); err != nil {
		field := "ModelPath"
		if c.ModelPath == "" {
			field = "ModelText"
		}
		errs = append(errs, config.Invalid(field, c.ModelPath, err.Error()))
	}
	return errors.Join(errs...)
}

// KeysConfig is the client-key section of the settings (keys:).
type KeysConfig struct {
	// RegisteredOnly refuses client keys that were not registered with
	// `auth-server tenant create`.
	RegisteredOnly bool `yaml:"registered_only" env:"AUTH_REGISTERED_KEYS_ONLY"`
	// RotationGrace is how long a rotated-away key keeps working.
	RotationGrace time.Duration `yaml:"rotation_grace" env:"AUTH_KEY_ROTATION_GRACE"`
	// CacheTTL bounds how long a key lookup is reused.
	CacheTTL time.Duration `yaml:"cache_ttl" env:"AUTH_KEY_CACHE_TTL"`
}

// Validate checks the section.
func (c *KeysConfig) Validate() error {
	var errs []error
	if c.RotationGrace < 0 || c.RotationGrace > 90*24*time.Hour {
		errs = append(errs, config.Invalid("RotationGrace", c.RotationGrace.String(), "must be between 0 and 2160h (90 days)"))
	}
	if c.CacheTTL <= 0 || c.CacheTTL > time.Hour {
		errs = append(errs, config.Invalid("CacheTTL", c.CacheTTL.String(), "must be between 1ms and 1h"))
	}
	return errors.Join(errs...)
}

// Bounds of the tenant memory budget: below a mebibyte hardly a tenant
// fits; a tebibyte is more than any box this runs on.
const (
	minMemoryBudget = 1 << 20
	maxMemoryBudget = 1 << 40
)

// MemoryConfig bounds the memory of the tenants held in memory (in the
// tenants: section of the settings).
type MemoryConfig struct {
	// MemoryBudget bounds the estimated memory of the tenants held in
	// memory (a size such as 512MiB); MemoryBytes is it parsed (Validate
	// fills it).
	MemoryBudget string `yaml:"memory_budget" env:"AUTH_TENANT_MEMORY_BUDGET"`
	MemoryBytes  int64  `yaml:"-"`
}

// Validate checks the budget and parses it.
func (m *MemoryConfig) Validate() error {
	n, err := config.ParseSize(m.MemoryBudget)
	if err != nil {
		return config.Invalid("MemoryBudget", m.MemoryBudget, err.Error())
	}
	if n < minMemoryBudget || n > maxMemoryBudget {
		return config.Invalid("MemoryBudget", m.MemoryBudget, "must be between 1MiB and 1024GiB")
	}
	m.MemoryBytes = n
	return nil
}
